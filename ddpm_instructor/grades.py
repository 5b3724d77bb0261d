"""Step 5: ``grades`` -- the gradebook as CSV: ``grades.csv`` (one row per student and assignment, with what was
noticed and why a test failed) and ``grades_by_cell.csv`` (one row per graded cell, with its message or the
instructor's comment); with ``--format canvas`` / ``--format moodle`` the gradebook import file of that LMS instead
(``ddpm_instructor.lms``).

Every score comes from ``submission_score`` (the one source): the CSV, the LMS files, ``autograde``'s report and
Gradescope's ``results.json`` (which reports the autograded part only).  A graded cell is *autograded* (a graded
test) or *written* (a Markdown answer cell graded by hand in the formgrader: nbgrader's ``manual_score`` and
``manual_comment``).
"""
from __future__ import annotations

import csv
import datetime as dt
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from . import records
from .coursedir import CourseDir, fmt_ts, stamp
from .errors import InstructorError
from .records import read_notes
from .roster import load_roster
from .sanitize import terminal_safe

NOT_GRADED_YET = "written part not graded yet"


@dataclass
class CellScore:
    notebook: str
    name: str
    written: bool           # a written answer, graded by hand (else a graded test, autograded)
    score: float
    max_score: float
    pending: bool = False   # a written answer that still waits for the formgrader
    comment: str = ""       # the instructor's comment (written answers)


@dataclass
class Score:
    """One submission's grade as the gradebook holds it.  ``status``: graded, not graded (collected, not yet
    autograded), failed (autograde could not run it), missing (nothing handed in)."""
    assignment: str
    student: str
    status: str
    autograded_max: float = 0.0
    written_max: float = 0.0
    cells: dict = field(default_factory=dict)      # grade id -> CellScore (empty unless graded)
    submitted_at: dt.datetime | None = None

    def _sum(self, written: bool) -> float:
        return round(float(sum(c.score for c in self.cells.values() if c.written == written)), 4)

    @property
    def autograded(self) -> float:
        return self._sum(False)

    @property
    def written(self) -> float:
        return self._sum(True)

    @property
    def total(self) -> float:
        return round(self.autograded + self.written, 4)

    @property
    def max_score(self) -> float:
        return self.autograded_max + self.written_max

    @property
    def pending(self) -> list[str]:
        return [c.name for c in self.cells.values() if c.pending]

    @property
    def final(self) -> bool:
        """Graded, and nothing left for the formgrader: the score an LMS may take."""
        return self.status == "graded" and not self.pending

    def describe(self) -> str:
        return f"{self.status}; {NOT_GRADED_YET}" if self.status == "graded" and self.pending else self.status


def submission_score(course: CourseDir, assignment: str, student: str, gb=None) -> Score:
    """The grade of ``student``'s ``assignment`` (pass an open nbgrader ``Gradebook`` as ``gb`` to reuse it)."""
    if gb is None:
        with course.gradebook() as gb:
            return submission_score(course, assignment, student, gb)
    from nbgrader.api import MissingEntry
    try:
        sub = gb.find_submission(assignment, student)
    except MissingEntry:
        a = gb.find_assignment(assignment)
        written = sum(float(c.max_score) for nb in a.notebooks for c in nb.grade_cells if c.cell_type == "markdown")
        return Score(assignment, student, "missing", float(a.max_score) - written, written)
    status = "graded" if (course.autograded / student / assignment).is_dir() else "not graded"
    rec = records.load_autograde(course.notes, assignment, student)
    if rec is not None and not rec.executed:
        status = "failed"
    score = Score(assignment, student, status, submitted_at=sub.timestamp)
    for nb in sub.notebooks:
        comments = {c.name: c.manual_comment or "" for c in nb.comments}
        for g in sorted(nb.grades, key=lambda g: g.name):
            written = g.cell_type == "markdown"
            if written:
                score.written_max += float(g.max_score)
            else:
                score.autograded_max += float(g.max_score)
            if status == "graded":
                score.cells[g.name] = CellScore(nb.name, g.name, written, round(float(g.score), 4),
                                                float(g.max_score), written and bool(g.needs_manual_grade),
                                                comments.get(g.name, "") if written else "")
    return score


def grades(course: CourseDir, out=None) -> tuple[Path, Path, list[dict]]:
    """Export the gradebook: one row per student and assignment, and one per graded cell (message or comment)."""
    rows, cells = [], []
    with course.gradebook() as gb:
        assignments = [x.name for x in gb.assignments]
        for s in gb.students:
            for a in assignments:
                sc = submission_score(course, a, s.id, gb)
                rows.append(_row(course, s, sc))
                cells += _cell_rows(course, sc)
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
    return latest, latest_detail, rows


def _row(course: CourseDir, student, sc: Score) -> dict:
    row = dict(student_id=student.id, first_name=student.first_name or "", last_name=student.last_name or "",
               email=student.email or "", assignment=sc.assignment, status=sc.describe(), submitted_at="",
               score=sc.total, max_score=sc.max_score,
               percent=round(100 * sc.total / sc.max_score, 1) if sc.max_score else 0.0,
               autograded=sc.autograded, autograded_max=sc.autograded_max, written=sc.written,
               written_max=sc.written_max, written_to_grade=len(sc.pending), needs_manual_grade=bool(sc.pending),
               notes="", comments="")
    if sc.status == "missing":
        return row
    if sc.submitted_at:
        row["submitted_at"] = fmt_ts(sc.submitted_at.replace(tzinfo=dt.timezone.utc))
    notes = read_notes(course.notes, sc.assignment, sc.student)
    rec = records.load_autograde(course.notes, sc.assignment, sc.student)
    notes += [f"{t.grade_id}: {t.message}" for t in (rec.tests() if rec is not None else []) if not t.passed]
    row["notes"] = " | ".join(notes)
    row["comments"] = " | ".join(f"{c.name}: {c.comment}" for c in sc.cells.values() if c.comment)
    return row


def _cell_rows(course: CourseDir, sc: Score) -> list[dict]:
    rec = records.load_autograde(course.notes, sc.assignment, sc.student)
    messages = {t.grade_id: t.message for t in rec.tests()} if rec is not None else {}
    return [dict(student_id=sc.student, assignment=sc.assignment, notebook=c.notebook, cell=c.name,
                 kind="written" if c.written else "autograded", score=c.score, max_score=c.max_score,
                 needs_manual_grade=c.pending, message=messages.get(c.name, ""), comment=c.comment)
            for c in sc.cells.values()]


GRADE_COLUMNS = ["student_id", "first_name", "last_name", "email", "assignment", "status", "submitted_at",
                 "score", "max_score", "percent", "autograded", "autograded_max", "written", "written_max",
                 "written_to_grade", "needs_manual_grade", "notes", "comments"]
CELL_COLUMNS = ["student_id", "assignment", "notebook", "cell", "kind", "score", "max_score", "needs_manual_grade",
                "message", "comment"]




_FORMULA = re.compile(r"[=+@\t\r]|-(?![\d.]+$)")    # what a spreadsheet reads as a formula (a plain -2.5 is data)


def _inert(value):
    """A value safe to ``cat`` in a terminal and to open in a spreadsheet: control characters but new lines and tabs
    (the escape sequences a student's exception message may carry into a test's message) written as ``\\xNN``, and a
    cell that would start a formula (a name or message beginning with = + - @) prefixed with ``'`` (OWASP's CSV
    injection advice), so Excel, LibreOffice and the LMS's import read it as text."""
    if not isinstance(value, str):
        return value
    value = terminal_safe(value, keep="\n\t")
    return "'" + value if _FORMULA.match(value) else value


def _write_csv(path, columns, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows({k: _inert(v) for k, v in r.items()} for r in rows)


# ---------------------------------------------------------------- gradebook import files for an LMS
LMS_FORMATS = ("canvas", "moodle")
# Canvas's gradebook CSV (Grades > Import): these five columns, then one column per assignment, and a second row
# "Points Possible" (empty under the five).  Canvas matches a row by ID, SIS User ID or SIS Login ID.
CANVAS_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
# Moodle's "Import grades from CSV file": any identifier column, mapped on import ("Map from" -> "Map to": email
# address, idnumber, username or id), then one column per grade item; extra columns are ignored.
MOODLE_COLUMNS = ["Full name", "Email address", "ID number", "Username"]


@dataclass
class LmsExport:
    path: Path
    fmt: str
    students: int
    unmatched: list = field(default_factory=list)   # students the LMS cannot be given (not in the roster, no id)
    left_empty: list = field(default_factory=list)  # cells left empty although something was handed in, and why

    def text(self) -> str:
        lines = [f"wrote {self.path} ({self.fmt}: {self.students} student(s))"]
        lines += [f"  NOT EXPORTED: {u}" for u in self.unmatched]
        lines += [f"  left empty: {e}" for e in self.left_empty]
        return "\n".join(lines)


def read_roster(path) -> list[dict]:
    """The roster ``collect --roster`` reads (``ddpm_instructor.roster``: columns ``id`` plus any of ``lms_id``,
    ``name``, ``email``, ``login``; for the LMS also ``sis_id``, ``idnumber``, ``section``): one dict per student,
    checked as collect checks it (an id used as is, no id on two rows)."""
    if not path or not Path(path).is_file():
        raise InstructorError(f"--roster {path}: no such file. The LMS file needs the roster (a CSV with an id "
                              "column and the LMS's ids: lms_id, sis_id, email, login) to name each student.")
    return [dict(e.row) for e in load_roster(path).entries]


def lms_export(course: CourseDir, fmt: str, roster, out=None) -> LmsExport:
    """Canvas's or Moodle's gradebook import file: one row per roster student, one column per assignment with the
    total (autograded + written) of a final grade; empty where nothing was handed in or the grade is not final."""
    if fmt not in LMS_FORMATS:
        raise InstructorError(f"--format {fmt}: use csv, {' or '.join(LMS_FORMATS)}.")
    people = read_roster(roster)
    known = {p["id"] for p in people}
    report = LmsExport(Path(), fmt, len(people))
    with course.gradebook() as gb:
        assignments = [a.name for a in gb.assignments]
        maxima = {a.name: float(a.max_score) for a in gb.assignments}
        scores = {(a, s.id): submission_score(course, a, s.id, gb) for s in gb.students for a in assignments}
    for s in sorted({s for _, s in scores} - known):
        handed = [a for a in assignments if scores[(a, s)].status != "missing"]
        if handed:
            report.unmatched.append(f"{s} is not in the roster {roster} (handed in {', '.join(handed)}): add a row "
                                    "for them with their LMS ids and export again.")
    header = CANVAS_COLUMNS if fmt == "canvas" else MOODLE_COLUMNS
    lines = [header + assignments]
    if fmt == "canvas":
        lines.append(["Points Possible"] + [""] * (len(header) - 1) + [f"{maxima[a]:g}" for a in assignments])
    for p in people:
        ids = _lms_ids(p, fmt)
        if not any(ids[1:4]):
            report.unmatched.append(f"{p['id']} has no {' or '.join(_ID_NEEDED[fmt])} in the roster: the LMS "
                                    "cannot match their row.")
        lines.append(ids + [_lms_cell(scores.get((a, p["id"])), report) for a in assignments])
    dest = Path(out) if out else course.root / f"grades-{fmt}.csv"
    course.exports.mkdir(parents=True, exist_ok=True)
    keep = course.exports / f"grades-{fmt}-{stamp()}.csv"
    with open(keep, "w", newline="") as f:
        csv.writer(f).writerows([[_inert(v) for v in line] for line in lines])
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(keep, dest)
    report.path = dest
    return report


_ID_NEEDED = {"canvas": ("lms_id", "sis_id", "login"), "moodle": ("email", "idnumber", "login")}


def _lms_ids(p: dict, fmt: str) -> list[str]:
    if fmt == "canvas":
        return [p.get("name", ""), p.get("lms_id", ""), p.get("sis_id", ""), p.get("login", ""), p.get("section", "")]
    return [p.get("name", ""), p.get("email", ""), p.get("idnumber", ""), p.get("login", "")]


def _lms_cell(sc: Score | None, report: LmsExport) -> str:
    if sc is None or sc.status == "missing":
        return ""
    if not sc.final:
        report.left_empty.append(f"{sc.student} / {sc.assignment}: {sc.describe()}")
        return ""
    return f"{sc.total:g}"
