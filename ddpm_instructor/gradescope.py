"""Grading outside this machine: one submission graded on its own, and Gradescope's autograder around it.

    ./course instructor grade-one SUBMISSION --assignment A --out results.json     # any machine, one submission
    ./course instructor export-autograder A [--public STAGE ...]                    # grading/gradescope/A.zip

``grade_one`` runs the whole pipeline of this package for one submission in a private course directory (release
of the shipped sources, collect, autograde in the sandbox, the graded tests judged outside the kernel) and writes
Gradescope's ``results.json``: the score, one test per graded cell with its message, the collect and autograde
notes as the output.  The graded tests are hidden tests, so their results are ``after_published`` by default:
students see them when the instructor publishes the grades.

``export_autograder`` builds the zip Gradescope asks for (``setup.sh`` and ``run_autograder`` at its root, the course
in ``course/``), as otter-grader does.  Gradescope runs every submission in its own container, so a class of any
size grades in parallel there; inside it the same sandbox and time limits apply.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

from . import records
from .coursedir import REPO, CourseDir
from .errors import InstructorError

VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")
# what the autograder zip carries of the repository (never MNIST: setup.sh downloads it)
SHIPPED = ["pyproject.toml", "README.md", "nbgrader_config.py", "solutions", "tutorial_utils", "ddpm_instructor",
           "checkpoints", "notebooks/source"]


def _results(course: CourseDir, assignment: str, student: str, seconds: float, visibility: str) -> dict:
    """Gradescope's ``results.json`` for the autograded part: the scores from ``grades.submission_score`` (the
    source of the grades CSV too), the messages and notes from the autograde record."""
    from .grades import submission_score
    rec = records.load_autograde(course.notes, assignment, student)
    notes = records.read_notes(course.notes, assignment, student)
    sc = submission_score(course, assignment, student)
    by_id = {t.grade_id: t for t in rec.tests()} if rec is not None else {}
    tests = []
    for number, (_, gid, max_pts) in enumerate(course.points(assignment), 1):
        t, cell = by_id.get(gid), sc.cells.get(gid)
        tests.append({"name": gid, "number": str(number), "score": cell.score if cell else 0.0, "max_score": max_pts,
                      "output": t.message if t else "not graded: the notebook could not be run (see the output above)",
                      "visibility": visibility})
    output = "\n".join(f"- {n}" for n in notes) or "The notebook ran without problems."
    written = written_note(course, assignment)
    return {"score": sc.autograded, "execution_time": round(seconds, 1),
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


def grade_one(submission, out, assignment: str, public=(), source=None, workdir=None, sandbox=None,
              visibility: str = "after_published", cell_timeout=None, notebook_timeout=None) -> dict:
    """Grade one submission (a notebook, or a folder holding it) on its own and write ``results.json`` to ``out``.

    Always writes a ``results.json``: a submission that cannot be collected or run gets 0 with the reason.
    """
    if visibility not in VISIBILITIES:
        raise InstructorError(f"--visibility {visibility}: use one of {', '.join(VISIBILITIES)}.")
    submission, out = Path(submission), Path(out)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ddpm-grade-one-", dir=workdir) as tmp:
        course = CourseDir(root=Path(tmp) / "course", source=source, sandbox=sandbox, quiet=True,
                           cell_timeout=cell_timeout, notebook_timeout=notebook_timeout)
        from .autograde import autograde
        from .collect import collect
        from .release import release
        release(course, [assignment], public=public)
        inbox = Path(tmp) / "in" / "student"
        inbox.mkdir(parents=True)
        found = [submission] if submission.is_file() else sorted(submission.rglob("*.ipynb"))
        for nb in found:
            shutil.copy2(nb, inbox / nb.name)
        report = collect(course, [inbox.parent], assignment=assignment)
        if not (course.submitted / "student" / assignment).is_dir():
            why = "; ".join(f"{f}: {r}" for f, r in report.unmatched + report.skipped) or "no notebook was handed in"
            result = _results(course, assignment, "student", time.monotonic() - t0, visibility)
            result["output"] = f"Your submission could not be graded: {why}. Hand in the assignment's notebook."
        else:
            autograde(course, [assignment], jobs=1)
            result = _results(course, assignment, "student", time.monotonic() - t0, visibility)
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
mkdir -p "$ROOT/results"
# Where bubblewrap cannot create namespaces (Docker's default seccomp profile) the kernel runs as an unprivileged uid
# (ddpm_instructor.sandbox, mode user), which must not be able to read the course shipped here (answers, tooling).
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
