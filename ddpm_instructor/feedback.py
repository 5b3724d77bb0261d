"""Step 4: ``feedback`` -- an HTML page per student and assignment (nbgrader's), each graded test shown by its
result and message only (``GuardedExecute`` replaced its code), each written answer with the points and comment
given in the formgrader; a plain page when a submission could not be graded.

Each student's page is rendered in a process of its own (forked from this one, so nbgrader is imported once), at
most ``jobs`` at a time, each stopped after :data:`RENDER_TIMEOUT` seconds and limited to :data:`RENDER_MEMORY_MB`
more memory: one huge or broken notebook costs its owner a failure page, never the class's time.  Every page
carries a Content-Security-Policy (:data:`CSP`) that forbids scripts, plug-ins, frames, forms and every request
but inline styles and ``data:`` images: whatever HTML a student managed to put in a notebook cannot run when the
page is opened.  nbconvert's MathJax loader is a script too, so maths shows as its LaTeX source.

On a class hub (a course directory tied to the hub's exchange: ``ddpm_instructor.exchange_io``) each student's pages
are also returned through the exchange, where their Assignment List offers "Fetch Feedback".
"""
from __future__ import annotations

import html
import multiprocessing
import os
import re
import resource
import sys
import time
import zipfile
from pathlib import Path

from . import exchange_io
from .coursedir import CourseDir, stamp
from .records import read_notes

CSP = ("default-src 'none'; script-src 'none'; object-src 'none'; frame-src 'none'; child-src 'none'; "
       "worker-src 'none'; connect-src 'none'; base-uri 'none'; form-action 'none'; "
       "style-src 'unsafe-inline'; img-src data:; font-src data:")
CSP_META = f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
RENDER_TIMEOUT = 300          # seconds per student page
RENDER_MEMORY_MB = 3072       # address space a student's render may add to this process's
_HEAD = re.compile(rb"<head(\s[^>]*)?>", re.I)


def _html(text) -> str:
    return html.escape(str(text))


def feedback_zip(course, assignment: str) -> Path:
    """All feedback pages of one assignment in a zip, ``<student>/<page>.html``, for an LMS upload."""
    course.exports.mkdir(parents=True, exist_ok=True)
    dest = course.exports / f"feedback-{assignment}-{stamp()}.zip"
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for page in sorted(course.feedback.glob(f"*/{assignment}/*.html")):
            zf.write(page, f"{page.parent.parent.name}/{page.name}")
    return dest

def feedback(course: CourseDir, assignments=None, students=None, zip_it=False, jobs=None) -> list[Path]:
    """Each student's pages; on a class hub (``exchange_io.configured``) each is also returned through the exchange."""
    ex = exchange_io.configured(course)
    made = []
    for a in assignments or course.released_assignments():
        subs = [s for s in (students or course.submissions(a))]
        if not subs:
            continue
        graded = [s for s in subs if (course.autograded / s / a).is_dir()]
        if graded:
            logs = course.logs / "feedback" / a / stamp()
            codes = render_pages(course, a, graded, logs, jobs=jobs)
            for s in graded:
                files = list((course.feedback / s / a).glob("*.html")) if codes[s] == 0 else []
                if not files:
                    for stale in (course.feedback / s / a).glob("*.html"):     # an earlier run's page: not this one
                        stale.unlink()
                    why = "took too long" if codes[s] == 124 else "could not be rendered"
                    files = [failure_page(course, s, a, f"The feedback page {why}; your instructor has been told "
                                                        f"(see {(logs / f'{s}.log').relative_to(course.root)}).")]
                for f in files:
                    add_csp(f)
                made += files
        for s in sorted(set(subs) - set(graded)):
            made.append(failure_page(course, s, a, "Your submission could not be graded automatically. "
                                           "Your instructor has been told and will grade it by hand."))
        course.say(f"{a}: feedback for {len(subs)} student(s) in {course.feedback}/<student>/{a}/")
        waiting = written_to_grade(course, a, graded)
        if waiting:
            course.say(f"  {len(waiting)} of them still have written answers to grade ({', '.join(waiting[:10])}"
                       f"{', ...' if len(waiting) > 10 else ''}): their pages show those answers without points. "
                       "Grade them in the formgrader (./course instructor lab), then run feedback again.")
        if zip_it:
            course.say(f"{a}: all pages zipped in {feedback_zip(course, a)}")
        if ex is not None:
            back = exchange_io.return_feedback(course, ex, a, subs)
            for r in back:
                course.say(f"  {r.student}: " + (f"{r.pages} page(s) returned through the hub's exchange (Fetch "
                                                 "Feedback in their Assignment List)" if not r.why else
                                                 f"not returned through the exchange: {r.why}"))
            course.say(f"{a}: feedback returned through the exchange to {sum(not r.why for r in back)} of "
                       f"{len(back)} student(s)")
    return made

def written_to_grade(course, assignment: str, students) -> list[str]:
    """The students whose written answers of ``assignment`` wait for the formgrader."""
    from .grades import submission_score
    with course.gradebook() as gb:
        return [s for s in sorted(students) if submission_score(course, assignment, s, gb).pending]


def failure_page(course, s, a, msg) -> Path:
    d = course.feedback / s / a
    d.mkdir(parents=True, exist_ok=True)
    notes = read_notes(course.notes, a, s)
    items = "".join(f"<li>{_html(n)}</li>" for n in notes)
    p = d / "GRADING_PROBLEM.html"
    p.write_text(f"<html><head>{CSP_META}</head><body><h1>{_html(a)}: feedback for {_html(s)}</h1><p>{_html(msg)}</p>"
                 f"<ul>{items}</ul></body></html>")
    return p


def add_csp(page: Path) -> None:
    """Put :data:`CSP_META` first in the page's ``<head>`` (before anything it governs); once."""
    data = page.read_bytes()
    if CSP_META.encode() in data[:4096]:
        return
    m = _HEAD.search(data)
    at = m.end() if m else 0
    page.write_bytes(data[:at] + CSP_META.encode() + data[at:])


# ---------------------------------------------------------------- one process per student
def render_pages(course: CourseDir, assignment: str, students, logs: Path, jobs=None, timeout: float | None = None,
                 memory_mb: int | None = None) -> dict[str, int]:
    """nbgrader's ``generate_feedback`` for each student in a forked process of its own, ``jobs`` at a time;
    {student: exit code} (124: stopped after ``timeout`` seconds).  Each one's output is in ``logs/<student>.log``."""
    from nbgrader.apps.nbgraderapp import NbGraderApp      # imported once, here; the children share it
    timeout = RENDER_TIMEOUT if timeout is None else timeout
    memory_mb = RENDER_MEMORY_MB if memory_mb is None else memory_mb
    course.write_config()
    logs.mkdir(parents=True, exist_ok=True)
    env = course.env()
    ctx = multiprocessing.get_context("fork")
    jobs = max(1, jobs or min(4, os.cpu_count() or 1))
    pending, running, codes = list(students), {}, {}
    while pending or running:
        while pending and len(running) < jobs:
            s = pending.pop(0)
            argv = ["generate_feedback", assignment, f"--student={s}", "--force"]
            proc = ctx.Process(target=_render_child, args=(NbGraderApp, str(course.root), env, argv,
                                                           str(logs / f"{s}.log"), memory_mb), daemon=True)
            proc.start()
            running[s] = (proc, time.monotonic())
        for s, (proc, t0) in list(running.items()):
            if not proc.is_alive():
                proc.join()
                codes[s] = proc.exitcode if proc.exitcode is not None else 1
            elif time.monotonic() - t0 > timeout:
                proc.kill()
                proc.join()
                codes[s] = 124
                with open(logs / f"{s}.log", "a") as f:
                    f.write(f"\n[instructor] stopped after {timeout:g} s\n")
            else:
                continue
            del running[s]
        time.sleep(0.05)
    return codes


def _render_child(app_class, root: str, env: dict, argv: list[str], log: str, memory_mb: int) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    print(f"$ nbgrader {' '.join(argv)}", flush=True)
    with open("/proc/self/statm") as f:
        now = int(f.read().split()[0]) * resource.getpagesize()
    limit = now + memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.chdir(root)
    os.environ.clear()
    os.environ.update(env)
    app_class.clear_instance()
    try:
        app_class.launch_instance(argv=argv)
    except SystemExit as e:
        os._exit(e.code if isinstance(e.code, int) else 1)
    except BaseException as e:                 # noqa: BLE001 - the child reports and exits, whatever happened
        print(f"[instructor] {type(e).__name__}: {e}", flush=True)
        os._exit(1)
    os._exit(0)
