"""Hostile students against collect's own work: one student's file must cost collect little, whatever it holds.
Fast: no kernel, no nbgrader."""
from __future__ import annotations

import difflib
from pathlib import Path

import nbformat

from ddpm_instructor import collect as col

REPO = Path(__file__).resolve().parent.parent
A = "02_forward_closed_form"
RELEASED = REPO / "notebooks" / "release" / A / f"{A}.ipynb"


def test_stripped_metadata_with_many_long_cells_is_matched_without_quadratic_work(monkeypatch):
    """Answer cells handed in without grading metadata are matched by similarity to the blank.  A notebook of a
    few hundred cells of 5,000 characters each (1.3 MB, far under collect's 20 MB cap) made collect compare every
    cell in full with every blank: about 9 s for this one file, 90 s at the cap, for each file of the student's
    zip.  A cell too long to reach the similarity threshold need not be compared in full."""
    known = col.KnownNotebook.from_file(A, RELEASED)
    nb = nbformat.read(str(RELEASED), as_version=4)
    blank = next(s for _, t, s, m in known.cells if m.get("solution") and t == "code")
    filler = ((blank + "\n") * (5000 // (len(blank) + 1) + 1))[:5000]
    nb.cells += [nbformat.v4.new_code_cell(filler) for _ in range(150)]
    for c in nb.cells:
        c.metadata.pop("nbgrader", None)
        c.pop("id", None)
    nb.nbformat_minor = 4
    work = []
    full = difflib.SequenceMatcher.ratio

    def counted(self):
        work.append(len(self.a) * len(self.b))
        return full(self)

    monkeypatch.setattr(difflib.SequenceMatcher, "ratio", counted)
    raw = nbformat.writes(nb).encode()
    col.repair_metadata(raw, nbformat.reads(raw.decode(), as_version=4), known)
    assert sum(work) < 5_000_000, f"{len(work)} full comparisons, {sum(work):,} character pairs"


def test_stripped_metadata_with_thousands_of_short_cells_compares_no_more_cells_than_a_submission_keeps(monkeypatch):
    """The same with 2,000 cells as long as the blanks (each one passes the cheap bounds): 8 s per file of 1 MB,
    and a student's zip holds 80 of them.  A submission keeps at most ``sanitize.MAX_CELLS`` cells, so no more are
    compared with each blank."""
    from ddpm_instructor.sanitize import MAX_CELLS
    known = col.KnownNotebook.from_file(A, RELEASED)
    nb = nbformat.read(str(RELEASED), as_version=4)
    blanks = [s for _, t, s, m in known.cells if m.get("solution")]
    nb.cells += [nbformat.v4.new_code_cell(blanks[0] + f"\n# {i}") for i in range(2000)]
    for c in nb.cells:
        c.metadata.pop("nbgrader", None)
        c.pop("id", None)
    nb.nbformat_minor = 4
    work = []
    full = difflib.SequenceMatcher.ratio

    def counted(self):
        work.append(1)
        return full(self)

    monkeypatch.setattr(difflib.SequenceMatcher, "ratio", counted)
    raw = nbformat.writes(nb).encode()
    col.repair_metadata(raw, nbformat.reads(raw.decode(), as_version=4), known)
    assert len(work) <= len(blanks) * MAX_CELLS, f"{len(work)} full comparisons"


def _corrupt_member(method: int, name: str, payload: bytes) -> bytes:
    """A zip of one member ``name`` compressed with ``method``, its compressed bytes damaged."""
    import io
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as z:
        z.writestr(name, payload)
    data = bytearray(buf.getvalue())
    start = 30 + len(name)                           # after the member's local header
    for i in range(start + 8, start + 40):
        data[i] ^= 0x5A
    return bytes(data)


def test_a_damaged_lzma_zip_inside_a_students_zip_costs_only_that_student(tmp_path):
    """Python's zipfile reads LZMA members (method 14) and raises ``lzma.LZMAError`` on damaged data, an exception
    of its own (not OSError, not BadZipFile): a student's zip holding such a zip stopped collect for the export."""
    import shutil
    import zipfile

    from ddpm_instructor.coursedir import CourseDir
    root = tmp_path / "course"
    (root / "release" / A).mkdir(parents=True)
    shutil.copy(RELEASED, root / "release" / A / RELEASED.name)
    course = CourseDir(root=root, quiet=True)
    export = tmp_path / "submissions.zip"
    with zipfile.ZipFile(export, "w") as z:
        z.writestr(f"doejane_111_901_{A}.ipynb", RELEASED.read_bytes())
        z.writestr("mallory_222_902_hw.zip", _corrupt_member(zipfile.ZIP_LZMA, "inner.zip", b"PK" + bytes(5000)))
    report = col.collect(course, [export])
    assert set(course.submissions(A)) == {"canvas-111"}, report.text()
    assert any("mallory_222_902_hw.zip" in f for f, _ in report.unmatched), report.text()


def test_a_notebook_of_a_huge_number_of_tiny_cells_is_refused_before_nbformat_reads_it(tmp_path):
    """250,000 one-letter Markdown cells: 18 MB (under the 20 MB cap), 1 MB zipped; nbformat's reading and writing
    took collect 29 s and 1 GB for this one file, four such files per student.  Refused from a count of its JSON
    (here 30,000 cells, to stay fast), the other students filed."""
    import json
    import shutil
    import zipfile

    from ddpm_instructor.coursedir import CourseDir
    root = tmp_path / "course"
    (root / "release" / A).mkdir(parents=True)
    shutil.copy(RELEASED, root / "release" / A / RELEASED.name)
    course = CourseDir(root=root, quiet=True)
    nb = json.loads(RELEASED.read_text())
    nb["cells"] += [{"cell_type": "markdown", "metadata": {}, "source": "a", "id": f"c{i}"} for i in range(30_000)]
    export = tmp_path / "submissions.zip"
    with zipfile.ZipFile(export, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"doejane_111_901_{A}.ipynb", RELEASED.read_bytes())
        z.writestr(f"mallory_222_902_{A}.ipynb", json.dumps(nb))
    report = col.collect(course, [export])
    assert set(course.submissions(A)) == {"canvas-111"}, report.text()
    (why,) = [w for f, w in report.unmatched if "mallory_222_902" in f]
    assert "cells and outputs" in why, why


def test_a_named_pipe_in_a_folder_export_costs_only_its_owner(tmp_path):
    """A folder given to collect (nbgrader's ``<student>/<assignment>/`` layout, an exchange's inbound, an unpacked
    export) where one student's notebook is a named pipe: keeping the folder in ``inbox/`` first (shutil.copytree)
    raised ``shutil.Error`` and nobody was filed."""
    import os
    import shutil

    from ddpm_instructor.coursedir import CourseDir
    root = tmp_path / "course"
    (root / "release" / A).mkdir(parents=True)
    shutil.copy(RELEASED, root / "release" / A / RELEASED.name)
    course = CourseDir(root=root, quiet=True)
    export = tmp_path / "export"
    for s in ("alice", "mallory"):
        (export / s / A).mkdir(parents=True)
    shutil.copy(RELEASED, export / "alice" / A / RELEASED.name)
    os.mkfifo(export / "mallory" / A / RELEASED.name)
    report = col.collect(course, [export])
    assert set(course.submissions(A)) == {"alice"}, report.text()
    assert [s for s, _ in report.unmatched if "mallory" in s], report.text()
    assert (course.inbox / report.batch / "export" / "alice" / A / RELEASED.name).is_file()
