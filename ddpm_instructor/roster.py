"""The roster: one row per student, read by ``collect --roster`` (whose a file is) and by ``grades --format``
(which LMS row a grade goes to).  One job: read and check the CSV, and look a student up by an id.

Canvas's gradebook export (Grades > Export: ``Student, ID, SIS User ID, SIS Login ID, Section``, then one column per
assignment) is read as it is: each student's id is ``canvas-<ID>`` (what collect files a Canvas user under without a
roster), ``ID`` is the ``lms_id`` (a Canvas user id: it never matches a Moodle participant id), ``Student`` the
name; its "Points Possible" row (no ID) is skipped.

Columns: ``id`` (or ``student_id``): the course's student id, used as is (letters, digits, ``.``, ``_``, ``-``); any
of ``lms_id`` (the Canvas user id, or the Moodle participant id: Moodle numbers participants per assignment, so
several ids may be given separated by ``;``), ``lms`` (``canvas`` or ``moodle``: whose ids the row's ``lms_id``
are; left out, they are the ids of whichever LMS an export is), ``login``, ``email``, ``sis_id``, ``idnumber``
(ids), ``name`` (for display and for telling a rename), ``section``.  An LMS id is looked up with its LMS
(``by_lms_id``): Canvas user 48213 is never Moodle participant 48213.  Ids are matched before names, a name only where an entry has no id
at all (``--student-regex``), and a name that two rows share matches nobody.  Two rows never share an id: a
roster that would merge two students is refused with the rows named.
"""
from __future__ import annotations

import csv
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from .coursedir import student_id_problem
from .errors import InstructorError

ID_COLUMNS = ("login", "email", "sis_id", "idnumber")      # other ids an LMS or a folder name may carry


@dataclass(frozen=True)
class RosterEntry:
    id: str                          # the course's student id (submitted/<id>/, the gradebook)
    name: str = ""
    lms_ids: tuple = ()              # Canvas user id / Moodle participant id(s)
    lms: str = ""                    # "Canvas" or "Moodle": whose ids ``lms_ids`` are ("": not said)
    other_ids: tuple = ()            # login, email, sis_id, idnumber (as written)
    row: dict = field(default_factory=dict, compare=False, hash=False)   # the CSV row, ``id`` as used


@dataclass
class Roster:
    path: str
    entries: list

    def __post_init__(self):
        self._lms = {i: e for e in self.entries for i in e.lms_ids}
        self._ids = {}
        for e in self.entries:
            for i in (e.id, *e.other_ids):
                self._ids.setdefault(i.casefold(), e)
        self._names: dict[str, list] = {}
        for e in self.entries:
            if e.name:
                self._names.setdefault(name_key(e.name), []).append(e)

    def by_lms_id(self, lms_id: str, lms: str | None = None) -> RosterEntry | None:
        """The entry with that id in ``lms`` ("Canvas", "Moodle"; None: in any): a row whose ``lms`` is another
        LMS's is not it."""
        e = self._lms.get(lms_id)
        return e if e is not None and (lms is None or e.lms in ("", lms)) else None

    def by_id(self, key: str) -> RosterEntry | None:
        """The entry whose ``id``, ``login``, ``email``, ``sis_id`` or ``idnumber`` is ``key`` (case-insensitive)."""
        return self._ids.get(key.strip().casefold())

    def by_name(self, name: str) -> list:
        return list(self._names.get(name_key(name), []))

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.entries]


def name_key(name: str) -> str:
    """A display name compared as written: the same letters (accents kept), case and spacing aside."""
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


LMS_NAMES = {"": "", "canvas": "Canvas", "moodle": "Moodle"}      # the ``lms`` column, as collect's owners name it
CANVAS_GRADEBOOK = {"ID": "lms_id", "Student": "name", "SIS User ID": "sis_id", "SIS Login ID": "login",
                    "Section": "section"}


def canvas_gradebook_row(row: dict) -> dict:
    """A row of Canvas's gradebook export as a roster row: id ``canvas-<ID>``, the ID as ``lms_id``."""
    out = {ours: row.get(theirs, "") for theirs, ours in CANVAS_GRADEBOOK.items()}
    return dict(out, id=f"canvas-{row['ID']}", lms="canvas")


def load_roster(path) -> Roster:
    """Read and check a roster CSV; an ``InstructorError`` names each bad row and how to fix it."""
    if not path or not Path(path).is_file():
        raise InstructorError(f"--roster {path}: no such file. Give a CSV with an id column and the LMS's ids "
                              "(lms_id, login, email, sis_id) for each student.")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items() if k} for r in reader]
            header = [h.strip() for h in reader.fieldnames or []]
    except (UnicodeDecodeError, csv.Error) as e:
        raise InstructorError(f"--roster {path}: not a UTF-8 CSV file ({e}); save it as CSV UTF-8.")
    if {"Student", "ID"} <= set(header) and "id" not in header and "student_id" not in header:
        rows = [canvas_gradebook_row(r) for r in rows if r.get("ID")]
        header = ["id", "lms_id", "name", "lms"]
    if "id" not in header and "student_id" not in header:
        raise InstructorError(f"--roster {path}: no 'id' column (its columns: {', '.join(header) or 'none'}); the "
                              "first row must name the columns: id, lms_id, name, email, login, ...")
    entries, problems, seen_id, seen_lms = [], [], {}, {}
    for n, r in enumerate(rows, start=2):
        sid = r.get("id") or r.get("student_id") or ""
        if not sid:
            if any(r.values()):
                problems.append(f"row {n}: no id")
            continue
        why = student_id_problem(sid)
        if why:
            problems.append(f"row {n}: id {sid!r} {why}")
            continue
        if sid.casefold() in seen_id:
            problems.append(f"row {n}: id {sid!r} is also on row {seen_id[sid.casefold()]}")
            continue
        others = tuple(r[c] for c in ID_COLUMNS if r.get(c))
        for x in {sid.casefold(), *(o.casefold() for o in others)}:
            if seen_id.get(x, n) != n:
                problems.append(f"row {n}: {x!r} is also an id of row {seen_id[x]} (two students would become one)")
            seen_id.setdefault(x, n)
        which = LMS_NAMES.get(r.get("lms", "").casefold())
        if which is None:
            problems.append(f"row {n}: lms {r['lms']!r} is not canvas or moodle")
            continue
        lms = tuple(x.strip() for x in r.get("lms_id", "").split(";") if x.strip())
        for x in lms:
            if x in seen_lms:
                problems.append(f"row {n}: lms_id {x} is also on row {seen_lms[x]} (two students would become one)")
            seen_lms.setdefault(x, n)
        entries.append(RosterEntry(sid, r.get("name", ""), lms, which, others, dict(r, id=sid)))
    if problems:
        raise InstructorError(f"--roster {path}: " + "; ".join(problems[:20]) + (" ..." if len(problems) > 20 else "")
                              + ". Fix these rows (one row per student, every id on one row only) and run again.")
    return Roster(str(path), entries)
