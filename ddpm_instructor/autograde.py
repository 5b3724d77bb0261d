"""Step 3: ``autograde`` -- run every new or changed submission in the sandbox (nbgrader with ``GuardedExecute``),
judge the graded tests outside the kernel, record the grades.  One bad submission never stops the batch."""
from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor

from . import records
from .bundle import bundle_solutions_dir
from .coursedir import CourseDir, parse_ts, stamp, unique
from .errors import InstructorError
from .graded import TESTS, write_inputs
from .records import GradeResult
from .sandbox import selftest


def needs_grading(course: CourseDir, student: str, assignment: str) -> bool:
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


def graded_ok(course: CourseDir, student: str, a: str) -> bool:
    rec = records.load_autograde(course.notes, a, student)
    return (course.autograded / student / a).is_dir() and rec is not None and rec.executed


def _archive_autograded(course: CourseDir, student: str, a: str) -> None:
    auto = course.autograded / student / a
    if auto.exists():
        prev = parse_ts((auto / "timestamp.txt").read_text()) if (auto / "timestamp.txt").exists() else None
        keep = unique(course.archive / student / a / f"autograded-{stamp(prev) if prev else stamp()}")
        keep.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(auto), str(keep))
    notes = records.notes_path(course.notes, a, student, "autograde")
    if notes.exists():
        notes.unlink()


def _prepare(course: CourseDir, a: str) -> None:
    """The graded tests' inputs, and the bundle whose solutions/ the kernel sees."""
    from .release import release
    if not course.in_gradebook(a) or not (course.release / a).exists() or not bundle_solutions_dir(course, a).is_dir():
        course.say(f"{a} is not released yet: releasing it first")
        release(course, [a])
    ids = [gid for _, gid, _ in course.points(a)]
    unknown = [g for g in ids if g not in TESTS]
    if unknown:
        raise InstructorError(f"{a} has graded cells the grader has no test for: {', '.join(unknown)} "
                              "(add them to ddpm_instructor.graded.TESTS).")
    target = course.graded_inputs / a
    if target.exists():
        shutil.rmtree(target)
    write_inputs(target, ids)


def autograde(course: CourseDir, assignments=None, students=None, force=False, jobs=1) -> list[GradeResult]:
    if course.sandbox != "off":
        why = selftest()
        if why:
            raise InstructorError(f"cannot sandbox student code: {why}.\nInstall bubblewrap (apt-get install -y "
                                  "bubblewrap) or, only for trusted notebooks, pass --no-sandbox.")
    results = []
    for a in list(assignments or course.released_assignments()):
        _prepare(course, a)
        todo = [s for s in (students or course.submissions(a)) if (course.submitted / s / a).is_dir()]
        todo = [s for s in todo if force or needs_grading(course, s, a)]
        if not todo:
            course.say(f"{a}: nothing new to grade ({len(course.submissions(a))} submissions already graded; "
                       "--force to regrade)")
            continue
        course.backup_gradebook(f"autograde-{a}")
        for student in todo:                           # keep the previous autograded copy of a regrade
            _archive_autograded(course, student, a)
        cell, nbt = course.limits(a)
        n_nb = max(1, len(list((course.release / a).glob("*.ipynb"))))
        jobs_ = max(1, min(jobs, len(todo)))
        chunks = [todo[i::jobs_] for i in range(jobs_)]
        where = "in the sandbox" if course.sandbox != "off" else "WITHOUT sandbox (--no-sandbox)"
        course.say(f"{a}: autograding {len(todo)} submission(s) {where} "
                   f"(cell limit {cell} s, notebook limit {nbt} s, {jobs_} nbgrader process(es))")
        t0 = time.monotonic()
        everyone = set(course.submissions(a))
        batch_id = stamp()

        def run_chunk(k):
            chunk = chunks[k]
            # a backstop only: GuardedExecute enforces the real per-cell and per-notebook limits
            outer = len(chunk) * n_nb * (nbt + 4 * cell + 60) + 300
            exclude = ",".join(sorted(everyone - set(chunk)))
            log = course.logs / "autograde" / a / f"{batch_id}-{k}.log"
            args = ["autograde", a, *course.traits(a)] + (
                [f"--CourseDirectory.student_id_exclude={exclude}"] if exclude else [])
            return course.nbgrader(*args, timeout=outer, log=log).returncode, log

        with ThreadPoolExecutor(max_workers=jobs_) as pool:
            outcomes = list(pool.map(run_chunk, range(jobs_)))
        logs = {s: outcomes[k] for k in range(jobs_) for s in chunks[k]}
        # a submission nbgrader could not process (e.g. the gradebook was busy with --jobs): one more try, alone
        retry = [s for s in todo if not graded_ok(course, s, a) and logs[s][0] != 124]
        if retry:
            for student in retry:
                _archive_autograded(course, student, a)
            chunks.append(retry)
            rc_log = run_chunk(len(chunks) - 1)
            for student in retry:
                logs[student] = rc_log
        elapsed = time.monotonic() - t0
        batch = []
        for student in todo:
            rc, log = logs[student]
            ok = graded_ok(course, student, a)
            rec = records.load_autograde(course.notes, a, student) or records.AutogradeRecord()
            res = GradeResult(student, a, ok, rec.seconds, str(log.relative_to(course.root)))
            if ok:
                res.score, res.max_score = course.score(student, a)
            else:
                why = "took too long as a whole" if rc == 124 else "failed"
                rec.failure = f"Autograding {why}; see {res.log}"
                ts_file = course.submitted / student / a / "timestamp.txt"
                rec.failed_for = ts_file.read_text() if ts_file.exists() else ""
                records.save(rec, records.notes_path(course.notes, a, student, "autograde"))
            batch.append(res)
        for r in batch:
            course.say(f"  {r.student:<24} {r.describe()}")
        failed = [r for r in batch if not r.ok]
        course.say(f"{a}: {len(batch) - len(failed)}/{len(batch)} graded in {elapsed:.0f} s "
                   f"({elapsed / len(batch):.1f} s per submission)" +
                   (f"; FAILED: {', '.join(r.student for r in failed)} (see logs/autograde/{a}/)" if failed else ""))
        results += batch
    return results
