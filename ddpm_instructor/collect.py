"""Step 2: ``collect`` -- file what students handed in (nbgrader folders, Canvas/Moodle exports, zips) under
``submitted/``, recognise renamed notebooks, repair stripped or foreign grading metadata, and report every file.

Whose a file is comes from the export's own structure only, never from what a student handed in: each folder or
zip given to ``collect`` is an export whose top-level entries are students (``owner_of``): a Canvas file name
(``<name>_[LATE_]<userid>_<fileid>_<file>``), a Moodle folder or file name (``<Full Name>_<id>_assignsubmission_
file_...``) or one folder per student (nbgrader's ``submitted/<student>/``).  Everything inside a student's entry,
zips included, is that student's whatever its paths say.  A zip at the top level that names no student is itself
an export (an LMS download kept inside another).  Two notebooks for the same student and assignment: the newer by
the time the export records is filed, the other is kept in ``archive/`` and both are in the report.
"""
from __future__ import annotations

import csv
import datetime as dt
import difflib
import io
import re
import shutil
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import nbformat

from . import records
from .coursedir import CourseDir, MAX_NOTEBOOK_BYTES, clean_student_id, fmt_ts, now_utc, parse_ts, stamp, unique
from .errors import InstructorError
from .sanitize import reduce_submission

MAX_ZIP_DEPTH = 3        # zips opened one inside another: an export, a student's zip in it, one zip inside that
# Canvas "Download Submissions" (lib/content_zipper.rb): [sortable name, "LATE" if late, user id] joined by "_",
# then "_<attachment id>_<file name>"; anonymous grading writes "anon_<anonymous id>" for name and user id.
# A file handed in again under the same name gets "-1", "-2", ... before its extension.
CANVAS = re.compile(r"^(?:(?:LATE_)?(?P<anon>anon_[A-Za-z0-9]+)|(?P<name>.+?)(?:_LATE)?_(?P<uid>\d+))"
                    r"_(?P<fid>\d+)_(?P<file>.+)$")
# Moodle "Download all submissions" (mod/assign): "<Full Name>_<participant id>_assignsubmission_<plugin>_" is a
# folder per student (Moodle >= 3.1) or the prefix of each file; "_" in the name becomes a space.
MOODLE = re.compile(r"^(?P<name>[^_]+)_(?P<id>\d+)_assign(?:submission|feedback)_[a-z]+_(?P<file>.*)$")
NO_OWNER = ("could not tell which student handed this in: the top level of an export must be Canvas file names "
            "(<name>_<userid>_<fileid>_<file>), Moodle folders (<Full Name>_<id>_assignsubmission_file_/) or one "
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
            dry_run=False) -> "CollectReport":
    """File submissions (folders in nbgrader's layout, LMS folders or zips) under ``submitted/``; see docs/INSTRUCTORS.md."""
    known = known_notebooks(course)
    if assignment and assignment not in {k.assignment for k in known.values()}:
        raise InstructorError(f"unknown assignment {assignment!r}; released: {', '.join(course.released_assignments())}")
    regex = _compile_regex(student_regex)
    roster_map = load_roster(roster) if roster else None
    report = CollectReport(batch=stamp())
    candidates = [c for c in _gather(course, paths, regex, report, dry_run)
                  if _prepare(c, known, roster_map, assignment, report)]
    by_submission: dict[tuple[str, str], list[Candidate]] = {}
    for (a, student, _), c in _choose(course, candidates, report, dry_run).items():
        by_submission.setdefault((a, student), []).append(c)
    for (a, student), cs in sorted(by_submission.items()):
        _place(course, a, student, cs, when or max(c.mtime for c in cs), report, dry_run)
    if roster_map:
        report.missing = sorted(set(roster_map.values()) - {s for _, s in by_submission})
    if not dry_run:
        course.logs.mkdir(parents=True, exist_ok=True)
        (course.logs / f"collect-{report.batch}.txt").write_text(report.text())
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


def _gather(course: CourseDir, paths, regex, report, dry_run) -> list["Candidate"]:
    """Every file of every path given, with its owner; each path is first kept untouched in ``inbox/<batch>/``."""
    inbox = course.inbox / report.batch
    out = []
    for p in map(Path, paths):
        if not p.exists():
            report.unmatched.append((str(p), "no such file or folder"))
            continue
        if not dry_run:
            inbox.mkdir(parents=True, exist_ok=True)
            keep = unique(inbox / p.name)
            if p.is_dir():
                shutil.copytree(str(p), str(keep), symlinks=True)
            else:
                shutil.copy2(str(p), str(keep))
        out += list(iter_candidates(p, regex))
    return out


def _prepare(c: "Candidate", known, roster, assignment, report) -> bool:
    """Read, identify and repair one candidate; False (the reason is in the report) when it is not filed."""
    if c.problem:
        report.unmatched.append((c.display, c.problem))
        return False
    if c.name == "timestamp.txt":                  # nbgrader layout: read with its notebook
        return False
    if not c.name.lower().endswith(".ipynb"):
        report.skipped.append((c.display, "not a notebook"))
        return False
    if c.size > MAX_NOTEBOOK_BYTES:
        report.unmatched.append((c.display, f"larger than {MAX_NOTEBOOK_BYTES // 2**20} MB"))
        return False
    try:
        nb = nbformat.reads(c.read().decode("utf-8"), as_version=4)
    except Exception as e:
        report.unmatched.append((c.display, f"not a readable notebook ({type(e).__name__})"))
        return False
    student, why = student_id(c.owner, {k.assignment for k in known.values()}, roster) if c.owner else (None, c.no_owner)
    match, how = (None, why) if student is None else identify_notebook(c, nb, known)
    if match is None:
        report.unmatched.append((c.display, how))
        return False
    if assignment and match.assignment != assignment:
        report.skipped.append((c.display, f"belongs to {match.assignment}"))
        return False
    c.student, c.known, c.how, c.nb = student, match, how, nb
    c.prepared, c.repairs = repair_metadata(c.read(), nb, match)
    before = nbformat.writes(nb)
    reduced = reduce_submission(nb)          # nothing a student wrote may run in the instructor's browser
    if nbformat.writes(nb) != before:
        c.prepared, c.repairs = nbformat.writes(nb).encode("utf-8"), c.repairs + reduced
    return True


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


def _place(course: CourseDir, a, student, cs, when, report, dry_run):
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
        notes[c.known.name] = submission_notes(c) + c.repairs
    (dest / "timestamp.txt").write_text(fmt_ts(when))
    records.save(records.CollectRecord(notebooks=notes, batch=report.batch, files=[c.display for c in cs],
                                       submitted=fmt_ts(when)), records.notes_path(course.notes, a, student, "collect"))
    report.collected.append((student, a, [c.display for c in cs], [c.how for c in cs if c.how]))



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
            cells.append((gid, cell.cell_type, cell.source, dict(m)))
            if m.get("solution"):
                sol.add(gid)
            elif m.get("locked") or m.get("grade"):
                locked[gid] = cell.source
        return cls(assignment, path.stem, ids, locked, sol, "\n".join(c.source for c in nb.cells), len(nb.cells),
                   cells)


# ---------------------------------------------------------------- whose is it: the export's structure only
@dataclass(frozen=True)
class Owner:
    """Who handed in a top-level entry of an export, as the export names them."""
    student: str              # the name the export gives (Canvas sortable name, Moodle full name, folder name)
    keys: tuple = ()          # other names a roster may know them by (the LMS's user / participant id)
    by: str = "folder"        # what carried the name: "folder", "Canvas file name", "Moodle folder", ...


def owner_of(entry: str, is_dir: bool, regex=None) -> tuple[Owner | None, str]:
    """The owner named by one top-level entry of an export, and the student's own file name for a file entry:
    (Owner, file name), or (None, entry) when the entry names nobody."""
    if regex is not None:
        m = regex.search(entry)
        return (Owner(m.group("student"), (), "--student-regex"), entry) if m and m.group("student") else (None, entry)
    m = MOODLE.match(entry)
    if m:
        name = m["name"].strip()                       # blind marking: every name is "Participant"
        student = f"{name}_{m['id']}" if name == "Participant" else name
        return Owner(student, (m["id"],), "Moodle folder" if is_dir else "Moodle file name"), m["file"] or entry
    if is_dir:
        return Owner(entry), entry
    m = CANVAS.match(entry)
    if m:
        return Owner(m["anon"] or m["name"], (m["uid"],) if m["uid"] else (), "Canvas file name"), m["file"]
    return None, entry


def student_id(owner: Owner, assignments, roster) -> tuple[str | None, str | None]:
    """The course's student id for an owner: (id, None), or (None, why not)."""
    if owner.by == "folder" and owner.student in assignments:
        return None, (f"{owner.student}/ is an assignment folder, not a student's: give collect the folder that "
                      "holds one folder per student (<student>/<assignment>/...)")
    if roster is None:
        sid = clean_student_id(owner.student)
        return (sid, None) if sid != "unknown" else (None, f"{owner.student!r} ({owner.by}) makes no student id")
    for key in (owner.student, *owner.keys):
        sid = roster.get(key) or roster.get(key.lower()) or roster.get(clean_student_id(key).lower())
        if sid:
            return sid, None
    return None, f"student {owner.student!r} ({owner.by}) is not on the roster"


@dataclass
class Item:
    """One file of a folder or zip, before anyone has said whose it is."""
    parts: tuple               # path inside its folder / zip
    display: str               # where it came from, for the report
    mtime: dt.datetime
    size: int
    read: object = None
    problem: str = ""
    when_from: str = "its file time"


@dataclass
class Candidate:
    display: str               # where it came from, for the report
    name: str                  # the student's own file name (an LMS prefix taken off)
    mtime: dt.datetime         # the submission time the export records (timestamp.txt, the file's time in it)
    size: int
    _read: object = None
    problem: str = ""
    owner: Owner | None = None
    no_owner: str = ""         # why no owner could be named (when ``owner`` is None)
    when_from: str = ""        # what ``mtime`` was read from
    inner_mtime: dt.datetime | None = None     # the file's own date (inside a student's zip): breaks a tie only
    student: str = ""
    known: KnownNotebook | None = None
    how: str = ""
    nb: object = None
    prepared: bytes = b""
    repairs: list = field(default_factory=list)
    others: list = field(default_factory=list)  # sources of the other versions handed in with it (not filed)
    _data: bytes | None = None

    def read(self) -> bytes:
        if self._data is None:
            self._data = self._read()
        return self._data


def iter_candidates(path, regex=None):
    """Every file handed in under a folder, an LMS zip or a lone file given to collect, each with its owner."""
    path = Path(path)
    if path.is_dir():
        yield from _export(list(_folder_items(path, path.name)), regex, 0)
    elif path.suffix.lower() == ".zip":
        yield from _export(list(_zip_items(path.read_bytes(), path.name)), regex, 1)
    else:
        st = path.stat()
        yield from _export([Item((path.name,), path.name, dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc),
                                 st.st_size, read=path.read_bytes)], regex, 0)


def _export(items: list, regex, depth: int):
    """The files of one export: each top-level entry names its owner (``owner_of``); a top-level zip that names
    nobody is an export itself.  The time of a file is its ``timestamp.txt`` (nbgrader) or its time in the export."""
    if items and all(len(i.parts) > 1 and i.parts[0] == "submitted" for i in items):
        items = [replace(i, parts=i.parts[1:]) for i in items]          # nbgrader's course folder: submitted/<student>/
    stamps = _timestamps(items)
    entries: dict[str, list[Item]] = {}
    for it in items:
        entries.setdefault(it.parts[0], []).append(it)
    for entry, members in entries.items():
        is_dir = any(len(i.parts) > 1 for i in members)
        owner, own_name = owner_of(entry, is_dir, regex)
        if owner is None and not is_dir and entry.lower().endswith(".zip") and not members[0].problem:
            inner, problem = _open_zip(members[0], depth)
            if problem:
                yield Candidate(members[0].display, entry, members[0].mtime, members[0].size, problem=problem)
            else:
                yield from _export(inner, regex, depth + 1)
            continue
        for it in members:
            t = stamps.get(it.parts[:-1])
            when, when_from = (t, "its timestamp.txt") if t else (it.mtime, it.when_from)
            for c in _owned(it, owner, own_name if len(it.parts) == 1 else it.parts[-1], when, when_from, depth):
                c.no_owner = "" if owner else (f"--student-regex did not match {entry!r}" if regex else NO_OWNER)
                yield c


def _owned(it: Item, owner, name: str, when, when_from: str, depth: int):
    """A file of one student's entry.  A zip is opened: all it holds is that student's, whatever its paths say,
    at the time of the zip itself (the dates inside it are the student's, they only break a tie)."""
    if not it.problem and name.lower().endswith(".zip"):
        inner, problem = _open_zip(it, depth)
        if problem:
            yield Candidate(it.display, name, when, it.size, problem=problem, owner=owner, when_from=when_from)
            return
        of_zip = when_from if "zip it came in" in when_from else f"that of the zip it came in: {when_from}"
        for i in inner:
            yield from _owned(i, owner, i.parts[-1], when, of_zip, depth + 1)
        return
    yield Candidate(it.display, name, when, it.size, _read=it.read, problem=it.problem, owner=owner,
                    when_from=when_from, inner_mtime=it.mtime)


def _open_zip(it: Item, depth: int):
    if depth >= MAX_ZIP_DEPTH:
        return None, f"a zip inside {MAX_ZIP_DEPTH} zips: unzip it and collect the folder"
    if it.size > 4 * MAX_NOTEBOOK_BYTES:
        return None, f"a zip larger than {4 * MAX_NOTEBOOK_BYTES // 2**20} MB"
    return list(_zip_items(it.read(), it.display)), ""


def _timestamps(items) -> dict:
    """nbgrader's layout: a ``timestamp.txt`` beside a notebook is its submission time."""
    out = {}
    for it in items:
        if it.parts[-1] == "timestamp.txt" and len(it.parts) > 1 and not it.problem and it.size < 1000:
            t = parse_ts(it.read().decode("utf-8", "replace"))
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
        disp = f"{label}/{'/'.join(rel)}"
        if p.is_symlink() or not p.is_file():
            yield Item(rel, disp, now_utc(), 0, problem="not a regular file")
            continue
        st = p.stat()
        yield Item(rel, disp, dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc), st.st_size,
                   read=(lambda p=p: p.read_bytes()))


def _zip_items(data: bytes, label: str):
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        yield Item((label,), label, now_utc(), len(data), problem="not a readable zip file")
        return
    for info in zf.infolist():
        rel = tuple(x for x in info.filename.replace("\\", "/").split("/") if x)
        if info.is_dir() or not rel or _hidden(rel) or ".." in rel:
            continue
        mtime = dt.datetime(*info.date_time, tzinfo=dt.timezone.utc) if info.date_time[0] >= 1980 else now_utc()
        yield Item(rel, f"{label}:{'/'.join(rel)}", mtime, info.file_size, when_from="its date in the zip",
                   read=(lambda zf=zf, info=info: zf.read(info)))


# ---------------------------------------------------------------- which notebook is it
def _base_name(name: str) -> str:
    """A file name without Canvas's resubmission number (``hw-1.ipynb`` is ``hw.ipynb`` handed in again)."""
    return re.sub(r"-\d+(?=\.ipynb$)", "", name)


def identify_notebook(c: Candidate, nb, known: dict):
    """Which released notebook is this?  By cell ids first, then by file name, then by content."""
    ids = ({cell.metadata.get("nbgrader", {}).get("grade_id") for cell in nb.cells}
           | {cell.get("id") for cell in nb.cells}) - {None}          # grading metadata, or the cell ids alone
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
        return best, f"file {c.name!r} was collected as {best.name}.ipynb (recognised by its graded cells)"
    text = "\n".join(cell.source for cell in nb.cells)
    scored = sorted(((difflib.SequenceMatcher(None, text[:20000], k.text[:20000], autojunk=False).quick_ratio(), k.name)
                     for k in known.values()), reverse=True)
    if scored and scored[0][0] >= 0.6:
        k = known[scored[0][1]]
        return k, f"file {c.name!r} was collected as {k.name}.ipynb (recognised by its content)"
    return None, "could not tell which assignment notebook this is (unknown name, no graded cells)"


def submission_notes(c: Candidate) -> list[str]:
    """What the student changed that grading will undo or that the instructor should know about."""
    notes = [c.how[0].upper() + c.how[1:] + "."] if c.how else []
    if c.others:
        notes.append(f"{len(c.others) + 1} versions of this notebook were handed in; the newest, `{c.name}`, "
                     "was graded.")
    nb, k = c.nb, c.known
    present = {}
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid:
            present[gid] = cell.source
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


# ---------------------------------------------------------------- grading metadata
def repair_metadata(raw: bytes, nb, known: KnownNotebook) -> tuple[bytes, list[str]]:
    """Make the submission's grading metadata that of the released notebook, so nbgrader grades it.

    * A cell with grading metadata that does not belong to this notebook (a copied cell, metadata edited by hand,
      a changed ``grade_id``), or a second cell claiming a ``grade_id`` (a copied graded cell), becomes an
      ordinary cell: nbgrader would refuse the whole notebook over it.
    * Cells whose metadata was stripped (copied into a fresh notebook, some editors and hosted notebooks do that)
      get it back: matched to the released cells by cell id first, then by content (a locked cell by its exact
      source, an answer cell by its similarity to the handed-out blank).
    * An answer cell turned into Markdown is noted; nbgrader turns it back into code and runs it as written.
    The original file stays in ``inbox/``.
    """
    notes = _drop_foreign(nb, known)
    restored_by = _restore_missing(nb, known)
    if restored_by:
        notes.append(f"The grading metadata of {len(restored_by)} cell(s) was missing (a copied or re-saved "
                     "notebook?); it was restored from the handed-out notebook, matching "
                     + ", ".join(f"`{g}` by {h}" for g, h in restored_by.items()) + ".")
    for gid, ctype, source, meta in known.cells:
        cell = next((c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid), None)
        if cell is not None and meta.get("solution") and cell.cell_type != ctype:
            notes.append(f"The answer cell `{gid}` was handed in as a {cell.cell_type.capitalize()} cell; it was "
                         f"turned back into a {ctype} cell and graded as written.")
    if not notes:
        return raw, []
    return nbformat.writes(nb).encode("utf-8"), notes


def _drop_foreign(nb, known: KnownNotebook) -> list[str]:
    """Grading metadata that is not this notebook's, or a second claim on a ``grade_id``, is removed."""
    notes, owners = [], {}
    for cell in nb.cells:                 # who holds each grade_id: the cell with that id, else the first
        meta = cell.metadata.get("nbgrader")
        gid = meta.get("grade_id") if isinstance(meta, dict) else None
        if gid in known.grade_ids and (gid not in owners or cell.get("id") == gid):
            owners[gid] = cell
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader")
        if meta is None:
            continue
        gid = meta.get("grade_id") if isinstance(meta, dict) else None
        if owners.get(gid) is cell:
            continue
        del cell.metadata["nbgrader"]
        first = next((x.strip() for x in cell.source.splitlines() if x.strip()), "")[:40].replace("`", "")
        what = f"a second claim on `{gid}`" if gid in owners else "grading metadata that does not belong to this notebook"
        notes.append(f"A cell{f' (`{first}`)' if first else ''} carried {what}; it was graded as an ordinary cell.")
    return notes


def _restore_missing(nb, known: KnownNotebook) -> dict:
    """Released graded cells with no metadata in the submission, matched by cell id, then by content."""
    present = {c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "nbgrader" in c.metadata}
    free = [c for c in nb.cells if "nbgrader" not in c.metadata]
    restored_by = {}
    for gid, ctype, source, meta in known.cells:
        if gid in present:
            continue
        match = next((c for c in free if c.get("id") == gid), None)
        how = "its cell id"
        if match is None and (meta.get("locked") or meta.get("grade")) and not meta.get("solution"):
            match = next((c for c in free if c.source.strip() == source.strip()), None)
            how = "its content"
        if match is None and meta.get("solution"):
            scored = sorted(((difflib.SequenceMatcher(None, c.source, source, autojunk=False).ratio(), i)
                             for i, c in enumerate(free)), reverse=True)
            if scored and scored[0][0] >= 0.5:
                match = free[scored[0][1]]
                how = "its content"
        if match is None:
            continue
        free.remove(match)
        match.metadata["nbgrader"] = dict(meta)
        present.add(gid)
        restored_by[gid] = how
    return restored_by


def load_roster(path) -> dict[str, str]:
    """roster CSV with an ``id`` column (and optionally ``lms_id``, ``name``, ``email``): any of them -> id."""
    out = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            sid = clean_student_id(row.get("id") or row.get("student_id") or "")
            if not sid or sid == "unknown":
                continue
            for key in ("id", "student_id", "lms_id", "name", "email", "login"):
                v = (row.get(key) or "").strip()
                if v:
                    out[v] = sid
                    out[v.lower()] = sid
                    out[clean_student_id(v).lower()] = sid
    return out


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
class CollectReport:
    batch: str
    collected: list = field(default_factory=list)
    replaced: list = field(default_factory=list)
    unchanged: list = field(default_factory=list)
    older: list = field(default_factory=list)
    duplicates: list = field(default_factory=list)      # [Duplicate]
    unmatched: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    missing: list = field(default_factory=list)

    def text(self) -> str:
        lines = [f"collect batch {self.batch}: {len(self.collected)} submission(s) collected, "
                 f"{len(self.replaced)} replaced an earlier one, {len(self.unchanged)} unchanged, "
                 f"{len(self.unmatched)} file(s) NOT matched"]
        for s, a, files, how in self.collected:
            lines.append(f"  + {s}/{a} <- {', '.join(files)}" + (f"   [{'; '.join(how)}]" if how else ""))
        for sub, where in self.replaced:
            lines.append(f"  ~ {sub}: the earlier submission was moved to {where}")
        for sub, why in self.older:
            lines.append(f"  = {sub}: {why}")
        for d in self.duplicates:
            lines.append(f"  = {d.student}/{d.assignment}: two versions of {d.notebook}.ipynb in this batch: filed "
                         f"{d.kept}, not {d.other}: {d.why}; "
                         + (f"the other one is kept in {d.kept_at}" if d.kept_at else "dry run: nothing written"))
        if self.unmatched:
            lines.append("NOT collected (fix and collect again, or use --student-regex / --roster):")
            lines += [f"  ! {f}: {why}" for f, why in self.unmatched]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} other file(s): " +
                         ", ".join(f"{f} ({why})" for f, why in self.skipped[:20]) + (" ..." if len(self.skipped) > 20 else ""))
        if self.missing:
            lines.append(f"on the roster but nothing collected in this batch: {', '.join(self.missing)}")
        return "\n".join(lines)
