"""Step 2: ``collect`` -- file what students handed in (nbgrader folders, Canvas/Moodle exports, zips) under
``submitted/``, recognise renamed notebooks, repair stripped or foreign grading metadata, and report every file."""
from __future__ import annotations

import csv
import datetime as dt
import difflib
import io
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from . import records
from .coursedir import CourseDir, MAX_NOTEBOOK_BYTES, clean_student_id, fmt_ts, now_utc, parse_ts, stamp, unique
from .errors import InstructorError


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
    if assignment:
        if assignment not in {k.assignment for k in known.values()}:
            raise InstructorError(f"unknown assignment {assignment!r}; released: {', '.join(course.released_assignments())}")
    roster_map = load_roster(roster) if roster else None
    batch = stamp()
    report = CollectReport(batch=batch)
    inbox = course.inbox / batch
    candidates: list[Candidate] = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            report.unmatched.append((str(p), "no such file or folder"))
            continue
        if not dry_run:                                   # keep the raw input, untouched
            inbox.mkdir(parents=True, exist_ok=True)
            keep = unique(inbox / p.name)
            (shutil.copytree if p.is_dir() else shutil.copy2)(str(p), str(keep))
        candidates += list(iter_candidates(p))
    regex = re.compile(student_regex) if student_regex else None
    chosen: dict[tuple[str, str, str], Candidate] = {}
    for c in candidates:
        if c.problem:
            report.unmatched.append((c.display, c.problem))
            continue
        if c.name == "timestamp.txt":                  # nbgrader layout: read with its notebook
            continue
        if not c.name.lower().endswith(".ipynb"):
            report.skipped.append((c.display, "not a notebook"))
            continue
        if c.size > MAX_NOTEBOOK_BYTES:
            report.unmatched.append((c.display, f"larger than {MAX_NOTEBOOK_BYTES // 2**20} MB"))
            continue
        try:
            nb = nbformat.reads(c.read().decode("utf-8"), as_version=4)
        except Exception as e:
            report.unmatched.append((c.display, f"not a readable notebook ({type(e).__name__})"))
            continue
        student, why = identify_student(c, known, regex, roster_map)
        if student is None:
            report.unmatched.append((c.display, why))
            continue
        match, how = identify_notebook(c, nb, known)
        if match is None:
            report.unmatched.append((c.display, how))
            continue
        if assignment and match.assignment != assignment:
            report.skipped.append((c.display, f"belongs to {match.assignment}"))
            continue
        c.student, c.known, c.how, c.nb = student, match, how, nb
        c.prepared, c.repairs = repair_metadata(c.read(), nb, match)
        key = (student, match.assignment, match.name)
        if key in chosen:
            old = chosen[key]
            newer, older = (c, old) if c.mtime >= old.mtime else (old, c)
            chosen[key] = newer
            report.duplicates.append((older.display, f"{student} handed in {match.name} twice in this batch; "
                                      f"kept the newer {newer.display}"))
        else:
            chosen[key] = c
    by_submission: dict[tuple[str, str], list[Candidate]] = {}
    for (student, a, _), c in chosen.items():
        by_submission.setdefault((student, a), []).append(c)
    for (student, a), cs in sorted(by_submission.items()):
        when_ = when or max(c.mtime for c in cs)
        _place(course, student, a, cs, when_, report, dry_run, batch)
    if roster_map:
        seen = {s for s, _ in by_submission}
        report.missing = sorted(set(roster_map.values()) - seen)
    if not dry_run:
        course.logs.mkdir(parents=True, exist_ok=True)
        (course.logs / f"collect-{batch}.txt").write_text(report.text())
    return report

def _place(course: CourseDir, student, a, cs, when, report, dry_run, batch):
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
                                 f"one ({fmt_ts(old_ts)}); kept the newer, this one is in inbox/{batch}"))
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
    records.save(records.CollectRecord(notebooks=notes, batch=batch, files=[c.display for c in cs],
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


@dataclass
class Candidate:
    display: str               # where it came from, for the report
    parts: tuple               # path parts relative to the collected folder / zip
    name: str
    mtime: dt.datetime
    size: int
    _read: object = None
    problem: str = ""
    student: str = ""
    known: KnownNotebook | None = None
    how: str = ""
    nb: object = None
    prepared: bytes = b""
    repairs: list = field(default_factory=list)
    _data: bytes | None = None

    def read(self) -> bytes:
        if self._data is None:
            self._data = self._read()
        return self._data


def iter_candidates(path: Path, prefix: str = ""):
    """Every file under a folder or inside a zip (one level of nested zips), with its relative parts."""
    label = prefix or path.name
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            rel = p.relative_to(path).parts
            if any(x.startswith(".") or x == "__MACOSX" for x in rel) or p.is_dir():
                continue
            if p.is_symlink() or not p.is_file():
                yield Candidate(f"{label}/{'/'.join(rel)}", rel, p.name, now_utc(), 0, problem="not a regular file")
                continue
            if p.suffix.lower() == ".zip":
                yield from _zip_candidates(p.read_bytes(), f"{label}/{'/'.join(rel)}", rel[:-1])
                continue
            st = p.stat()
            when = dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc)
            ts_file = p.parent / "timestamp.txt"          # nbgrader layout: the recorded submission time wins
            if ts_file.is_file() and parse_ts(ts_file.read_text()):
                when = parse_ts(ts_file.read_text())
            yield Candidate(f"{label}/{'/'.join(rel)}", rel, p.name, when, st.st_size,
                            _read=(lambda p=p: p.read_bytes()))
    elif path.suffix.lower() == ".zip":
        yield from _zip_candidates(path.read_bytes(), label, ())
    else:
        st = path.stat()
        yield Candidate(label, (path.name,), path.name, dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc),
                        st.st_size, _read=(lambda p=path: p.read_bytes()))


def _zip_candidates(data: bytes, label: str, parent_parts: tuple, depth: int = 0):
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        yield Candidate(label, parent_parts, label, now_utc(), len(data), problem="not a readable zip file")
        return
    for info in zf.infolist():
        if info.is_dir():
            continue
        rel = tuple(x for x in info.filename.replace("\\", "/").split("/") if x)
        if any(x.startswith(".") or x == "__MACOSX" for x in rel) or any(x == ".." for x in rel):
            continue
        mtime = dt.datetime(*info.date_time, tzinfo=dt.timezone.utc) if info.date_time[0] >= 1980 else now_utc()
        disp = f"{label}:{'/'.join(rel)}"
        if rel[-1].lower().endswith(".zip") and depth == 0 and info.file_size <= 4 * MAX_NOTEBOOK_BYTES:
            yield from _zip_candidates(zf.read(info), disp, parent_parts + rel[:-1] + (rel[-1][:-4],), depth + 1)
            continue
        yield Candidate(disp, parent_parts + rel, rel[-1], mtime, info.file_size,
                        _read=(lambda zf=zf, info=info: zf.read(info)))


LMS_PREFIX = re.compile(r"^(?P<student>[^_]+)_(?:(?:LATE|late)_)?(?:\d+_)*(?P<rest>.*)$")


def identify_student(c: Candidate, known, regex, roster):
    """Who handed this file in?  Returns (student_id, None) or (None, reason)."""
    assignments = {k.assignment for k in known.values()}
    rel = "/".join(c.parts)
    raw = None
    if regex is not None:
        m = regex.search(rel)
        if not m or not m.groupdict().get("student"):
            return None, f"--student-regex did not match {rel!r}"
        raw = m.group("student")
    elif len(c.parts) >= 3 and c.parts[-2] in assignments:          # nbgrader layout: <student>/<assignment>/x.ipynb
        raw = c.parts[-3]
    elif len(c.parts) >= 2 and "_" in c.parts[-2]:                  # Moodle: "Jane Doe_123_assignsubmission_file_/x.ipynb"
        raw = c.parts[-2].split("_")[0]
    elif "_" in c.name and LMS_PREFIX.match(c.name):               # Canvas & co: "<student>_[LATE_][123_]file.ipynb"
        stem = c.name
        if any(stem == f"{k}.ipynb" for k in known):                # a bare notebook name is not a student id
            raw = c.parts[-2] if len(c.parts) >= 2 else None
        else:
            raw = LMS_PREFIX.match(c.name).group("student")
    elif len(c.parts) >= 2:                                          # <student>/x.ipynb
        raw = c.parts[-2]
    if not raw:
        return None, "could not tell which student this is (no <student>/ folder or <student>_ prefix)"
    if roster is not None:
        sid = roster.get(raw) or roster.get(raw.lower()) or roster.get(clean_student_id(raw).lower())
        if sid is None:
            return None, f"student {raw!r} is not on the roster"
        return sid, None
    return clean_student_id(raw), None


def _strip_lms(name: str) -> str:
    m = LMS_PREFIX.match(name)
    return m.group("rest") if m else name


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
        if c.name == f"{k.name}.ipynb" or _strip_lms(c.name) == f"{k.name}.ipynb" or c.name.endswith(f"_{k.name}.ipynb"):
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


def repair_metadata(raw: bytes, nb, known: KnownNotebook) -> tuple[bytes, list[str]]:
    """Make the submission's grading metadata that of the released notebook, so nbgrader grades it.

    * A cell with grading metadata that does not belong to this notebook (a copied cell, metadata edited by hand)
      becomes an ordinary cell: nbgrader would refuse the whole notebook over it.
    * Cells whose metadata was stripped (copied into a fresh notebook, some editors and hosted notebooks do that)
      get it back: matched to the released cells by cell id first, then by content (a locked cell by its exact
      source, an answer cell by its similarity to the handed-out blank).
    * An answer cell turned into Markdown is noted; nbgrader turns it back into code and runs it as written.
    The original file stays in ``inbox/``.
    """
    notes = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader")
        if meta is None:
            continue
        gid = meta.get("grade_id") if isinstance(meta, dict) else None
        if not isinstance(meta, dict) or not gid or gid not in known.grade_ids:
            del cell.metadata["nbgrader"]
            first = next((x.strip() for x in cell.source.splitlines() if x.strip()), "")[:40].replace("`", "")
            notes.append(f"A cell{f' (`{first}`)' if first else ''} carried grading metadata that does not belong "
                         "to this notebook; it was graded as an ordinary cell.")
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
class CollectReport:
    batch: str
    collected: list = field(default_factory=list)
    replaced: list = field(default_factory=list)
    unchanged: list = field(default_factory=list)
    older: list = field(default_factory=list)
    duplicates: list = field(default_factory=list)
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
        for f, why in self.duplicates:
            lines.append(f"  = {f}: {why}")
        if self.unmatched:
            lines.append("NOT collected (fix and collect again, or use --student-regex / --roster):")
            lines += [f"  ! {f}: {why}" for f, why in self.unmatched]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} other file(s): " +
                         ", ".join(f"{f} ({why})" for f, why in self.skipped[:20]) + (" ..." if len(self.skipped) > 20 else ""))
        if self.missing:
            lines.append(f"on the roster but nothing collected in this batch: {', '.join(self.missing)}")
        return "\n".join(lines)
