"""``./course instructor lab``: JupyterLab for the instructor, on the grading course directory, with the formgrader.

nbgrader's formgrader reads the course directory's ``nbgrader_config.py`` (written by ``CourseDir.write_config``)
from the server's folder, so the server is started in ``<course>/``: Manage Assignments lists what
``./course instructor release`` released, Manage Submissions what ``collect`` filed and ``autograde`` graded, and
Manual Grading is where the written answers get their points and comments.

**No exchange.**  This course hands out bundles (``<course>/bundles/<assignment>.zip``) and collects LMS exports;
nbgrader's exchange is not used.  So that the formgrader neither warns about a missing exchange nor shows released
assignments as "draft", its exchange is a folder inside the course directory, ``<course>/exchange/``, whose
``outbound/`` mirrors ``<course>/release/`` each time the lab starts; no student ever reads it.  The exchange-based
student front-ends (Assignment List, Course List) are off in this lab (``<prefix>/etc/jupyter-instructor``, read
through ``JUPYTER_CONFIG_PATH`` by this server only); the Formgrader, Create Assignment and Validate stay.

**Submissions cannot reach the Jupyter API.**  This module is also a server extension of the lab (enabled in the
same config folder) that adds a Content-Security-Policy to the pages that show what a student wrote, scoped by
path (:func:`page_policy`): the formgrader's submission page (``/formgrader/submissions/<id>/``) runs only the
formgrader's own scripts (``<base>/formgrader/static/`` and its inline scripts and name-toggle handlers, allowed by
their hashes), so no script, event handler, frame, plug-in or form a student slipped into a notebook runs in the
page that holds the instructor's session; the files the formgrader serves from a submission's folder and
notebooks rendered by ``/nbconvert/`` are sandboxed (a unique origin, no scripts).  ``collect`` already removed
such content (``ddpm_instructor.sanitize``); this is the second wall, for what the grader's own run printed.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import sys
from pathlib import Path

from .coursedir import CourseDir

COURSE_ID = "ddpm-course"
CONFIG_DIR = Path(sys.prefix) / "etc" / "jupyter-instructor"
OFF_LABEXTENSIONS = ["@jupyter/nbgrader:course-list", "@jupyter/nbgrader:assignment-list"]
OFF_SERVER_EXTENSIONS = ["nbgrader.server_extensions.course_list", "nbgrader.server_extensions.assignment_list"]
ON_SERVER_EXTENSIONS = ["ddpm_instructor.lab"]          # page_policy, below
BANNER = """==> instructor lab on {root}: Nbgrader > Formgrader
    use it for:   Manual Grading (points and comments for the written answers), viewing submissions and scores
    use commands: ./course instructor release | collect | autograde | feedback | grades -- not the formgrader's
                  Generate, Release, Collect, Autograde or feedback buttons (docs/INSTRUCTORS.md, "The instructor lab")
    no exchange:  students get {root}/bundles/<assignment>.zip; {root}/exchange/ only mirrors release/ for the formgrader"""


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2) + "\n"
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def write_lab_config(config_dir: Path = CONFIG_DIR) -> Path:
    """This lab's own Jupyter config folder: the exchange-based student front-ends and their server parts off."""
    _write_json(config_dir / "labconfig" / "page_config.json",
                {"disabledExtensions": {name: True for name in OFF_LABEXTENSIONS}})
    _write_json(config_dir / "jupyter_server_config.d" / "ddpm-instructor.json",
                {"ServerApp": {"jpserver_extensions": {**{name: False for name in OFF_SERVER_EXTENSIONS},
                                                       **{name: True for name in ON_SERVER_EXTENSIONS}}}})
    return config_dir


def mirror_release(course: CourseDir) -> Path:
    """``<course>/exchange/<course id>/outbound/<assignment>/`` = ``<course>/release/<assignment>/``, so that the
    formgrader shows what ``release`` released as released; returns the exchange root."""
    outbound = course.root / "exchange" / COURSE_ID / "outbound"
    if outbound.exists():
        shutil.rmtree(outbound)
    outbound.mkdir(parents=True)
    for a in course.released_assignments():
        shutil.copytree(course.release / a, outbound / a, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return course.root / "exchange"


def lab_command(course: CourseDir, options: list[str]) -> tuple[list[str], dict]:
    """(argv, environment) of the instructor lab; run it in ``course.root``."""
    course.write_config()
    exchange = mirror_release(course)
    env = course.env()
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(
        p for p in (str(write_lab_config()), os.environ.get("JUPYTER_CONFIG_PATH")) if p)
    argv = [sys.executable, "-m", "jupyterlab", f"--notebook-dir={course.root}",
            f"--CourseDirectory.course_id={COURSE_ID}", f"--Exchange.root={exchange}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")
    return argv + options, env


def instructor_lab(course: CourseDir, options: list[str]) -> None:
    """Replace this process with the instructor's JupyterLab (the CLI's last act)."""
    course.root.mkdir(parents=True, exist_ok=True)
    argv, env = lab_command(course, options)
    print(BANNER.format(root=course.root), flush=True)
    os.chdir(course.root)
    os.execve(argv[0], argv, env)


# ---------------------------------------------------------------- the pages that show a submission
SUBMISSION_PAGE = re.compile(r"/formgrader/submissions/(?!components/)[^/]+/?$")
SANDBOXED = re.compile(r"/formgrader/submissions/(?!components/)[^/]+/.|/nbconvert/")
FORMGRADER_HANDLERS = ("toggle_name(true);", "toggle_name(false);")   # nbgrader's formgrade_macros.html.j2
SANDBOX_POLICY = ("sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
                  "base-uri 'none'; form-action 'none'")
_HEAD = re.compile(rb"<head[^>]*>(.*?)</head>", re.S | re.I)
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\ssrc=)[^>]*>(.*?)</script>", re.S | re.I)


def _sha256(data: bytes) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(data).digest()).decode() + "'"


def submission_page_policy(origin: str, base_url: str, page: bytes | None) -> str:
    """The CSP of a formgrader submission page: scripts only from the formgrader's static folder, plus the inline
    scripts of the page's ``<head>`` (the formgrader's template: the student's notebook comes after it) and the
    template's name-toggle handlers, by hash; everything else of the page's own origin, no frames, plug-ins or
    form posts."""
    head = _HEAD.search(page or b"")
    inline = [_sha256(m.group(1)) for m in _INLINE_SCRIPT.finditer(head.group(1))] if head else []
    handlers = [_sha256(h.encode()) for h in FORMGRADER_HANDLERS]
    static = f"{origin}{base_url.rstrip('/')}/formgrader/static/"
    return ("default-src 'self'; "
            f"script-src {static} 'unsafe-hashes' {' '.join(sorted(set(inline)) + handlers)}; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
            "object-src 'none'; frame-src 'none'; child-src 'none'; worker-src 'none'; base-uri 'none'; "
            "form-action 'none'")


def page_policy(path: str, origin: str, base_url: str, page: bytes | None) -> str | None:
    """The CSP this lab adds to the response for ``path`` (None: the server's own policy only)."""
    rel = "/" + path[len(base_url):].lstrip("/") if path.startswith(base_url) else path
    if SUBMISSION_PAGE.match(rel):
        return submission_page_policy(origin, base_url, page)
    if SANDBOXED.match(rel):
        return SANDBOX_POLICY
    return None


def merge_policies(own: str, ours: str) -> str:
    """The server's policy (``frame-ancestors``, ``report-uri``, a ``sandbox allow-scripts``) with ours: where both
    name a directive, ours (a browser would take the first of two)."""
    names = {d.split()[0] for d in ours.split(";") if d.strip()}
    kept = [d.strip() for d in own.split(";") if d.strip() and d.split()[0] not in names]
    return "; ".join(kept + [ours])


def _policy_transform(base_url: str):
    from tornado.web import OutputTransform

    class SubmissionPolicy(OutputTransform):
        """Adds :func:`page_policy`'s CSP to the server's own (``frame-ancestors``), per response."""

        def __init__(self, request):
            super().__init__(request)
            self.path, self.origin = request.path, f"{request.protocol}://{request.host}"

        def transform_first_chunk(self, status_code, headers, chunk, finishing):
            if page_policy(self.path, self.origin, base_url, None) is not None:
                policy = page_policy(self.path, self.origin, base_url, chunk if finishing else None)
                headers["Content-Security-Policy"] = merge_policies(headers.get("Content-Security-Policy", ""), policy)
            return status_code, headers, chunk

    return SubmissionPolicy


def _jupyter_server_extension_points():
    return [{"module": "ddpm_instructor.lab"}]


def _load_jupyter_server_extension(serverapp) -> None:
    """Enabled in this lab's config folder only (:func:`write_lab_config`)."""
    serverapp.web_app.add_transform(_policy_transform(serverapp.base_url))
    serverapp.log.info("ddpm_instructor.lab: submission pages of the formgrader served under a CSP")


def protection_checks(course: CourseDir) -> list:
    """What keeps a student's notebook from running in the instructor's browser, checked here (for ``doctor``):
    collect's reduction, the feedback pages' policy, and the formgrader routes this lab's policy is scoped to."""
    from nbgrader.server_extensions.formgrader import handlers

    from . import feedback, sanitize
    from .sandbox import Check
    checks = [Check("collect keeps only text and PNG outputs and sanitised Markdown", True,
                    f"caps: {sanitize.MAX_CELLS} cells, {sanitize.MAX_BYTES // 2**20} MB, "
                    f"{sanitize.TOTAL_SOURCE_CHARS['markdown']:,} characters of Markdown")]
    checks.append(Check("feedback pages forbid scripts (Content-Security-Policy)", "script-src 'none'" in feedback.CSP,
                        feedback.CSP))
    pages = sorted(course.feedback.glob("*/*/*.html")) if course.feedback.is_dir() else []
    old = [p for p in pages if feedback.CSP_META.encode() not in p.read_bytes()[:8192]]
    checks.append(Check("every feedback page written carries it", not old,
                        f"{len(old)} of {len(pages)} pages were written without it: run feedback again" if old
                        else f"{len(pages)} pages"))
    routes = [r[0] for r in handlers.default_handlers]
    page = next((r for r in routes if SUBMISSION_PAGE.search(r.replace("([^/]+)", "x").replace("/?", "/"))), None)
    files = any(r.endswith("/formgrader/submissions/(.*)") for r in routes)
    checks.append(Check("the instructor lab serves the formgrader's submission pages under a policy (no student "
                        "script reaches the Jupyter API)", bool(page) and files,
                        f"submission page route {page!r}" if page and files else
                        "nbgrader's formgrader routes changed: the lab's policy (ddpm_instructor.lab) no longer "
                        f"covers them: {routes}"))
    return checks
