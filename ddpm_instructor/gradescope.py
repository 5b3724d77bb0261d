"""Grading outside this machine: one submission graded on its own, and Gradescope's autograder around it.

    ./course instructor grade-one SUBMISSION --assignment A --out results.json     # any machine, one submission
    ./course instructor export-autograder A [--public STAGE ...]                    # grading/gradescope/A.zip

``grade_one`` runs the whole pipeline of this package for one submission in a private course directory (release
of the shipped sources, collect, autograde in the sandbox, the graded tests judged outside the kernel) and writes
Gradescope's ``results.json``: the score, one test per graded cell with its message, the collect and autograde
notes as the output.  The graded tests are hidden tests, so their results are ``after_published`` by default:
students see them when the instructor publishes the grades.  It reads the submission first and only through
``copy_upload``: regular files of the student's own, never a link, a hard link or a special file.

``export_autograder`` builds the zip Gradescope asks for (``setup.sh`` and ``run_autograder`` at its root, the course
in ``course/``), as otter-grader does.  Gradescope runs every submission in its own container, so a class of any
size grades in parallel there; inside it the same sandbox and time limits apply, in either mode: ``run_autograder``
closes the shipped course to other users and the bundle is written with modes of its own (``bundle.FILE_MODE``).
"""
from __future__ import annotations

import json
import os
import stat
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from . import records
from .sanitize import terminal_safe as shown
from .coursedir import REPO, CourseDir
from .errors import InstructorError

VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")
# what the autograder zip carries of the repository (never MNIST: setup.sh downloads it)
SHIPPED = ["pyproject.toml", "README.md", "nbgrader_config.py", "solutions", "tutorial_utils", "ddpm_instructor",
           "checkpoints", "notebooks/source"]


def _results(course: CourseDir, assignment: str, student: str, seconds: float, visibility: str,
             graded: bool = True) -> dict:
    """Gradescope's ``results.json`` for the autograded part: the scores from ``grades.submission_score`` (the
    source of the grades CSV too), the messages and notes from the autograde record.  ``graded=False``: nothing was
    released or run (the submission was refused up front), every test 0."""
    from .grades import submission_score
    rec = records.load_autograde(course.notes, assignment, student) if graded else None
    notes = records.read_notes(course.notes, assignment, student) if graded else []
    sc = submission_score(course, assignment, student) if graded else None
    cells = sc.cells if sc else {}
    by_id = {t.grade_id: t for t in rec.tests()} if rec is not None else {}
    missing = "the notebook could not be run" if graded else "no notebook was handed in"
    tests = []
    for number, (_, gid, max_pts) in enumerate(course.points(assignment), 1):
        t, cell = by_id.get(gid), cells.get(gid)
        tests.append({"name": gid, "number": str(number), "score": cell.score if cell else 0.0, "max_score": max_pts,
                      "output": t.message if t else f"not graded: {missing} (see the output above)",
                      "visibility": visibility})
    output = "\n".join(f"- {n}" for n in notes) or "The notebook ran without problems."
    written = written_note(course, assignment)
    return {"score": sc.autograded if sc else 0.0, "execution_time": round(seconds, 1),
            "output": "Grader notes:\n" + output + (f"\n\n{written}" if written else ""),
            "visibility": "visible", "stdout_visibility": "hidden", "tests": tests}


def written_note(course: CourseDir, assignment: str) -> str:
    """What ``results.json`` tells the student about the written answers, which this autograder does not grade."""
    cells = course.points(assignment, written=True)
    if not cells:
        return ""
    return (f"This score is the autograded part only. Your {len(cells)} written answer(s) "
            f"({sum(p for *_, p in cells):g} points) are graded by hand, in a separate Gradescope assignment.")


WRITTEN_README = """# {assignment}: Gradescope autograder

Upload this zip as the autograder of a Gradescope *Programming Assignment* worth {auto:g} points: it grades the
{n_auto} graded tests ({auto:g} points) in the sandbox and writes `results.json`.

{written}
"""

WRITTEN_HOWTO = """## The written answers ({n} answer(s), {points:g} points): graded by hand, in a second assignment

This autograder does not grade them (`results.json` has no test for them), as with otter-grader's Gradescope export:

1. Create a second Gradescope assignment, *{assignment} (written)*, of type Homework / Problem Set (students
   upload a PDF: JupyterLab's File > Save and Export Notebook As > PDF or HTML, printed to PDF), with one question
   per answer cell, in this order and with these points:

   | question | answer cell | points |
   |---|---|---|
{table}

2. Paste the rubric of each question from the instructor source (`notebooks/source/{assignment}/`, the
   **Rubric** paragraph of each `written_*` cell) into that question's rubric.
3. After grading, export both assignments' scores and add them (or use `./course instructor` locally, where the
   formgrader grades the written answers and `grades` adds them: docs/INSTRUCTORS.md, "Grading the written answers").
"""


def autograder_readme(course: CourseDir, assignment: str) -> str:
    """The README.md of the autograder zip: what it grades, and how to grade the written part on Gradescope."""
    auto, cells = course.points(assignment), course.points(assignment, written=True)
    written = WRITTEN_HOWTO.format(
        n=len(cells), points=sum(p for *_, p in cells), assignment=assignment,
        table="\n".join(f"   | {i} | `{gid}` | {pts:g} |" for i, (_, gid, pts) in enumerate(cells, 1))
    ) if cells else "This assignment has no written answers: the autograder grades all of it."
    return WRITTEN_README.format(assignment=assignment, auto=sum(p for *_, p in auto), n_auto=len(auto),
                                 written=written)


# ------------------------------------------------------------------ reading what the student uploaded
CHUNK = 1 << 20
MAX_DEPTH = 16


@dataclass
class Upload:
    """What ``copy_upload`` took from a submission: the notebooks copied (paths relative to the upload) and what it
    refused to read, (name, why)."""
    copied: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)

    def notes(self) -> list[str]:
        return [f"{name}: {why}" for name, why in self.refused]


def _not_regular(st: os.stat_result) -> str | None:
    """Why a file of this ``lstat`` is not read (None: a regular file with no other name)."""
    if stat.S_ISLNK(st.st_mode):
        return ("a symbolic link, not read: the grader never follows links (upload the notebook file itself, not a "
                "link or a shortcut to it)")
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (a pipe, socket or device), not read: upload the notebook file itself"
    if st.st_nlink != 1:
        return ("a hard link (another name of a file elsewhere), not read: upload the notebook file itself, "
                "a copy of your own")
    return None


def _copy_regular(src: Path, dst: Path, seen: os.stat_result) -> str | None:
    """Copy ``src`` to ``dst`` (0644) if it is still the regular file ``seen`` was: opened without following a link
    and without blocking, checked again on the open file.  Returns why not, or None."""
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        return f"could not be opened ({e.strerror}), not read"
    with os.fdopen(fd, "rb") as fi:
        st = os.fstat(fi.fileno())
        why = _not_regular(st)
        if why or (st.st_dev, st.st_ino) != (seen.st_dev, seen.st_ino):
            return why or "changed while it was read, not read"
        fo = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        with os.fdopen(fo, "wb") as out:
            while block := fi.read(CHUNK):
                out.write(block)
        os.chmod(dst, 0o644)
    return None


def copy_upload(submission: Path, inbox: Path) -> Upload:
    """Copy the notebooks of ``submission`` (a notebook, or a folder holding them, as uploaded) into ``inbox``.

    Nothing but regular files with no other name is read: a symbolic link (to the course's own notebook, say, which
    root could read), a hard link, a pipe or a device is refused from its ``lstat``, before anything opens it, and
    listed in ``refused``; folders are walked without following links.  The copies are flat (``inbox/<name>``; a
    second notebook of the same name is refused)."""
    up = Upload()

    def visit(path: Path, rel: str, depth: int = 0) -> None:
        label = shown(rel or path.name or str(path))
        if depth > MAX_DEPTH:
            up.refused.append((label, f"folders nested more than {MAX_DEPTH} deep, not read"))
            return
        try:
            st = os.lstat(path)
        except OSError as e:
            up.refused.append((label, f"could not be read ({e.strerror})"))
            return
        if stat.S_ISDIR(st.st_mode):
            try:
                names = sorted(os.listdir(path))
            except OSError as e:
                up.refused.append((label, f"a folder that could not be listed ({e.strerror})"))
                return
            for n in names:
                visit(path / n, f"{rel}/{n}" if rel else n, depth + 1)
            return
        why = _not_regular(st)
        if why:
            up.refused.append((label, why))
        elif path.suffix == ".ipynb":
            if (inbox / path.name).exists():
                up.refused.append((label, f"a second notebook named {shown(path.name)}, not read: hand in one"))
                return
            why = _copy_regular(path, inbox / path.name, st)
            if why:
                up.refused.append((label, why))
            else:
                up.copied.append(rel)

    submission = Path(submission)
    visit(submission, "" if os.path.isdir(submission) and not os.path.islink(submission) else submission.name)
    return up


def grade_one(submission, out, assignment: str, public=(), source=None, workdir=None, sandbox=None,
              visibility: str = "after_published", cell_timeout=None, notebook_timeout=None) -> dict:
    """Grade one submission (a notebook, or a folder holding it) on its own and write ``results.json`` to ``out``.

    Always writes a ``results.json``: a submission that cannot be collected or run gets 0 with the reason, and every
    file that is not a regular file of the student's own (``copy_upload``) is named in the output, unread.
    """
    if visibility not in VISIBILITIES:
        raise InstructorError(f"--visibility {visibility}: use one of {', '.join(VISIBILITIES)}.")
    submission, out = Path(submission), Path(out)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ddpm-grade-one-", dir=workdir) as tmp:
        inbox = Path(tmp) / "in" / "student"
        inbox.mkdir(parents=True)
        upload = copy_upload(submission, inbox)          # first: nothing else reads the submission
        course = CourseDir(root=Path(tmp) / "course", source=source, sandbox=sandbox, quiet=True,
                           cell_timeout=cell_timeout, notebook_timeout=notebook_timeout)
        if not upload.copied:
            result = _results(course, assignment, "student", time.monotonic() - t0, visibility, graded=False)
            why = "no notebook file was handed in" + (" (only what is listed below, not read)" if upload.refused else "")
            result["output"] = f"Your submission could not be graded: {why}. Hand in the assignment's notebook."
        else:
            from .autograde import autograde
            from .collect import collect
            from .release import release
            release(course, [assignment], public=public)
            report = collect(course, [inbox.parent], assignment=assignment)
            if not (course.submitted / "student" / assignment).is_dir():
                why = "; ".join(f"{f}: {r}" for f, r in report.unmatched + report.skipped) or "no notebook was handed in"
                result = _results(course, assignment, "student", time.monotonic() - t0, visibility)
                result["output"] = f"Your submission could not be graded: {why}. Hand in the assignment's notebook."
            else:
                autograde(course, [assignment], jobs=1)
                result = _results(course, assignment, "student", time.monotonic() - t0, visibility)
    if upload.refused:
        result["output"] += "\n\nFiles in your submission that were refused (0 points for each):\n" + \
            "\n".join(f"- {n}" for n in upload.notes())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False))
    return result


SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once when it builds the autograder image (Ubuntu, as root, with internet).
set -euo pipefail
apt-get update -qq
apt-get install -y -qq python3 python3-venv python3-pip bubblewrap util-linux >/dev/null
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install -q -r /autograder/source/requirements.txt
# MNIST for the notebooks' demonstration cells (the graded tests do not need it)
/autograder/venv/bin/python -c "from torchvision.datasets import MNIST; MNIST('/autograder/data', download=True)" || true
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission, in its own container: the submission is in $ROOT/submission,
# results.json goes to $ROOT/results.  AUTOGRADER_ROOT / AUTOGRADER_PYTHON exist for testing it elsewhere.
set -uo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
PY="${{AUTOGRADER_PYTHON:-$ROOT/venv/bin/python}}"
export DDPM_DATA_DIR="${{DDPM_DATA_DIR:-$ROOT/data}}" DDPM_DOWNLOAD=0 DDPM_PROFILE=smoke
export PYTHONPATH="$ROOT/source/course"          # the course shipped in this zip, never an installed copy
export PYTHONSAFEPATH=1                          # nor a package in the working directory (Python >= 3.11)
export PYTHONDONTWRITEBYTECODE=1                 # and the course stays as shipped (no __pycache__ others could read)
cd "$ROOT"                                       # Gradescope's working directory, wherever this is started from
umask 022                                        # what the grader writes for the kernel (its inputs) is readable
mkdir -p "$ROOT/results"
# Where bubblewrap cannot create namespaces (Docker's default seccomp profile) the kernel runs as an unprivileged uid
# (ddpm_instructor.sandbox, mode user), which must not be able to read the course shipped here (answers, tooling).
# The student bundle grade-one builds from it is written with modes of its own (folders 0755, files 0644).
chmod -R go-rwx "$ROOT/source"
"$PY" -m ddpm_instructor grade-one "$ROOT/submission" --assignment {assignment} {public} \\
    --source "$ROOT/source/course/notebooks/source" --out "$ROOT/results/results.json" --visibility {visibility} "$@"
"""


def export_autograder(course: CourseDir, assignment: str, public=(), out=None,
                      visibility: str = "after_published") -> Path:
    """Gradescope's autograder zip for ``assignment``: ``setup.sh``, ``run_autograder``, ``requirements.txt`` and the
    course (sources, reference, tooling, checkpoints) under ``course/``."""
    from .bundle import REQUIREMENTS, declare_public, public_stages
    if not (course.origin / assignment).is_dir():
        raise InstructorError(f"no source notebooks for {assignment} in {course.origin}.")
    stages = sorted(declare_public(course, public) if public else public_stages(course))
    out = Path(out) if out else course.root / "gradescope" / f"{assignment}.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    pub = " ".join(f"--public {s}" for s in stages)
    files = {"setup.sh": SETUP_SH,
             "run_autograder": RUN_AUTOGRADER.format(assignment=assignment, public=pub, visibility=visibility),
             "requirements.txt": "\n".join(REQUIREMENTS + ["nbgrader>=0.9,<0.10", "nbclient>=0.8", "nbformat>=5.7"]) + "\n",
             "README.md": autograder_readme(course, assignment)}
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16
            zf.writestr(info, text)
        for rel in SHIPPED:
            src = REPO / rel
            paths = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
            for p in paths:
                parts = p.relative_to(REPO).parts
                if "__pycache__" in parts or ".ipynb_checkpoints" in parts:
                    continue
                if rel == "notebooks/source" and parts[2] != assignment:
                    continue
                zf.write(p, "course/" + "/".join(parts))
    written = course.points(assignment, written=True)
    if written:
        course.say(f"{assignment}: the autograder grades the graded tests only; the {len(written)} written answer(s) "
                   f"({sum(p for *_, p in written):g} points) go in a separate, manually graded Gradescope assignment "
                   "(README.md in the zip says how)")
    return out
