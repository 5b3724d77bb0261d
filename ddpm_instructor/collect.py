"""Step 2: ``collect`` -- file what students handed in (nbgrader folders, Canvas/Moodle exports, zips) under
``submitted/<student id>/<assignment>/``, recognise renamed notebooks, repair stripped or foreign grading metadata,
and report every file.

*Whose* a file is comes from the export's own structure only, never from what a student handed in: each folder or
zip given to ``collect`` is an export whose top-level entries are students (``owner_of``): a Canvas file name
(``<name>_[LATE_]<userid>_<fileid>_<file>``), a Moodle folder or file name (``<Full Name>_<id>_assignsubmission_
file...``) or one folder per student (nbgrader's ``submitted/<student>/``).  Which of the three an export is, is
decided once for the whole export from all its entries (``export_layout``): every entry is then read by that
layout's rule only, so a name a student chose that also reads as the other LMS's (a Canvas sortable name
``mallory_48213_assignsubmission_file``) is still read as what it is; an export whose entries mix layouts, or whose
every name reads both ways, is not read (each of its files says so) until ``--lms`` names its layout.  The student id comes from the LMS's
own id (``student_id``): ``canvas-<user id>``, ``moodle-<participant id>``, the folder name as it is, or the roster's
id for that LMS id; a name is only shown, never matched when an id is there, so two LMS users never become one
(and ids that would still meet are refused as a collision, in the report).  Everything inside a student's entry,
zips included, is that student's whatever its paths say.  A zip at the top level that names no student is itself
an export (an LMS download kept inside another).  Two notebooks for the same student and assignment: the newer by
the time the export records is filed, the other is kept in ``archive/`` and both are in the report.

One student's file never stops the batch: every file is read with a hard cap (``read_capped``; a student's entry
unpacks to at most ``MAX_STUDENT_BYTES`` however its zips nest), and a file that cannot be read, unpacked or
identified becomes a note for its owner (the report and their collect record) while the others are filed.
Every string a student chose (file names, zip entry names, cell text) is printed through ``shown``.
"""
from __future__ import annotations

import copy
import datetime as dt
import difflib
import json
import lzma
import os
import re
import shutil
import stat
import tempfile
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import nbformat

from . import records
from .coursedir import CourseDir, fmt_ts, now_utc, parse_ts, stamp, student_id_problem, unique
from .errors import InstructorError
from .exchange_io import stage_submissions
from .roster import Roster, load_roster
from .sanitize import reduce_submission
from .sanitize import terminal_safe as shown

MAX_NOTEBOOK_BYTES = 20 * 2**20                # one handed-in notebook (the course's own are under 1 MB with outputs)
MAX_NOTEBOOK_PARTS = 20_000    # cells and outputs of one notebook (the course's: under 200); nbformat takes ~70 us
                               # and 4 kB per part: 250,000 one-letter cells (18 MB, 1 MB zipped) took 29 s and 1 GB
MAX_ZIP_DEPTH = 3        # zips opened one inside another: an export, a student's zip in it, one zip inside that
MAX_STUDENT_BYTES = 4 * MAX_NOTEBOOK_BYTES     # all that one student's entry unpacks to, nested zips included
MAX_EXPORT_BYTES = 4 * 2**30                   # an LMS export kept inside another zip, unpacked to a temporary file
MAX_ZIP_MEMBERS = 2000                         # files read from one zip
MAX_MATCHED_CELLS = 500    # cells compared by content to restore stripped metadata (= sanitize.MAX_CELLS, all kept)
# Canvas "Download Submissions" (lib/content_zipper.rb): [sortable name, "LATE" if late, user id] joined by "_",
# then "_<attachment id>_<file name>"; anonymous grading writes "anon_<anonymous id>" for name and user id.  The name
# is the user's sortable name downcased with every non-word character removed: it keeps letters, digits and "_"
# (never an upper-case letter, so "LATE" is Canvas's own), and a user may edit it, so a name ending in "_<digits>"
# makes the file name read as another user's id.  The ids are integers (no leading zero).  A file handed in again
# under the same name gets "-1", "-2", ... before its extension.
_CANVAS_ANON = re.compile(r"^(?:(?P<late>LATE)_)?(?P<anon>anon_[A-Za-z0-9]+)_(?P<fid>[1-9]\d*)_(?P<file>.+)$")
_CANVAS_AFTER_NAME = re.compile(r"_(?:(?P<late>LATE)_)?(?P<uid>[1-9]\d*)_(?P<fid>[1-9]\d*)_(?P<file>.+)$")
# Moodle "Download all submissions" (mod/assign, downloader.php): "<Full Name>_<participant id>_assignsubmission_
# <plugin>" is a folder per student ("download submissions in folders", the default since Moodle 3.1; 3.x ends it
# with "_", 4.x does not) or, with that setting off, "<...>_assignsubmission_<plugin>_<file>" is each file's name.
# "_" in the name becomes a space ("Participant" under blind marking).  The participant id is Moodle's id of the
# student *in this assignment* (assign_user_mapping).
MOODLE = re.compile(r"^(?P<name>[^_]+)_(?P<id>\d+)_assign(?:submission|feedback)_[a-z]+(?:_(?P<file>.*))?$")
# The layouts of an export, as --lms names them, and how the report describes each.
LAYOUTS = {"canvas": "Canvas file names (<name>_<userid>_<fileid>_<file>)",
           "moodle": "Moodle names (<Full Name>_<id>_assignsubmission_file folders or file names)",
           "nbgrader": "one folder per student (<student>/<assignment>/<notebook>.ipynb)"}
UNDECIDED = "not read: the export it came in could not be told Canvas, Moodle or nbgrader"
AMBIGUOUS = "held back: it cannot be told whose file this is"
NO_OWNER = ("could not tell which student handed this in: the top level of an export must be Canvas file names "
            "(<name>_<userid>_<fileid>_<file>), Moodle folders (<Full Name>_<id>_assignsubmission_file/) or one "
            "folder per student (<student>/<assignment>/<notebook>.ipynb); or use --student-regex")


def known_notebooks(course: CourseDir) -> dict[str, "KnownNotebook"]:
    if not course.released_assignments():
        raise InstructorError("nothing released yet: run `instructor release` first (collect matches files "
                              "against the student versions).")
    known = {}
    for a in course.released_assignments():
        for p in sorted((course.release / a).glob("*.ipynb")):
            known[p.stem] = KnownNotebook.from_file(a, p)
    return known


def collect(course: CourseDir, paths, assignment=None, student_regex=None, roster=None, when=None,
            dry_run=False, exchange=True, lms=None) -> "CollectReport":
    """File submissions (folders in nbgrader's layout, LMS folders or zips) under ``submitted/``, and with
    ``exchange`` those handed in through the class hub's exchange (ddpm_instructor/exchange_io.py) when the course
    has one; see docs/INSTRUCTORS.md.  ``lms`` ("canvas", "moodle" or "nbgrader") names the layout of the exports
    given, instead of deciding it from each export's names."""
    if lms is not None and lms not in LAYOUTS:
        raise InstructorError(f"--lms {lms!r}: use {', '.join(LAYOUTS)} (the layout of the exports given).")
    known = known_notebooks(course)
    if assignment and assignment not in {k.assignment for k in known.values()}:
        raise InstructorError(f"unknown assignment {assignment!r}; released: {', '.join(course.released_assignments())}")
    regex = _compile_regex(student_regex)
    roster_ = load_roster(roster) if roster else None
    report = CollectReport(batch=stamp())
    with tempfile.TemporaryDirectory(prefix="ddpm-collect-") as spool:
        ctx = _Context(known, roster_, assignment, report, Path(spool))
        paths = [*((p, lms) for p in paths),        # the hub's exchange is one folder per student, whatever --lms says
                 *((p, "nbgrader") for p in (stage_submissions(course, Path(spool), report, MAX_NOTEBOOK_BYTES,
                                                               assignment, dry_run) if exchange else []))]
        candidates = _refuse_collisions(course, _gather(course, paths, regex, ctx, dry_run), report)
        by_submission: dict[tuple[str, str], list[Candidate]] = {}
        for (a, student, _), c in _choose(course, candidates, report, dry_run).items():
            by_submission.setdefault((a, student), []).append(c)
        for (a, student), cs in sorted(by_submission.items()):
            try:
                _place(course, a, student, cs, when or max(c.mtime for c in cs), report, dry_run, given=bool(when))
            except OSError as e:                  # a disk problem costs this submission only, and says so
                for c in cs:
                    report.refuse(c.display, f"could not be filed ({type(e).__name__}: {shown(e)})", student, a)
    if roster_:
        report.missing = sorted(set(roster_.ids) - {s for _, s in by_submission})
    if not dry_run:
        _record_refusals(course, report, assignment, course.released_assignments())
        course.logs.mkdir(parents=True, exist_ok=True)
        (course.logs / f"collect-{report.batch}.txt").write_text(report.text(), encoding="utf-8")
    return report


def _compile_regex(student_regex):
    if not student_regex:
        return None
    try:
        regex = re.compile(student_regex)
    except re.error as e:
        raise InstructorError(f"--student-regex {student_regex!r} is not a valid regular expression ({e}).")
    if "student" not in regex.groupindex:
        raise InstructorError(f"--student-regex {student_regex!r} has no (?P<student>...) group: name the part of "
                              "each top-level file or folder name that is the student.")
    return regex


@dataclass
class _Context:
    known: dict
    roster: Roster | None
    assignment: str | None
    report: "CollectReport"
    spool: Path                 # a temporary folder: each kept candidate's bytes wait there, not in memory


def _gather(course: CourseDir, paths, regex, ctx: _Context, dry_run) -> list["Candidate"]:
    """Every notebook of every (path, layout or None) given that can be filed, with its owner, read and repaired one
    at a time; each path is first kept untouched in ``inbox/<batch>/``."""
    inbox = course.inbox / ctx.report.batch
    out = []
    for p, lms in paths:
        p = Path(p)
        if not p.exists():
            ctx.report.unmatched.append((shown(p), "no such file or folder"))
            continue
        if not dry_run:
            inbox.mkdir(parents=True, exist_ok=True)
            keep = unique(inbox / p.name)
            if p.is_dir():                   # links kept as links; pipes, sockets, devices left (refused below)
                shutil.copytree(str(p), str(keep), symlinks=True, ignore=_special_files)
            else:
                shutil.copy2(str(p), str(keep))
        for c in iter_candidates(p, regex, lms):
            try:
                ok = _prepare(c, ctx)
            except Exception as e:            # anything unforeseen in one file costs that file only
                ctx.report.refuse(c.display, f"could not be read ({type(e).__name__})", c.student)
                ok = False
            if ok:
                out.append(c)
    return out


def _special_files(folder: str, names: list[str]) -> set[str]:
    """``shutil.copytree``'s ignore: what is neither a folder, a regular file nor a link (opening a pipe blocks)."""
    def special(name: str) -> bool:
        try:
            mode = os.lstat(os.path.join(folder, name)).st_mode
        except OSError:
            return True
        return not (stat.S_ISDIR(mode) or stat.S_ISREG(mode) or stat.S_ISLNK(mode))
    return {n for n in names if special(n)}


def _prepare(c: "Candidate", ctx: _Context) -> bool:
    """Name the owner, read, identify and repair one candidate; False (the reason is in the report) when it is
    not filed.  What is kept waits in the spool folder, so memory holds one file at a time."""
    report = ctx.report
    if c.name == "timestamp.txt":                      # nbgrader layout: read with its notebook
        return False
    if not c.name.lower().endswith(".ipynb") and not (c.problem and c.name.lower().endswith(".zip")):
        report.skipped.append((c.display, c.problem or "not a notebook"))
        return False
    if c.owner is None:
        report.refuse(c.display, c.no_owner)
        return False
    reading, why = canvas_reading(c.owner, ctx.roster)
    if reading is None:
        report.refuse(c.display, why)
        report.held_back.append(c.display)
        return False
    if reading is not c.owner:                 # another reading of a Canvas file name: its own file name too
        c.name = reading.file if c.name == c.owner.file else c.name
        c.owner = reading
    student, why = student_id(c.owner, {k.assignment for k in ctx.known.values()}, ctx.roster)
    if student is None:
        report.refuse(c.display, why)
        return False
    c.student = student
    if c.problem:
        report.refuse(c.display, c.problem, student)
        return False
    try:
        raw = c.read_capped(MAX_NOTEBOOK_BYTES)
        parts = _parts(json.loads(raw.decode("utf-8")))
        if parts > MAX_NOTEBOOK_PARTS:
            raise Refused(f"{parts:,} cells and outputs, more than {MAX_NOTEBOOK_PARTS:,} (the assignment's notebook "
                          "has under 200): not read; hand in the assignment's notebook itself")
        nb = nbformat.reads(raw.decode("utf-8"), as_version=4)
    except Refused as e:
        report.refuse(c.display, str(e), student)
        return False
    except Exception as e:
        report.refuse(c.display, f"not a readable notebook ({type(e).__name__})", student)
        return False
    match, how = identify_notebook(c, nb, ctx.known)
    if match is None:
        report.refuse(c.display, how, student, ctx.assignment or "")
        return False
    if ctx.assignment and match.assignment != ctx.assignment:
        report.skipped.append((c.display, f"belongs to {match.assignment}"))
        return False
    c.known, c.how = match, how
    prepared, repairs = repair_metadata(raw, nb, match)
    before = nbformat.writes(nb)
    reduced = reduce_submission(nb)          # nothing a student wrote may run in the instructor's browser
    if nbformat.writes(nb) != before:
        prepared, repairs = nbformat.writes(nb).encode("utf-8"), repairs + reduced
    c.notes = submission_notes(c, nb) + repairs
    c.keep(ctx.spool, raw, prepared)
    renamed = _renamed(c.owner, ctx.roster, student)
    if renamed is not None and renamed not in report.renamed:
        report.renamed.append(renamed)
    return True


def _parts(data) -> int:
    """The cells and outputs of a notebook's JSON (nbformat 4, or 3's worksheets), counted before nbformat reads it."""
    if not isinstance(data, dict):
        return 0
    cells = data.get("cells")
    if not isinstance(cells, list):
        sheets = data.get("worksheets")
        cells = [c for w in sheets if isinstance(w, dict) and isinstance(w.get("cells"), list)
                 for c in w["cells"]] if isinstance(sheets, list) else []
    outputs = (c.get("outputs") for c in cells if isinstance(c, dict))
    return len(cells) + sum(len(o) for o in outputs if isinstance(o, list))


def _refuse_collisions(course: CourseDir, candidates, report) -> list["Candidate"]:
    """Two LMS identities that would be filed as one student id (also when the ids differ only in case, or when
    the earlier submission under that id came from another identity) are a collision: none of their files is
    filed, the report names both, nothing is archived as the other person."""
    groups: dict[tuple[str, str], list[Candidate]] = {}
    for c in candidates:
        groups.setdefault((c.known.assignment, c.student.casefold()), []).append(c)
    keep = []
    for (a, _), cs in groups.items():
        # an LMS id under two names in one export is a collision too: a name is the student's to choose, and a
        # Canvas name ending in "_<digits>" reads as another user's id (roe_48213_50977_<file id>_<file>)
        names: dict[str, set] = {}
        for c in cs:
            names.setdefault(c.identity, set()).add(c.owner.name if c.owner.lms else "")
        who = {c.identity + (f" as '{shown(c.owner.name)}'" if len(names[c.identity]) > 1 else ""): c.student
               for c in cs}
        for d in (course.submitted.iterdir() if course.submitted.is_dir() else ()):
            if d.name.casefold() == cs[0].student.casefold() and (d / a).is_dir():
                rec = records.load_collect(course.notes, a, d.name)
                if d.name not in {c.student for c in cs}:
                    who.setdefault(f"the submission already in submitted/{d.name}/", d.name)
                elif rec.identity and rec.identity not in {c.identity for c in cs}:
                    who.setdefault(f"{rec.identity} (collected earlier, batch {rec.batch})", d.name)
        if len(who) == 1:
            keep += cs
            continue
        ids = sorted(who)
        report.collisions.append(Collision(a, sorted(set(who.values())), ids, [c.display for c in cs]))
        fix = ("check in the LMS whose files these are (a name ending in _<digits> reads as another user's id) and "
               "collect them by hand" if any(len(n) > 1 for n in names.values()) else
               "fix the roster so that each LMS id has a student id of its own" if any(c.owner.lms for c in cs) else
               "give the folders ids that differ in more than letter case")
        for c in cs:
            report.refuse(c.display, f"{' and '.join(ids)} would be filed as one student "
                          f"({', '.join(sorted(set(who.values())))}): not filed ({fix}, then collect again)")
    return keep


def _choose(course: CourseDir, candidates, report, dry_run) -> dict:
    """One notebook per (assignment, student, notebook): the newest by the export's time, then by the file's own
    date (inside a student's zip); a full tie goes to the later one in the export.  Each other one is reported
    with both sources and kept in ``archive/<student>/<assignment>/not-kept-<batch>/``."""
    groups: dict[tuple[str, str, str], list[Candidate]] = {}
    for c in candidates:
        groups.setdefault((c.known.assignment, c.student, c.known.name), []).append(c)
    chosen = {}
    for (a, student, name), cs in groups.items():
        cs = sorted(cs, key=lambda c: (c.mtime, c.inner_mtime))        # stable: a full tie keeps export order
        kept = chosen[(a, student, name)] = cs[-1]
        kept.others = [o.display for o in cs[:-1]]
        for other in cs[:-1]:
            where = "" if dry_run else _keep_other(course, a, student, other, report.batch)
            report.duplicates.append(Duplicate(a, student, name, kept.display, other.display, _why(kept, other), where))
    return chosen


def _why(kept: "Candidate", other: "Candidate") -> str:
    if kept.mtime != other.mtime:
        return f"{fmt_ts(kept.mtime)} ({kept.when_from}) is newer than {fmt_ts(other.mtime)} ({other.when_from})"
    if kept.inner_mtime != other.inner_mtime:
        return (f"both {fmt_ts(kept.mtime)} ({kept.when_from}); the file's own date {fmt_ts(kept.inner_mtime)} is "
                f"newer than {fmt_ts(other.inner_mtime)}")
    return f"both dated {fmt_ts(kept.mtime)}; kept the later one in the export"


def _keep_other(course: CourseDir, a, student, c: "Candidate", batch) -> str:
    dest = course.archive / student / a / f"not-kept-{batch}"
    dest.mkdir(parents=True, exist_ok=True)
    path = unique(dest / f"{c.known.name}.ipynb")
    path.write_bytes(c.read())
    return str(path.relative_to(course.root))


def _place(course: CourseDir, a, student, cs, when, report, dry_run, given=False):
    dest = course.submitted / student / a
    old_ts = None
    if dest.exists():
        ts_file = dest / "timestamp.txt"
        old_ts = parse_ts(ts_file.read_text()) if ts_file.exists() else None
        same = all((dest / f"{c.known.name}.ipynb").exists() and
                   (dest / f"{c.known.name}.ipynb").read_bytes() == c.prepared for c in cs)
        if same:
            report.unchanged.append(f"{student}/{a}")
            return
        if old_ts is not None and when < old_ts:
            report.older.append((f"{student}/{a}", f"submitted {fmt_ts(when)}, older than the collected "
                                 f"one ({fmt_ts(old_ts)}); kept the newer, this one is in inbox/{report.batch}"))
            return
    if dry_run:
        report.collected.append((student, a, [c.display for c in cs], [c.how for c in cs if c.how]))
        return
    if dest.exists():
        keep = unique(course.archive / student / a / f"submitted-{stamp(old_ts) if old_ts else 'unknown'}")
        keep.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(dest), str(keep))
        report.replaced.append((f"{student}/{a}", str(keep.relative_to(course.root))))
    dest.mkdir(parents=True)
    notes = {}
    for c in cs:
        (dest / f"{c.known.name}.ipynb").write_bytes(c.prepared)
        notes[c.known.name] = [shown(n) for n in _versions_note(c) + _time_note(c) + c.notes]
    (dest / "timestamp.txt").write_text(fmt_ts(when))
    owner = cs[0].owner
    records.save(records.CollectRecord(notebooks=notes, batch=report.batch, files=[c.display for c in cs],
                                       submitted=fmt_ts(when), identity=cs[0].identity, name=shown(owner.name),
                                       refused=report.refusals_of(student, a)),
                 records.notes_path(course.notes, a, student, "collect"))
    report.collected.append((student, a, [c.display for c in cs], [c.how for c in cs if c.how]))
    report.times.append((student, a, fmt_ts(when), "given with --timestamp" if given else
                         "; ".join(dict.fromkeys(c.when_from for c in cs if c.mtime == when)) +
                         ("; Canvas marks it LATE" if any(c.owner and c.owner.late for c in cs) else "")))


def _time_note(c: "Candidate") -> list[str]:
    """What the submission time was read from, where a student could have wished otherwise: a timestamp.txt that
    was not used, Canvas's LATE."""
    out = []
    if "timestamp.txt says" in c.when_from:
        out.append(f"Submitted {fmt_ts(c.mtime)} ({c.when_from}).")
    if c.owner is not None and c.owner.late:
        out.append("Canvas marks this submission LATE.")
    return out


def _record_refusals(course: CourseDir, report, assignment, only) -> None:
    """A refused file of a known student goes into that student's collect record too, where the assignment is
    known: from the file, ``--assignment``, the one assignment filed for the student in this batch, or the course's
    only one.  A record written with a submission in this batch has them already."""
    written = {(a, s) for s, a, *_ in report.collected}
    for student in sorted({r.student for r in report.refused if r.student}):
        filed = sorted(a for a, s in written if s == student)
        for r in report.refused:
            if r.student == student and not r.assignment:
                r.assignment = assignment or (filed[0] if len(filed) == 1 else only[0] if len(only) == 1 else "")
        for a in sorted({r.assignment for r in report.refused if r.student == student and r.assignment}):
            if (a, student) in written:
                continue
            rec = records.load_collect(course.notes, a, student)
            rec.refused = list(dict.fromkeys(rec.refused + report.refusals_of(student, a)))
            records.save(rec, records.notes_path(course.notes, a, student, "collect"))


@dataclass
class KnownNotebook:
    assignment: str
    name: str
    grade_ids: set
    locked: dict            # grade_id -> source of cells the student must not change
    solution_ids: set
    text: str
    n_cells: int = 0
    cells: list = field(default_factory=list)   # (grade_id, cell_type, source, nbgrader metadata) of graded cells

    @classmethod
    def from_file(cls, assignment: str, path: Path) -> "KnownNotebook":
        nb = nbformat.read(str(path), as_version=4)
        ids, locked, sol, cells = set(), {}, set(), []
        for cell in nb.cells:
            m = cell.metadata.get("nbgrader", {})
            gid = m.get("grade_id")
            if not gid:
                continue
            ids.add(gid)
            cells.append((gid, cell.cell_type, cell.source, copy.deepcopy(dict(m))))
            if m.get("solution"):
                sol.add(gid)
            elif m.get("locked") or m.get("grade"):
                locked[gid] = cell.source
        return cls(assignment, path.stem, ids, locked, sol, "\n".join(c.source for c in nb.cells), len(nb.cells),
                   cells)


# ---------------------------------------------------------------- whose is it: the export's structure, the LMS's id
@dataclass(frozen=True)
class Owner:
    """Who handed in a top-level entry of an export, as the export names them."""
    name: str                 # the name the export shows (Canvas sortable name, Moodle full name, folder): display only
    lms: str = ""             # "Canvas" or "Moodle"; "" when the name is the id (a folder, --student-regex)
    lms_id: str = ""          # Canvas user id (or anonymous id), Moodle participant id
    by: str = "folder"        # what carried it: "folder", "Canvas file name", "Moodle folder", ...
    file: str = ""            # Canvas: the student's own file name in this reading
    late: bool = False        # Canvas: the export marks the submission LATE (its own word, not the student's)
    readings: tuple = ()      # Canvas: the other ways the file name reads, with other user ids ([Owner]): a name
                              # may end in _<digits>; ``canvas_reading`` picks one or refuses

    @property
    def identity(self) -> str:
        """Who this is for the LMS: two owners are one student only when this is the same."""
        if self.lms == "Canvas":
            return (f"Canvas anonymous student {self.lms_id}" if self.lms_id.startswith("anon_")
                    else f"Canvas user {self.lms_id}")
        if self.lms == "Moodle":
            return f"Moodle participant {self.lms_id}"
        return ""


def entry_layouts(entry: str, is_dir: bool) -> frozenset:
    """The layouts (``LAYOUTS``) one top-level entry of an export fits: a folder is Moodle's when its name is
    Moodle's, else a student's folder (nbgrader); a file may be a Canvas file name, a Moodle file name, or both."""
    m = MOODLE.match(entry)
    if is_dir:
        return frozenset({"moodle" if m else "nbgrader"})
    return frozenset({"canvas"} if canvas_readings(entry) else ()) | ({"moodle"} if m and m["file"] else set())


def export_layout(entries: dict, lms: str | None = None) -> tuple[str | None, str]:
    """(layout, "") of an export from its top-level entries ({name: is a folder}), decided once for all of them,
    or (None, why not).  ``lms`` (--lms) decides it.  Otherwise the layout every entry that fits one fits: all
    Canvas file names, all Moodle names (folders or files; a Moodle folder is also a folder), or all plain folders.
    Entries that fit none (a zip holding another export, a stray file) do not count.  Mixed layouts (Moodle's folders
    beside other folders too), or names that all read both as Canvas's and as Moodle's, are not guessed."""
    if lms is not None:
        return lms, ""
    fits = {e: entry_layouts(e, d) for e, d in entries.items()}
    voting = [f for f in fits.values() if f]
    if not voting:
        return None, ""
    common = frozenset.intersection(*voting)
    if len(common) == 1:
        return next(iter(common)), ""
    if common:
        return None, (f"{UNDECIDED}: every name at its top level reads both as a Canvas file name and as a Moodle "
                      "one; collect it again with --lms canvas or --lms moodle (the LMS it was downloaded from)")
    seen = {}
    for e, f in fits.items():
        if len(f) == 1:
            seen.setdefault(next(iter(f)), e)
    mixed = "; ".join(f"{LAYOUTS[k]}, e.g. '{shown(e)}'" for k, e in sorted(seen.items()))
    return None, (f"{UNDECIDED}: its top level mixes {mixed or 'names that fit different layouts'}. An export from an "
                  "LMS is all one kind: collect each export on its own, or name its layout with --lms canvas, "
                  "--lms moodle or --lms nbgrader")


def owner_of(entry: str, is_dir: bool, regex=None, layout: str | None = None) -> tuple[Owner | None, str]:
    """The owner named by one top-level entry of an export read as ``layout`` (``export_layout``; None: the one
    layout this entry alone fits), and the student's own file name for a file entry: (Owner, file name), or
    (None, entry) when the entry names nobody in that layout."""
    if regex is not None:
        m = regex.search(entry)
        return (Owner(m.group("student"), by="--student-regex"), entry) if m and m.group("student") else (None, entry)
    if layout is None:
        layout, _ = export_layout({entry: is_dir})
    m = MOODLE.match(entry)
    if layout == "moodle" and m and (is_dir or m["file"]):
        return Owner(m["name"].strip(), "Moodle", m["id"], "Moodle folder" if is_dir else "Moodle file name"), \
            m["file"] or entry
    if layout == "nbgrader" and is_dir:
        return Owner(entry), entry
    readings = canvas_readings(entry) if layout == "canvas" and not is_dir else []
    if readings:
        first = readings[0]
        return replace(first, readings=tuple(readings[1:])), first.file
    return None, entry


def canvas_readings(entry: str) -> list[Owner]:
    """Every way a Canvas file name ``<name>_[LATE_]<user id>_<attachment id>_<file>`` can be read, one per user id
    (left to right): the name is Canvas's downcased sortable name, the ids integers."""
    out: dict[str, Owner] = {}
    m = _CANVAS_ANON.match(entry)
    if m:
        out[m["anon"]] = Owner(m["anon"], "Canvas", m["anon"], "Canvas file name", m["file"], bool(m["late"]))
    for i in (i for i, ch in enumerate(entry) if ch == "_"):
        name = entry[:i]
        if not _canvas_name(name) or (m and name == "anon"):    # "anon": the anonymous reading above
            continue
        r = _CANVAS_AFTER_NAME.match(entry, i)
        if r and r["uid"] not in out:
            out[r["uid"]] = Owner(name, "Canvas", r["uid"], "Canvas file name", r["file"], bool(r["late"]))
    return list(out.values())


def _canvas_name(name: str) -> bool:
    """Whether Canvas could have written ``name``: what Ruby's [[:word:]] keeps (letters, marks, digits, connector
    punctuation such as "_"), downcased."""
    return not any("A" <= ch <= "Z" or not (ch.isalnum() or unicodedata.category(ch)[0] in "MN"
                                            or unicodedata.category(ch) == "Pc") for ch in name)


def canvas_reading(owner: Owner, roster: Roster | None) -> tuple[Owner | None, str]:
    """The one reading of a Canvas file name that is taken, or (None, why).  A file name with one reading is that
    user's.  With several (a name ending in _<digits>), only the roster can tell: the one reading whose user id is
    on it is taken; without a roster, or when more than one is on it, the file is held back, never filed as a guess."""
    if not owner.readings:
        return owner, ""
    every = (owner, *owner.readings)
    users = " or ".join(f"user {o.lms_id} (named '{shown(o.name)}')" for o in every)
    if roster is None:
        return None, (f"{AMBIGUOUS}: this Canvas file name reads as {users} (a name ending in _<digits>); collect "
                      "again with --roster (Canvas's gradebook CSV: Student, ID, SIS User ID, SIS Login ID, Section) "
                      "to take the reading whose user is in the course")
    on = [o for o in every if roster.by_lms_id(o.lms_id, o.lms) is not None]
    if len(on) == 1:
        return on[0], ""
    if not on:
        return owner, ""                   # student_id says that the id is not on the roster
    return None, (f"{AMBIGUOUS}: this Canvas file name reads as "
                  f"{' or '.join(f'user {o.lms_id} ({roster.by_lms_id(o.lms_id, o.lms).id})' for o in on)}, all on the "
                  "roster "
                  "(a name ending in _<digits>); check in Canvas whose file this is and collect it by hand")


def student_id(owner: Owner, assignments, roster: Roster | None) -> tuple[str | None, str]:
    """The course's student id for an owner: (id, "") or (None, why not).  An LMS owner is its LMS id
    (``canvas-<user id>``, ``moodle-<participant id>``) or, with a roster, the row with that ``lms_id``: never a
    name.  A folder or ``--student-regex`` name is the id as it is (or, with a roster, the row with that id, login
    or email; the row with that name only when one row has it)."""
    if owner.by == "folder" and owner.name in assignments:
        return None, (f"{shown(owner.name)}/ is an assignment folder, not a student's: give collect the folder that "
                      "holds one folder per student (<student>/<assignment>/...)")
    if owner.lms:
        if roster is None:
            return f"{owner.lms.lower()}-{owner.lms_id}", ""
        e = roster.by_lms_id(owner.lms_id, owner.lms)
        if e is None:
            others = "".join(f" (or {o.identity}: the file name reads both ways)" for o in owner.readings)
            return None, (f"{owner.identity} ('{shown(owner.name)}'){others} is not on the roster: add "
                          f"{owner.lms_id} as the lms_id of their row")
        return e.id, ""
    if roster is None:
        why = student_id_problem(owner.name)
        return (None, f"{owner.by} name '{shown(owner.name)}' {why}: rename it, or give --roster") if why else \
            (owner.name, "")
    e = roster.by_id(owner.name)
    if e is None:
        named = roster.by_name(owner.name)
        if len(named) > 1:
            return None, (f"'{shown(owner.name)}' ({owner.by}) is the name of {len(named)} students on the roster "
                          f"({', '.join(x.id for x in named)}): name the folders by student id")
        e = named[0] if named else None
    return (e.id, "") if e else (None, f"student '{shown(owner.name)}' ({owner.by}) is not on the roster")


def _words(name: str) -> list[str]:
    return re.findall(r"\w+", unicodedata.normalize("NFC", name).casefold())


def _renamed(owner: Owner, roster: Roster | None, student: str) -> "Renamed | None":
    """The LMS shows another name for this id than the roster has (a student who renamed themselves, or a
    roster row with the wrong id): reported, filed by the id."""
    if roster is None or not owner.lms:
        return None
    e = roster.by_lms_id(owner.lms_id, owner.lms)
    if e is None or not e.name:
        return None
    words, got = _words(e.name), _words(owner.name)
    joiner = "" if owner.lms == "Canvas" else " "            # Canvas writes the sortable name without spaces
    forms = {joiner.join(words[i:] + words[:i]) for i in range(len(words))}
    if joiner.join(got) in forms:
        return None
    return Renamed(student, owner.identity, e.name, shown(owner.name))


# ---------------------------------------------------------------- reading what was handed in, bounded
class Refused(Exception):
    """A file that cannot be taken; the message says why, for its owner's note."""


@dataclass
class Budget:
    """What one student's entry may still unpack to (``MAX_STUDENT_BYTES``), zips in zips included."""
    left: int


@dataclass
class Item:
    """One file of a folder or zip, before anyone has said whose it is."""
    parts: tuple               # path inside its folder / zip
    display: str               # where it came from, for the report (``shown``)
    mtime: dt.datetime
    size: int                  # as the folder or zip declares it (a zip's is the student's word: never trusted)
    open: object = None        # () -> a binary file object
    problem: str = ""
    when_from: str = "its file time"


ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, RuntimeError, NotImplementedError,
              ValueError, UnicodeDecodeError, zipfile.LargeZipFile)     # lzma's: a damaged LZMA member (method 14)


def read_capped(it: Item, cap: int, budget: Budget | None = None) -> bytes:
    """The bytes of ``it``, read in one bounded call: never more than ``cap`` (nor what the student's budget has
    left), whatever the zip declares; ``Refused`` when there is more or it cannot be read."""
    limit = cap if budget is None else min(cap, budget.left)
    try:
        with it.open() as f:
            data = f.read(limit + 1)
    except ZIP_ERRORS as e:
        raise Refused(_unreadable(e)) from None
    if len(data) > limit:
        raise Refused(f"larger than {cap // 2**20} MB" if limit == cap else
                      f"more than {MAX_STUDENT_BYTES // 2**20} MB in all unpacked from this student's files: the "
                      "rest was not read")
    if budget is not None:
        budget.left -= len(data)
    return data


def _unreadable(e: Exception) -> str:
    if isinstance(e, RuntimeError) and "encrypted" in str(e):
        return "password-protected (encrypted): hand it in without a password"
    return f"could not be unpacked ({type(e).__name__}): a damaged zip? zip the files again"


@dataclass
class Candidate:
    display: str               # where it came from, for the report (``shown``)
    name: str                  # the student's own file name (an LMS prefix taken off), as written
    mtime: dt.datetime         # the submission time the export records (timestamp.txt, the file's time in it)
    size: int
    item: Item | None = None
    budget: Budget | None = None
    problem: str = ""
    owner: Owner | None = None
    no_owner: str = ""         # why no owner could be named (when ``owner`` is None)
    when_from: str = ""        # what ``mtime`` was read from
    inner_mtime: dt.datetime | None = None     # the file's own date (inside a student's zip): breaks a tie only
    student: str = ""
    known: KnownNotebook | None = None
    how: str = ""
    notes: list = field(default_factory=list)  # what collect noticed (for the student's record)
    others: list = field(default_factory=list)  # sources of the other versions handed in with it (not filed)
    _raw: Path | None = None
    _prepared: Path | None = None

    @property
    def identity(self) -> str:
        return self.owner.identity or f"student id {self.student}"

    def read_capped(self, cap: int) -> bytes:
        return read_capped(self.item, cap, self.budget)

    def keep(self, spool: Path, raw: bytes, prepared: bytes) -> None:
        """Park the bytes in the spool folder: a class's notebooks are never all in memory at once."""
        self._raw = self._prepared = _spooled(spool, raw)
        if prepared != raw:
            self._prepared = _spooled(spool, prepared)

    def read(self) -> bytes:
        """The file as handed in."""
        return self._raw.read_bytes()

    @property
    def prepared(self) -> bytes:
        """The notebook as it is filed (grading metadata repaired)."""
        return self._prepared.read_bytes()


def _spooled(spool: Path, data: bytes) -> Path:
    fd, name = tempfile.mkstemp(dir=spool)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return Path(name)


def iter_candidates(path, regex=None, lms=None):
    """Every file handed in under a folder, an LMS zip or a lone file given to collect, each with its owner;
    ``lms`` (--lms) names the export's layout instead of ``export_layout`` deciding it."""
    path = Path(path)
    if path.is_dir():
        yield from _export(list(_folder_items(path, shown(path.name))), regex, 0, lms)
    elif path.suffix.lower() == ".zip":
        try:
            zf = zipfile.ZipFile(path)
        except ZIP_ERRORS as e:
            yield Candidate(shown(path.name), path.name, now_utc(), 0, problem=f"not a readable zip file "
                            f"({type(e).__name__}){_utf8_hint(e)}", no_owner=f"not a readable zip file "
                            f"({type(e).__name__}){_utf8_hint(e)}")
            return
        with zf:
            yield from _export(list(_zip_items(zf, shown(path.name))), regex, 1, lms)
    else:
        st = path.stat()
        yield from _export([Item((path.name,), shown(path.name), dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc),
                                 st.st_size, open=lambda: open(path, "rb"))], regex, 0, lms)


def _utf8_hint(e: Exception) -> str:
    return (": a file name in it is marked as UTF-8 but is not (a hand-made or damaged zip); zip the files again"
            if isinstance(e, UnicodeDecodeError) else "")


def _export(items: list, regex, depth: int, lms=None):
    """The files of one export: its layout is decided once (``export_layout``), then each top-level entry names its
    owner in that layout (``owner_of``); a top-level zip that fits no layout is an export itself.  The time of a file
    is its ``timestamp.txt`` (nbgrader) or its time in the export."""
    if items and all(len(i.parts) > 1 and i.parts[0] == "submitted" for i in items):
        items = [replace(i, parts=i.parts[1:]) for i in items]          # nbgrader's course folder: submitted/<student>/
    stamps = _timestamps(items)
    entries: dict[str, list[Item]] = {}
    for it in items:
        entries.setdefault(it.parts[0], []).append(it)
    dirs = {entry: any(len(i.parts) > 1 for i in members) for entry, members in entries.items()}
    layout, undecided = (None, "") if regex else export_layout(dirs, lms)
    for entry, members in entries.items():
        is_dir = dirs[entry]
        owner, own_name = owner_of(entry, is_dir, regex, layout) if regex or layout else (None, entry)
        fits = regex is None and entry_layouts(entry, is_dir)
        no_owner = "" if owner else (f"--student-regex did not match '{shown(entry)}'" if regex else undecided or (
            f"with --lms {lms}: '{shown(entry)}' is not one of {LAYOUTS[lms]}" if lms and fits else NO_OWNER))
        if owner is None and not fits and not is_dir and entry.lower().endswith(".zip") and not members[0].problem:
            with _open_zip(members[0], depth, Budget(MAX_EXPORT_BYTES)) as (inner, problem):
                if problem:
                    yield Candidate(members[0].display, entry, members[0].mtime, members[0].size, problem=problem,
                                    no_owner=f"{problem}")
                else:
                    yield from _export(inner, regex, depth + 1, lms)
            continue
        budget = Budget(MAX_STUDENT_BYTES)                  # one student's entry, however its zips nest
        for it in members:
            claimed = None if owner is not None and owner.lms else stamps.get(it.parts[:-1])
            when, when_from = submission_time(it.mtime, it.when_from, claimed)
            for c in _owned(it, owner, own_name if len(it.parts) == 1 else it.parts[-1], when, when_from, depth,
                            budget):
                c.no_owner = no_owner
                yield c


def _owned(it: Item, owner, name: str, when, when_from: str, depth: int, budget: Budget):
    """A file of one student's entry.  A zip is opened: all it holds is that student's, whatever its paths say,
    at the time of the zip itself (the dates inside it are the student's, they only break a tie)."""
    if not it.problem and name.lower().endswith(".zip"):
        with _open_zip(it, depth, budget) as (inner, problem):
            if problem:
                yield Candidate(it.display, name, when, it.size, problem=problem, owner=owner, when_from=when_from)
                return
            of_zip = when_from if "zip it came in" in when_from else f"that of the zip it came in: {when_from}"
            for i in inner:
                yield from _owned(i, owner, i.parts[-1], when, of_zip, depth + 1, budget)
        return
    yield Candidate(it.display, name, when, it.size, item=it, budget=budget, problem=it.problem, owner=owner,
                    when_from=when_from, inner_mtime=it.mtime)


class _open_zip:
    """``with _open_zip(item, depth, budget) as (items, problem)``: a zip inside an export or a student's entry,
    copied (bounded by the budget) into a temporary file and opened from there; closed on leaving."""

    def __init__(self, it: Item, depth: int, budget: Budget):
        self.it, self.depth, self.budget, self.tmp, self.zf = it, depth, budget, None, None

    def __enter__(self):
        if self.depth >= MAX_ZIP_DEPTH:
            return [], f"a zip inside {MAX_ZIP_DEPTH} zips: unzip it and collect the folder"
        self.tmp = tempfile.TemporaryFile()
        try:
            with self.it.open() as f:
                while True:
                    chunk = f.read(min(1 << 20, self.budget.left + 1))
                    if not chunk:
                        break
                    self.budget.left -= len(chunk)
                    if self.budget.left < 0:
                        return [], (f"more than {MAX_STUDENT_BYTES // 2**20} MB in all unpacked from this "
                                    "student's files: the rest was not read")
                    self.tmp.write(chunk)
            self.tmp.seek(0)
            self.zf = zipfile.ZipFile(self.tmp)
            return list(_zip_items(self.zf, self.it.display)), ""
        except ZIP_ERRORS as e:
            if isinstance(e, RuntimeError) and "encrypted" in str(e):
                return [], _unreadable(e)
            return [], f"not a readable zip file ({type(e).__name__}){_utf8_hint(e)}"

    def __exit__(self, *exc):
        if self.zf is not None:
            self.zf.close()
        if self.tmp is not None:
            self.tmp.close()
        return False


def submission_time(recorded: dt.datetime, recorded_from: str, claimed: dt.datetime | None) -> tuple:
    """(time, what it was read from) of a file: the time the export records for it (its date in the export's zip, its
    time on disk), or the ``timestamp.txt`` beside it (nbgrader's layout) where that is later.  A timestamp.txt is
    written by the student's own submit (or is a file they handed in), so it may make a submission later, never
    earlier; when it claims an earlier time, the source says so."""
    if claimed is None:
        return recorded, recorded_from
    if claimed >= recorded:
        return claimed, "its timestamp.txt"
    return recorded, (f"{recorded_from}; its timestamp.txt says {fmt_ts(claimed)}, earlier: not used, a "
                      "timestamp.txt is the student's own word")


def _timestamps(items) -> dict:
    """nbgrader's layout: a ``timestamp.txt`` beside a notebook is its submission time."""
    out = {}
    for it in items:
        if it.parts[-1] == "timestamp.txt" and len(it.parts) > 1 and not it.problem:
            try:
                t = parse_ts(read_capped(it, 1000).decode("utf-8", "replace"))
            except Refused:
                continue
            if t is not None:
                out[it.parts[:-1]] = t
    return out


def _hidden(rel) -> bool:
    return any(x.startswith(".") or x == "__MACOSX" for x in rel)


def _folder_items(path: Path, label: str):
    for p in sorted(path.rglob("*")):
        rel = p.relative_to(path).parts
        if _hidden(rel) or (p.is_dir() and not p.is_symlink()):
            continue
        disp = f"{label}/{shown('/'.join(rel))}"
        if p.is_symlink() or not p.is_file():
            yield Item(rel, disp, now_utc(), 0, problem="not a regular file")
            continue
        st = p.stat()
        yield Item(rel, disp, dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc), st.st_size,
                   open=(lambda p=p: open(p, "rb")))


def _zip_time(info: zipfile.ZipInfo) -> dt.datetime:
    """An entry's date in its zip; now when it is not a date (month 13, day 0: a hand-made or damaged zip)."""
    try:
        return dt.datetime(*info.date_time, tzinfo=dt.timezone.utc) if info.date_time[0] >= 1980 else now_utc()
    except ValueError:
        return now_utc()


def _zip_items(zf: zipfile.ZipFile, label: str):
    n = 0
    for info in zf.infolist():
        rel = tuple(x for x in info.filename.replace("\\", "/").split("/") if x)
        if info.is_dir() or not rel or _hidden(rel) or ".." in rel:
            continue
        disp = f"{label}:{shown('/'.join(rel))}"
        mtime = _zip_time(info)
        n += 1
        if n > MAX_ZIP_MEMBERS:
            yield Item(rel, disp, mtime, 0, problem=f"more than {MAX_ZIP_MEMBERS} files in one zip: not read")
            continue
        problem = "password-protected (encrypted): hand it in without a password" if info.flag_bits & 0x1 else ""
        yield Item(rel, disp, mtime, info.file_size, when_from="its date in the zip", problem=problem,
                   open=(lambda zf=zf, info=info: zf.open(info)))


# ---------------------------------------------------------------- which notebook is it
def _base_name(name: str) -> str:
    """A file name without Canvas's resubmission number (``hw-1.ipynb`` is ``hw.ipynb`` handed in again)."""
    return re.sub(r"-\d+(?=\.ipynb$)", "", name)


def _gid(cell) -> str | None:
    """The ``grade_id`` a cell claims, whatever shape its metadata has (a student may have written anything)."""
    meta = cell.get("metadata", {}).get("nbgrader") if isinstance(cell.get("metadata"), dict) else None
    gid = meta.get("grade_id") if isinstance(meta, dict) else None
    return gid if isinstance(gid, str) else None


def _source(cell) -> str:
    src = cell.get("source", "")
    return src if isinstance(src, str) else "".join(x for x in src if isinstance(x, str)) if isinstance(src, list) else ""


def identify_notebook(c: Candidate, nb, known: dict):
    """Which released notebook is this?  By cell ids first, then by file name, then by content."""
    ids = ({_gid(cell) for cell in nb.cells} | {cell.get("id") for cell in nb.cells if isinstance(cell.get("id"), str)}) \
        - {None}                                                      # grading metadata, or the cell ids alone
    best, overlap = None, 0.0
    for k in known.values():
        if k.grade_ids:
            o = len(ids & k.grade_ids) / len(k.grade_ids)
            if o > overlap:
                best, overlap = k, o
    by_name = None
    for k in sorted(known.values(), key=lambda k: -len(k.name)):
        if _base_name(c.name) == f"{k.name}.ipynb" or c.name.endswith(f"_{k.name}.ipynb"):
            by_name = k
            break
    if by_name is not None and (best is None or best is by_name or overlap < 0.5):
        return by_name, ""
    if best is not None and overlap >= 0.3:
        return best, f"file '{shown(c.name)}' was collected as {best.name}.ipynb (recognised by its graded cells)"
    text = "\n".join(_source(cell) for cell in nb.cells)
    scored = sorted(((difflib.SequenceMatcher(None, text[:20000], k.text[:20000], autojunk=False).quick_ratio(), k.name)
                     for k in known.values()), reverse=True)
    if scored and scored[0][0] >= 0.6:
        k = known[scored[0][1]]
        return k, f"file '{shown(c.name)}' was collected as {k.name}.ipynb (recognised by its content)"
    return None, "could not tell which assignment notebook this is (unknown name, no graded cells)"


def submission_notes(c: Candidate, nb) -> list[str]:
    """What the student changed that grading will undo or that the instructor should know about."""
    notes = [c.how[0].upper() + c.how[1:] + "."] if c.how else []
    k = c.known
    present = {}
    for cell in nb.cells:
        gid = _gid(cell)
        if gid:
            present[gid] = _source(cell)
    for gid, src in k.locked.items():
        if gid not in present:
            notes.append(f"The graded test cell `{gid}` was deleted; the original was put back and run.")
        elif present[gid].strip() != src.strip():
            notes.append(f"The graded test cell `{gid}` was edited; the original was put back and run.")
    for gid in sorted(k.solution_ids - set(present)):
        notes.append(f"The answer cell `{gid}` was deleted.")
    added = len(nb.cells) - k.n_cells
    if added > 0:
        notes.append(f"{added} cell(s) more than the handed-out notebook; they were run as written.")
    return notes


def _versions_note(c: Candidate) -> list[str]:
    if not c.others:
        return []
    return [f"{len(c.others) + 1} versions of this notebook were handed in; the newest, `{shown(c.name)}`, "
            "was graded."]


# ---------------------------------------------------------------- grading metadata
def repair_metadata(raw: bytes, nb, known: KnownNotebook) -> tuple[bytes, list[str]]:
    """Make the submission's grading metadata that of the released notebook, so nbgrader grades it.

    * Text that is not valid Unicode (a lone surrogate written as a JSON escape) is replaced by U+FFFD: no tool
      down the line could write it.
    * A cell with grading metadata that does not belong to this notebook (a copied cell, metadata edited by hand,
      a changed ``grade_id``), or a second cell claiming a ``grade_id`` (a copied graded cell), becomes an
      ordinary cell: nbgrader would refuse the whole notebook over it.
    * Cells whose metadata was stripped (copied into a fresh notebook, some editors and hosted notebooks do that)
      get it back: matched to the released cells by cell id first, then by content (a locked cell by its exact
      source, an answer cell by its similarity to the handed-out blank).
    * Every graded cell gets the released cell's grading flags and cell type back, by ``grade_id`` (a test cell
      whose ``grade``/``solution`` flags were edited, an answer cell marked as a test, an answer handed in as
      Markdown): nbgrader would otherwise refuse the whole notebook, now only that cell is affected.
    The original file stays in ``inbox/``.
    """
    notes = _replace_lone_surrogates(nb)
    notes += _drop_foreign(nb, known)
    restored_by = _restore_missing(nb, known)
    if restored_by:
        notes.append(f"The grading metadata of {len(restored_by)} cell(s) was missing (a copied or re-saved "
                     "notebook?); it was restored from the handed-out notebook, matching "
                     + ", ".join(f"`{g}` by {h}" for g, h in restored_by.items()) + ".")
    notes += _restore_released(nb, known)
    if not notes:
        return raw, []
    return nbformat.writes(nb).encode("utf-8"), notes


_SURROGATE = re.compile("[\ud800-\udfff]")


def _replace_lone_surrogates(nb) -> list[str]:
    count = 0

    def fix(node):
        nonlocal count
        if isinstance(node, dict):
            for k in list(node):
                v = fix(node[k])
                if isinstance(k, str) and _SURROGATE.search(k):
                    del node[k]
                    count += 1
                    k = _SURROGATE.sub("\ufffd", k)
                node[k] = v
            return node
        if isinstance(node, list):
            node[:] = [fix(x) for x in node]
            return node
        if isinstance(node, str) and _SURROGATE.search(node):
            count += len(_SURROGATE.findall(node))
            return _SURROGATE.sub("\ufffd", node)
        return node

    fix(nb)
    return [f"{count} character(s) that are not valid Unicode (lone surrogates) were replaced by \ufffd."] if count else []


def _drop_foreign(nb, known: KnownNotebook) -> list[str]:
    """Grading metadata that is not this notebook's, or a second claim on a ``grade_id``, is removed."""
    notes, owners = [], {}
    for cell in nb.cells:                 # who holds each grade_id: the cell with that id, else the first
        gid = _gid(cell)
        if gid in known.grade_ids and (gid not in owners or cell.get("id") == gid):
            owners[gid] = cell
    for cell in nb.cells:
        if "nbgrader" not in cell.metadata:
            continue
        gid = _gid(cell)
        if owners.get(gid) is cell:
            continue
        del cell.metadata["nbgrader"]
        first = next((x.strip() for x in _source(cell).splitlines() if x.strip()), "")[:40].replace("`", "")
        what = f"a second claim on `{gid}`" if gid in owners else "grading metadata that does not belong to this notebook"
        notes.append(f"A cell{f' (`{shown(first)}`)' if first else ''} carried {what}; it was graded as an ordinary cell.")
    return notes


def _restore_missing(nb, known: KnownNotebook) -> dict:
    """Released graded cells with no metadata in the submission, matched by cell id, then by content."""
    present = {_gid(c) for c in nb.cells} - {None}
    free = [c for c in nb.cells if "nbgrader" not in c.metadata]
    restored_by = {}
    for gid, ctype, source, meta in known.cells:
        if gid in present:
            continue
        match = next((c for c in free if c.get("id") == gid), None)
        how = "its cell id"
        if match is None and (meta.get("locked") or meta.get("grade")) and not meta.get("solution"):
            match = next((c for c in free if _source(c).strip() == source.strip()), None)
            how = "its content"
        if match is None and meta.get("solution"):
            scored = sorted(((_similarity(_source(c)[:5000], source[:5000]), i)
                             for i, c in enumerate(free[:MAX_MATCHED_CELLS])), reverse=True)
            if scored and scored[0][0] >= 0.5:
                match = free[scored[0][1]]
                how = "its content"
        if match is None:
            continue
        free.remove(match)
        match.metadata["nbgrader"] = copy.deepcopy(meta)
        present.add(gid)
        restored_by[gid] = how
    return restored_by


def _similarity(a: str, b: str, at_least: float = 0.5) -> float:
    """difflib's ratio of ``a`` and ``b``, or 0 when its cheap upper bounds (lengths, then letters) are already
    under ``at_least``: the full comparison, quadratic in the worst case, is only made where it can matter."""
    sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
    if sm.real_quick_ratio() < at_least or sm.quick_ratio() < at_least:
        return 0.0
    return sm.ratio()


def _restore_released(nb, known: KnownNotebook) -> list[str]:
    """Each graded cell (by ``grade_id``) gets the released cell's grading flags and cell type back."""
    notes = []
    for gid, ctype, _, meta in known.cells:
        i = next((i for i, c in enumerate(nb.cells) if _gid(c) == gid), None)
        if i is None:
            continue
        cell = nb.cells[i]
        what = "answer cell" if meta.get("solution") else "graded test cell" if meta.get("grade") else "cell"
        mine = cell.metadata["nbgrader"]
        changed = sorted(k for k in set(meta) | set(mine) if mine.get(k) != meta.get(k))
        if changed:
            cell.metadata["nbgrader"] = copy.deepcopy(meta)
            notes.append(f"The grading settings of the {what} `{gid}` had been changed "
                         f"({', '.join(shown(k) for k in changed)}); the handed-out ones were put back.")
        if cell.cell_type != ctype:
            new = nbformat.v4.new_code_cell(_source(cell)) if ctype == "code" else \
                nbformat.v4.new_markdown_cell(_source(cell))
            new.metadata = cell.metadata
            if isinstance(cell.get("id"), str):
                new["id"] = cell["id"]
            nb.cells[i] = new
            notes.append(f"The {what} `{gid}` was handed in as a {shown(cell.cell_type).capitalize()} cell; it was "
                         f"turned back into a {ctype} cell"
                         + (" and graded as written." if meta.get("solution") else "."))
    return notes


# ---------------------------------------------------------------- the report
@dataclass
class Duplicate:
    """Two notebooks for the same assignment, student and notebook in one batch: which was filed, and why."""
    assignment: str
    student: str
    notebook: str
    kept: str                  # the source (path) of the one filed
    other: str                 # the source of the one not filed
    why: str
    kept_at: str = ""          # where the other one was put (relative to the course directory); "" in a dry run


@dataclass
class Refusal:
    """A file that was not filed, and why; ``student`` where its owner is known (their collect record has it)."""
    file: str
    why: str
    student: str = ""
    assignment: str = ""


@dataclass
class Collision:
    """Identities from the LMS that would have been filed as one student id: none of their files was filed."""
    assignment: str
    students: list             # the student id(s) they would meet at
    identities: list           # e.g. ["Canvas user 111", "Canvas user 222"]
    files: list


@dataclass
class Renamed:
    """An LMS id whose name in the export is not the roster's: filed by the id, reported."""
    student: str
    identity: str
    roster_name: str
    export_name: str


@dataclass
class CollectReport:
    batch: str
    collected: list = field(default_factory=list)
    replaced: list = field(default_factory=list)
    unchanged: list = field(default_factory=list)
    older: list = field(default_factory=list)
    duplicates: list = field(default_factory=list)      # [Duplicate]
    unmatched: list = field(default_factory=list)       # (file, why) of every file not filed
    refused: list = field(default_factory=list)         # [Refusal]: the same files, with their owner where known
    collisions: list = field(default_factory=list)      # [Collision]
    renamed: list = field(default_factory=list)         # [Renamed]
    skipped: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    held_back: list = field(default_factory=list)       # files whose Canvas name reads as more than one user
    times: list = field(default_factory=list)           # (student, assignment, time, what it was read from)

    def refuse(self, file: str, why: str, student: str = "", assignment: str = "") -> None:
        self.unmatched.append((file, why))
        self.refused.append(Refusal(file, why, student, assignment))

    def refusals_of(self, student: str, assignment: str) -> list[str]:
        return [shown(f"{r.file}: {r.why}") for r in self.refused
                if r.student == student and r.assignment in ("", assignment)]

    def text(self) -> str:
        owner = {(r.file, r.why): r.student for r in self.refused}
        lines = [f"collect batch {self.batch}: {len(self.collected)} submission(s) collected, "
                 f"{len(self.replaced)} replaced an earlier one, {len(self.unchanged)} unchanged, "
                 f"{len(self.unmatched)} file(s) NOT matched"]
        undecided = sum(why.startswith(UNDECIDED) for _, why in self.unmatched)
        if undecided:
            lines.append(f"  {undecided} file(s) not read: an export that mixes Canvas, Moodle and per-student "
                         "folders, or whose names read both ways (listed below); --lms names its layout")
        if self.held_back:
            lines.append(f"  {len(self.held_back)} file(s) held back: a Canvas file name that reads as more than one "
                         "user (listed below); --roster tells them apart")
        for s, a, files, how in self.collected:
            lines.append(f"  + {s}/{a} <- {', '.join(files)}" + (f"   [{'; '.join(how)}]" if how else ""))
        for s, a, when, source in self.times:
            lines.append(f"  @ {s}/{a}: submitted {when} ({source})")
        for sub, where in self.replaced:
            lines.append(f"  ~ {sub}: the earlier submission was moved to {where}")
        for sub, why in self.older:
            lines.append(f"  = {sub}: {why}")
        for d in self.duplicates:
            lines.append(f"  = {d.student}/{d.assignment}: two versions of {d.notebook}.ipynb in this batch: filed "
                         f"{d.kept}, not {d.other}: {d.why}; "
                         + (f"the other one is kept in {d.kept_at}" if d.kept_at else "dry run: nothing written"))
        for r in self.renamed:
            lines.append(f"  ? {r.student}: {r.identity} is '{r.roster_name}' on the roster and '{r.export_name}' in "
                         "the export (renamed?): filed by the id")
        for c in self.collisions:
            lines.append(f"  ! COLLISION {c.assignment}: {' and '.join(c.identities)} would be filed as "
                         f"{', '.join(c.students)}: none of their files was filed")
        if self.unmatched:
            lines.append("NOT collected (fix and collect again, or use --student-regex / --roster):")
            lines += [f"  ! {f}{f' ({owner[(f, why)]})' if owner.get((f, why)) else ''}: {why}"
                      for f, why in self.unmatched]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} other file(s): " +
                         ", ".join(f"{f} ({why})" for f, why in self.skipped[:20]) + (" ..." if len(self.skipped) > 20 else ""))
        if self.missing:
            lines.append(f"on the roster but nothing collected in this batch: {', '.join(self.missing)}")
        return "\n".join(shown(line) for line in lines)
