"""Step 3: ``autograde`` -- run every new or changed submission in the sandbox (nbgrader with ``GuardedExecute``),
judge the graded tests outside the kernel, record the grades.  One bad submission never stops the batch.

The submissions are graded in chunks (one nbgrader process per chunk, ``jobs`` at a time).  ``GuardedExecute``
enforces the real limits (per cell, per notebook, per judged test); each chunk also gets a generous *backstop*
(``backstop_s``).  A chunk that hits it is killed with its whole process group, and the submissions it left
ungraded are split in halves and rerun (``bisect_backstop``), so that only a submission that hits the backstop on
its own fails, with a note; every other one is graded.

Preconditions, checked before anything runs: the assignment is released (``./course instructor release A``;
autograde never releases) and the sandbox works (or ``--no-sandbox``).
"""
from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from . import records
from .bundle import bundle_solutions_dir
from .coursedir import CourseDir, fmt_ts, now_utc, parse_ts, stamp, unique
from .errors import InstructorError
from .grades import submission_score
from .graded import TESTS, write_inputs
from .records import GradeResult
from .sandbox import selftest

BACKSTOP_RC = 124          # what a chunk killed by its backstop returns


# --------------------------------------------------------------------------- what needs grading
def needs_grading(course: CourseDir, assignment: str, student: str) -> bool:
    sub, auto = course.submitted / student / assignment, course.autograded / student / assignment
    ts = (sub / "timestamp.txt").read_text() if (sub / "timestamp.txt").exists() else ""
    if not auto.exists():   # not graded yet -- unless it already failed and has not changed since (--force)
        rec = records.load_autograde(course.notes, assignment, student)
        return rec is None or not rec.failure or rec.failed_for != ts
    a, b = sub / "timestamp.txt", auto / "timestamp.txt"
    if a.exists() != b.exists() or (a.exists() and a.read_text() != b.read_text()):
        return True
    return any((auto / p.name).stat().st_mtime < p.stat().st_mtime if (auto / p.name).exists() else True
               for p in sub.glob("*.ipynb"))


def graded_ok(course: CourseDir, assignment: str, student: str) -> bool:
    rec = records.load_autograde(course.notes, assignment, student)
    return (course.autograded / student / assignment).is_dir() and rec is not None and rec.executed


def _archive_autograded(course: CourseDir, assignment: str, student: str) -> None:
    """Move an autograded copy (a previous grade, or what a killed run left) to ``archive/``; drop its notes."""
    auto = course.autograded / student / assignment
    if auto.exists():
        prev = parse_ts((auto / "timestamp.txt").read_text()) if (auto / "timestamp.txt").exists() else None
        keep = unique(course.archive / student / assignment / f"autograded-{stamp(prev) if prev else stamp()}")
        keep.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(auto), str(keep))
    notes = records.notes_path(course.notes, assignment, student, "autograde")
    if notes.exists():
        notes.unlink()


# --------------------------------------------------------------------------- preconditions
def check_sandbox(course: CourseDir) -> None:
    if course.sandbox == "off":
        return
    why = selftest(course.sandbox)
    if why:
        raise InstructorError(f"cannot sandbox student code: {why}.\nInstall bubblewrap (apt-get install -y "
                              "bubblewrap) or, only for trusted notebooks, pass --no-sandbox.")


def check_released(course: CourseDir, assignment: str) -> None:
    """Autograde grades what ``release`` made: the gradebook entry, the student version, the bundle."""
    if not course.in_gradebook(assignment) or not (course.release / assignment).is_dir() \
            or not bundle_solutions_dir(course, assignment).is_dir():
        raise InstructorError(f"{assignment} is not released yet (no gradebook entry, student version or bundle): "
                              f"run `./course instructor release {assignment}` first, then autograde.")
    unknown = [gid for _, gid, _ in course.points(assignment) if gid not in TESTS]
    if unknown:
        raise InstructorError(f"{assignment} has graded cells the grader has no test for: {', '.join(unknown)} "
                              "(add them to ddpm_instructor.graded.TESTS, then release again).")


def write_graded_inputs(course: CourseDir, assignment: str) -> Path:
    """The graded tests' inputs for this run (the grader's own, written fresh every time)."""
    target = course.graded_inputs / assignment
    if target.exists():
        shutil.rmtree(target)
    write_inputs(target, [gid for _, gid, _ in course.points(assignment)])
    return target


# --------------------------------------------------------------------------- chunks and their backstop
def bisect_backstop(students: list, run: Callable[[list], tuple], ok: Callable[[str], bool]) -> dict:
    """Run ``students`` as one chunk (``run(students) -> (rc, log)``); when it hits the backstop
    (``BACKSTOP_RC``), rerun the ones it left ungraded in two halves, recursively, until a submission that hits
    the backstop alone is the only one to fail.  Returns student -> the (rc, log) of the last run that had it."""
    rc, log = run(students)
    outcome = {s: (rc, log) for s in students}
    left = [s for s in students if not ok(s)]
    if rc != BACKSTOP_RC or not left or len(students) == 1:
        return outcome
    half = (len(left) + 1) // 2
    for part in (left[:half], left[half:]):
        if part:
            outcome.update(bisect_backstop(part, run, ok))
    return outcome


def backstop_s(course: CourseDir, assignment: str, n_students: int) -> int:
    """A chunk's backstop: far above what the grading preprocessors' own limits allow its submissions."""
    from .judge_graded import JudgeGradedCells
    cell, nbt = course.limits(assignment)
    n_nb = max(1, len(list((course.release / assignment).glob("*.ipynb"))))
    judge_s = course.judge_timeout or JudgeGradedCells.class_traits()["judge_timeout"].default_value
    n_tests = len(course.points(assignment))
    return n_students * n_nb * (nbt + 4 * cell + 60) + n_students * n_tests * judge_s + 300


def run_in_group(cmd: list, cwd, env: dict, timeout: float, log: Path) -> int:
    """Run ``cmd`` in a process group of its own, output appended to ``log``; past ``timeout`` the whole group is
    killed (nothing it started is left behind) and ``BACKSTOP_RC`` returned."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as f:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            f.write(f"\n[instructor] stopped after {timeout:.0f} s (the backstop); its process group was killed\n"
                    .encode())
            return BACKSTOP_RC


def run_nbgrader(course: CourseDir, args: list, timeout: float, log: Path) -> int:
    """``nbgrader ARGS`` for this course (``run_in_group``)."""
    course.write_config()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as f:
        f.write(f"\n$ nbgrader {' '.join(args)}   # {fmt_ts(now_utc())}\n".encode())
    return run_in_group([sys.executable, "-m", "nbgrader", *args], course.root, course.env(), timeout, log)


def _chunk_runner(course: CourseDir, assignment: str, batch_id: str) -> Callable[[list], tuple]:
    everyone = set(course.submissions(assignment))
    counter = itertools.count()

    def run(chunk: list) -> tuple:
        for student in chunk:          # nbgrader skips what is already autograded: a rerun starts clean
            if (course.autograded / student / assignment).exists():
                _archive_autograded(course, assignment, student)
        exclude = ",".join(sorted(everyone - set(chunk)))
        log = course.logs / "autograde" / assignment / f"{batch_id}-{next(counter)}.log"
        args = ["autograde", assignment, *course.traits(assignment)] + (
            [f"--CourseDirectory.student_id_exclude={exclude}"] if exclude else [])
        return run_nbgrader(course, args, backstop_s(course, assignment, len(chunk)), log), log
    return run


def grade_chunks(course: CourseDir, assignment: str, todo: list, jobs: int) -> dict:
    """Grade ``todo`` in ``jobs`` parallel chunks (each bisected on its backstop); a submission nbgrader could not
    process for another reason (the gradebook busy with --jobs) gets one more try.  student -> (rc, log)."""
    run = _chunk_runner(course, assignment, stamp())
    ok = lambda s: graded_ok(course, assignment, s)
    chunks = [todo[i::jobs] for i in range(jobs)]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        outcomes = {}
        for part in pool.map(lambda c: bisect_backstop(c, run, ok), chunks):
            outcomes.update(part)
    retry = [s for s in todo if not ok(s) and outcomes[s][0] != BACKSTOP_RC]
    if retry:
        outcomes.update(bisect_backstop(retry, run, ok))
    return outcomes


# --------------------------------------------------------------------------- results
def _result(course: CourseDir, assignment: str, student: str, rc: int, log: Path) -> GradeResult:
    ok = graded_ok(course, assignment, student)
    rec = records.load_autograde(course.notes, assignment, student) or records.AutogradeRecord()
    res = GradeResult(student, assignment, ok, rec.seconds, str(log.relative_to(course.root)))
    if ok:
        sc = submission_score(course, assignment, student)
        res.score, res.max_score = sc.autograded, sc.autograded_max
        return res
    limit = backstop_s(course, assignment, 1)
    why = (f"took longer than the grader's backstop ({limit} s for one submission) even when run on its own"
           if rc == BACKSTOP_RC else "failed")
    rec.failure = f"Autograding {why}; see {res.log}"
    ts_file = course.submitted / student / assignment / "timestamp.txt"
    rec.failed_for = ts_file.read_text() if ts_file.exists() else ""
    records.save(rec, records.notes_path(course.notes, assignment, student, "autograde"))
    return res


def _report(course: CourseDir, assignment: str, batch: list, elapsed: float) -> None:
    for r in batch:
        course.say(f"  {r.student:<24} {r.describe()}")
    failed = [r for r in batch if not r.ok]
    course.say(f"{assignment}: {len(batch) - len(failed)}/{len(batch)} graded in {elapsed:.0f} s "
               f"({elapsed / len(batch):.1f} s per submission)" +
               (f"; FAILED: {', '.join(r.student for r in failed)} (see logs/autograde/{assignment}/)"
                if failed else ""))


# --------------------------------------------------------------------------- the step
def autograde_assignment(course: CourseDir, assignment: str, students=None, force=False, jobs=1) -> list[GradeResult]:
    check_released(course, assignment)
    todo = [s for s in (students or course.submissions(assignment)) if (course.submitted / s / assignment).is_dir()]
    todo = [s for s in todo if force or needs_grading(course, assignment, s)]
    if not todo:
        course.say(f"{assignment}: nothing new to grade ({len(course.submissions(assignment))} submissions already "
                   "graded; --force to regrade)")
        return []
    write_graded_inputs(course, assignment)
    course.backup_gradebook(f"autograde-{assignment}")
    for student in todo:                           # keep the previous autograded copy of a regrade
        _archive_autograded(course, assignment, student)
    jobs = max(1, min(jobs, len(todo)))
    cell, nbt = course.limits(assignment)
    where = "in the sandbox" if course.sandbox != "off" else "WITHOUT sandbox (--no-sandbox)"
    course.say(f"{assignment}: autograding {len(todo)} submission(s) {where} "
               f"(cell limit {cell} s, notebook limit {nbt} s, {jobs} nbgrader process(es))")
    t0 = time.monotonic()
    outcomes = grade_chunks(course, assignment, todo, jobs)
    batch = [_result(course, assignment, s, *outcomes[s]) for s in todo]
    _report(course, assignment, batch, time.monotonic() - t0)
    return batch


def autograde(course: CourseDir, assignments=None, students=None, force=False, jobs=1) -> list[GradeResult]:
    """Autograde every released assignment (or ``assignments``): new and changed submissions only, unless ``force``."""
    check_sandbox(course)
    names = list(assignments or course.released_assignments())
    for a in names:                                # every precondition before any grading
        check_released(course, a)
    return [r for a in names for r in autograde_assignment(course, a, students, force, jobs)]
