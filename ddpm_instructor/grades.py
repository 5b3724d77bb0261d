"""Step 5: ``grades`` -- the gradebook as CSV: ``grades.csv`` (one row per student and assignment, with what was
noticed and why a test failed) and ``grades_by_cell.csv`` (one row per graded test, with its message)."""
from __future__ import annotations

import csv
import datetime as dt
import shutil
from pathlib import Path

from . import records
from .coursedir import CourseDir, fmt_ts, stamp
from .records import read_notes


def grades(course: CourseDir, out=None) -> tuple[Path, Path, list[dict]]:
    """Export the gradebook: one row per student and assignment, and one per graded cell (with the test's message)."""
    from nbgrader.api import MissingEntry
    rows, cells = [], []
    with course.gradebook() as gb:
        assignments = [x.name for x in gb.assignments]
        for s in gb.students:
            for a in assignments:
                try:
                    sub = gb.find_submission(a, s.id)
                except MissingEntry:
                    rows.append(dict(student_id=s.id, first_name=s.first_name or "", last_name=s.last_name or "",
                                     email=s.email or "", assignment=a, status="missing", submitted_at="",
                                     score=0, max_score=gb.find_assignment(a).max_score, percent=0.0,
                                     needs_manual_grade=False, notes=""))
                    continue
                auto_dir = course.autograded / s.id / a
                status = "graded" if auto_dir.is_dir() else "not graded"
                notes = read_notes(course.notes, a, s.id)
                rec = records.load_autograde(course.notes, a, s.id)
                if rec is not None and not rec.executed:
                    status = "failed"
                failed_tests = [t for t in rec.tests() if not t.passed] if rec is not None else []
                notes += [f"{t.grade_id}: {t.message}" for t in failed_tests]
                messages = {t.grade_id: t.message for t in rec.tests()} if rec is not None else {}
                if sub.needs_manual_grade:
                    status += " (needs manual grade)"
                max_score = float(sub.max_score)
                score = float(sub.score) if status.startswith("graded") else 0.0
                rows.append(dict(student_id=s.id, first_name=s.first_name or "", last_name=s.last_name or "",
                                 email=s.email or "", assignment=a, status=status,
                                 submitted_at=fmt_ts(sub.timestamp.replace(tzinfo=dt.timezone.utc)) if sub.timestamp else "",
                                 score=round(score, 4), max_score=max_score,
                                 percent=round(100 * score / max_score, 1) if max_score else 0.0,
                                 needs_manual_grade=bool(sub.needs_manual_grade), notes=" | ".join(notes)))
                for nb in sub.notebooks:
                    for g in sorted(nb.grades, key=lambda g: g.name):
                        cells.append(dict(student_id=s.id, assignment=a, notebook=nb.name, cell=g.name,
                                          score=round(float(g.score), 4) if status.startswith("graded") else 0.0,
                                          max_score=float(g.max_score), message=messages.get(g.name, "")))
    rows.sort(key=lambda r: (r["assignment"], r["student_id"]))
    cells.sort(key=lambda r: (r["assignment"], r["student_id"], r["notebook"], r["cell"]))
    course.exports.mkdir(parents=True, exist_ok=True)
    t = stamp()
    main = course.exports / f"grades-{t}.csv"
    detail = course.exports / f"grades_by_cell-{t}.csv"
    _write_csv(main, GRADE_COLUMNS, rows)
    _write_csv(detail, CELL_COLUMNS, cells)
    latest = Path(out) if out else course.root / "grades.csv"
    latest_detail = latest.with_name((latest.stem.replace("grades", "grades_by_cell") if "grades" in latest.stem
                                      else latest.stem + "_by_cell") + ".csv")
    shutil.copy(main, latest)
    shutil.copy(detail, latest_detail)
    detail = latest_detail
    return latest, detail, rows



GRADE_COLUMNS = ["student_id", "first_name", "last_name", "email", "assignment", "status", "submitted_at",
                 "score", "max_score", "percent", "needs_manual_grade", "notes"]
CELL_COLUMNS = ["student_id", "assignment", "notebook", "cell", "score", "max_score", "message"]


def _write_csv(path, columns, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)
