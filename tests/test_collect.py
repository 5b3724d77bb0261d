"""collect: whose a notebook is comes from the export's structure only (Canvas file names, Moodle folders, the
nbgrader ``<student>/`` level), never from paths inside what a student handed in; a second version is reported
with both sources and kept; grading metadata is repaired.

Fast: no kernel, no nbgrader, no release step (the committed student versions are copied into a course
directory's ``release/``).  About 2-4 s on 2 cores.
"""
from __future__ import annotations

import copy
import csv
import datetime as dt
import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import nbformat
import pytest

from ddpm_instructor import collect as col
from ddpm_instructor import records
from ddpm_instructor.coursedir import CourseDir
from ddpm_instructor.errors import InstructorError

REPO = Path(__file__).resolve().parent.parent
A, B = "02_forward_closed_form", "04_training"
RELEASED = REPO / "notebooks" / "release"
UTC = dt.timezone.utc

pytestmark = pytest.mark.skipif(not (RELEASED / A / f"{A}.ipynb").exists(), reason="notebook 2 not released yet")


@pytest.fixture
def course(tmp_path):
    root = tmp_path / "course"
    for a in (A, B):
        (root / "release" / a).mkdir(parents=True)
        for p in (RELEASED / a).glob("*.ipynb"):
            shutil.copy(p, root / "release" / a / p.name)
    return CourseDir(root=root, quiet=True)


def released(a=A):
    return nbformat.read(str(next((RELEASED / a).glob("*.ipynb"))), as_version=4)


def version(tag: str) -> bytes:
    """The handed-out notebook 2, told apart by ``tag`` (in its metadata): distinct bytes per version."""
    nb = released()
    nb.metadata["version_tag"] = tag
    return nbformat.writes(nb).encode()


BLANK = nbformat.writes(released()).encode()


def zip_bytes(entries: dict) -> bytes:
    """{name: (bytes, (y, m, d, H, M))} -> a zip with those entry dates."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, (data, when) in entries.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(*when, 0)), data)
    return buf.getvalue()


def nbgrader_entry(root: Path, student: str, files: dict, when: dt.datetime) -> Path:
    d = root / student / A
    d.mkdir(parents=True)
    for name, data in files.items():
        (d / name).write_bytes(data)
    (d / "timestamp.txt").write_text(when.strftime("%Y-%m-%d %H:%M:%S.%f") + " UTC")
    return d


def filed(course, student, a=A) -> bytes:
    return next((course.submitted / student / a).glob("*.ipynb")).read_bytes()


def students(course, a=A) -> set:
    return set(course.submissions(a))


# ---------------------------------------------------------------- identification: the export's names only
@pytest.mark.parametrize("entry, is_dir, name, lms_id, sid, by, own", [
    ("doejohn_12345_678_02_forward_closed_form.ipynb", False, "doejohn", "12345", "canvas-12345", "Canvas file name",
     "02_forward_closed_form.ipynb"),
    ("doejohn_LATE_12345_678_homework 2 FINAL (1).ipynb", False, "doejohn", "12345", "canvas-12345",
     "Canvas file name", "homework 2 FINAL (1).ipynb"),
    ("doejohn_12345_679_02_forward_closed_form-1.ipynb", False, "doejohn", "12345", "canvas-12345",
     "Canvas file name", "02_forward_closed_form-1.ipynb"),              # handed in again under the same name
    ("anon_Xy12z_678_hw.ipynb", False, "anon_Xy12z", "anon_Xy12z", "canvas-anon_Xy12z", "Canvas file name",
     "hw.ipynb"),                                                        # anonymous grading
    ("LATE_anon_Xy12z_678_hw.zip", False, "anon_Xy12z", "anon_Xy12z", "canvas-anon_Xy12z", "Canvas file name",
     "hw.zip"),
    ("Jane Doe_4711_assignsubmission_file_", True, "Jane Doe", "4711", "moodle-4711", "Moodle folder", None),
    ("Jane Doe_4711_assignsubmission_file_02_forward_closed_form.ipynb", False, "Jane Doe", "4711", "moodle-4711",
     "Moodle file name", "02_forward_closed_form.ipynb"),
    ("Participant_4711_assignsubmission_file_", True, "Participant", "4711", "moodle-4711", "Moodle folder", None),
    ("s01-alice", True, "s01-alice", "", "s01-alice", "folder", None),   # nbgrader: submitted/<student>/
])
def test_owner_and_student_id_come_from_the_export_entry_and_the_lms_id(entry, is_dir, name, lms_id, sid, by, own):
    owner, own_name = col.owner_of(entry, is_dir)
    assert (owner.name, owner.lms_id, owner.by) == (name, lms_id, by)
    assert col.student_id(owner, {A, B}, None) == (sid, "")
    if own is not None:
        assert own_name == own


@pytest.mark.parametrize("entry", ["02_forward_closed_form.ipynb", "victim_02_forward_closed_form.ipynb",
                                   "victim.ipynb", "submissions.zip", "doejohn_12345_hw.ipynb"])
def test_a_file_whose_name_names_nobody_has_no_owner(entry):
    assert col.owner_of(entry, False) == (None, entry)


def test_canvas_resubmission_number_is_not_part_of_the_notebook_name():
    assert col._base_name("02_forward_closed_form-2.ipynb") == "02_forward_closed_form.ipynb"
    assert col._base_name("homework-final.ipynb") == "homework-final.ipynb"


def test_a_resubmitted_canvas_file_without_cell_ids_is_found_by_its_name(course, tmp_path):
    bare = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    bare.nbformat_minor = 4                                   # no cell ids, no grading metadata
    for c in bare.cells:
        c.pop("id", None)
    export = tmp_path / "canvas.zip"
    export.write_bytes(zip_bytes({f"doejohn_12345_679_{A}-1.ipynb": (nbformat.writes(bare).encode(), (2026, 11, 20, 12, 0))}))
    report = col.collect(course, [export])
    assert report.collected == [("canvas-12345", A, [f"canvas.zip:doejohn_12345_679_{A}-1.ipynb"], [])], report.text()


def test_nbgrader_layout_files_each_student_with_its_timestamp(course, tmp_path):
    root = tmp_path / "submitted"
    nbgrader_entry(root, "alice", {f"{A}.ipynb": version("alice")}, dt.datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    nbgrader_entry(root, "bob", {"my copy.ipynb": version("bob")}, dt.datetime(2026, 11, 20, 13, 0, tzinfo=UTC))
    report = col.collect(course, [root])
    assert students(course) == {"alice", "bob"} and not report.unmatched and not report.duplicates
    assert filed(course, "alice") == version("alice") and filed(course, "bob") == version("bob")
    assert "2026-11-20 13:00:00" in (course.submitted / "bob" / A / "timestamp.txt").read_text()


def test_canvas_export_names_late_and_roster_by_lms_user_id(course, tmp_path):
    export = tmp_path / "canvas.zip"
    export.write_bytes(zip_bytes({
        f"doejohn_12345_678_{A}.ipynb": (version("doe"), (2026, 11, 20, 12, 0)),
        f"roesmary_LATE_23456_789_{A}.ipynb": (version("roe"), (2026, 11, 22, 9, 0)),
    }))
    roster = tmp_path / "roster.csv"
    roster.write_text("id,lms_id,name\ns-doe,12345,John Doe\ns-roe,23456,Mary Roe\ns-absent,34567,Al Sent\n")
    report = col.collect(course, [export], roster=roster)
    assert students(course) == {"s-doe", "s-roe"} and not report.unmatched
    assert filed(course, "s-roe") == version("roe") and report.missing == ["s-absent"]
    assert "2026-11-22 09:00:00" in (course.submitted / "s-roe" / A / "timestamp.txt").read_text()


def test_moodle_export_in_folders_and_flat(course, tmp_path):
    export = tmp_path / "moodle.zip"
    export.write_bytes(zip_bytes({
        f"Jane Doe_4711_assignsubmission_file_/{A}.ipynb": (version("jane"), (2026, 11, 20, 12, 0)),
        f"Max Mustermann_4712_assignsubmission_file_sub/dir/{A}.ipynb": (version("max"), (2026, 11, 20, 12, 1)),
        f"Ann Old_4713_assignsubmission_file_{A}.ipynb": (version("ann"), (2026, 11, 20, 12, 2)),   # Moodle < 3.1
        "Ann Old_4713_assignsubmission_onlinetext_onlinetext.html": (b"<p>hi</p>", (2026, 11, 20, 12, 2)),
    }))
    report = col.collect(course, [export])
    assert students(course) == {"moodle-4711", "moodle-4712", "moodle-4713"}, report.text()
    assert filed(course, "moodle-4712") == version("max")
    assert any("onlinetext.html" in f for f, _ in report.skipped)


def test_a_zip_inside_an_lms_zip_is_an_export_when_its_name_names_nobody(course, tmp_path):
    inner = zip_bytes({f"doejohn_12345_678_{A}.ipynb": (version("doe"), (2026, 11, 20, 12, 0))})
    moodle = zip_bytes({f"Jane Doe_4711_assignsubmission_file_/{A}.ipynb": (version("jane"), (2026, 11, 20, 12, 0))})
    outer = tmp_path / "downloads.zip"
    outer.write_bytes(zip_bytes({"cs101-hw2 submissions.zip": (inner, (2026, 11, 21, 8, 0))}))
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "moodle-download.zip").write_bytes(moodle)
    report = col.collect(course, [outer, folder])
    assert students(course) == {"canvas-12345", "moodle-4711"} and not report.unmatched, report.text()


def test_a_zip_inside_a_students_entry_is_that_students_whatever_it_holds(course, tmp_path):
    """The zip of a student who packed two classmates' folders: everything in it is filed under its owner."""
    root = tmp_path / "submitted"
    packed = zip_bytes({f"bob/{A}/{A}.ipynb": (version("packed"), (2026, 11, 20, 12, 0)),
                        f"carol/{A}/timestamp.txt": (b"2030-01-01 00:00:00 UTC", (2026, 11, 20, 12, 0))})
    nbgrader_entry(root, "alice", {"work.zip": packed}, dt.datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    report = col.collect(course, [root])
    assert students(course) == {"alice"} and filed(course, "alice") == version("packed"), report.text()
    assert "2026-11-20 12:00:00" in (course.submitted / "alice" / A / "timestamp.txt").read_text()   # not 2030


def test_student_regex_sees_only_top_level_names(course, tmp_path):
    root = tmp_path / "in"
    (root / "alice-hw2").mkdir(parents=True)
    (root / "alice-hw2" / "x.zip").write_bytes(zip_bytes({f"bob-hw2/{A}.ipynb": (version("a"), (2026, 1, 1, 0, 0))}))
    (root / f"nobody-here-{A}.ipynb").write_bytes(version("n"))
    report = col.collect(course, [root], student_regex=r"^(?P<student>[a-z]+)-hw2$")
    assert students(course) == {"alice"}
    assert [why for f, why in report.unmatched] == [f"--student-regex did not match 'nobody-here-{A}.ipynb'"]
    with pytest.raises(InstructorError, match="no \\(\\?P<student>"):
        col.collect(course, [root], student_regex=r"^([a-z]+)-hw2$")


def test_a_folder_or_file_that_names_no_student_is_not_filed(course, tmp_path):
    one_student = tmp_path / "alice"                    # given the student's folder instead of the class's
    (one_student / A).mkdir(parents=True)
    (one_student / A / f"{A}.ipynb").write_bytes(version("a"))
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / f"{A}.ipynb").write_bytes(version("b"))
    report = col.collect(course, [one_student, loose])
    assert students(course) == set() and len(report.unmatched) == 2, report.text()
    why = dict(report.unmatched)
    assert "is an assignment folder, not a student's" in why[f"alice/{A}/{A}.ipynb"]
    assert why[f"loose/{A}.ipynb"] == col.NO_OWNER


# ---------------------------------------------------------------- the attack: a zip holding another student's path
def test_a_zip_holding_the_victims_path_never_reaches_the_victim_nbgrader_layout(course, tmp_path):
    first = tmp_path / "first"                          # the victim's submission, already collected
    nbgrader_entry(first, "victim", {f"{A}.ipynb": version("victim")}, dt.datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    col.collect(course, [first])
    victim_nb = course.submitted / "victim" / A / f"{A}.ipynb"
    before = (victim_nb.read_bytes(), (victim_nb.parent / "timestamp.txt").read_bytes())
    later = tmp_path / "later"                          # the attacker's zip, newer than everything
    attack = zip_bytes({f"victim/{A}/{A}.ipynb": (BLANK, (2030, 1, 1, 0, 0)),
                        f"victim/{A}/timestamp.txt": (b"2030-01-01 00:00:00 UTC", (2030, 1, 1, 0, 0))})
    nbgrader_entry(later, "mallory", {"submission.zip": attack}, dt.datetime(2026, 11, 21, 9, 0, tzinfo=UTC))
    nbgrader_entry(later, "victim", {f"{A}.ipynb": version("victim")}, dt.datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    report = col.collect(course, [later])
    assert (victim_nb.read_bytes(), (victim_nb.parent / "timestamp.txt").read_bytes()) == before
    assert filed(course, "mallory") == BLANK
    assert not (course.archive / "victim").exists() and report.unchanged == [f"victim/{A}"], report.text()
    assert "victim" not in {s for s, *_ in report.collected}


def test_a_zip_holding_the_victims_path_never_reaches_the_victim_canvas(course, tmp_path):
    attack = zip_bytes({f"victim/{A}/{A}.ipynb": (BLANK, (2030, 1, 1, 0, 0))})
    export = tmp_path / "canvas.zip"
    export.write_bytes(zip_bytes({
        f"victim_111_444_{A}.ipynb": (version("victim"), (2026, 11, 20, 12, 0)),
        "mallory_222_555_submission.zip": (attack, (2026, 11, 20, 12, 5)),
    }))
    report = col.collect(course, [export])
    assert filed(course, "canvas-111") == version("victim") and filed(course, "canvas-222") == BLANK, report.text()
    assert students(course) == {"canvas-111", "canvas-222"} and not report.duplicates


# ---------------------------------------------------------------- two versions: both reported, the other one kept
def test_second_version_is_reported_with_both_sources_and_kept(course, tmp_path):
    export = tmp_path / "canvas.zip"
    export.write_bytes(zip_bytes({
        f"doejohn_12345_678_{A}.ipynb": (version("first"), (2026, 11, 20, 12, 0)),
        f"doejohn_12345_679_{A}-1.ipynb": (version("second"), (2026, 11, 21, 12, 0)),   # handed in again
    }))
    report = col.collect(course, [export])
    assert filed(course, "canvas-12345") == version("second")
    (d,) = report.duplicates
    assert (d.assignment, d.student, d.notebook) == (A, "canvas-12345", A)
    assert d.kept == f"canvas.zip:doejohn_12345_679_{A}-1.ipynb" and d.other == f"canvas.zip:doejohn_12345_678_{A}.ipynb"
    assert "2026-11-21 12:00:00" in d.why and "2026-11-20 12:00:00" in d.why and "is newer than" in d.why
    assert (course.root / d.kept_at).read_bytes() == version("first")
    assert d.kept_at.startswith(f"archive/canvas-12345/{A}/not-kept-")
    text = report.text()
    assert d.kept in text and d.other in text and d.kept_at in text
    notes = records.load_collect(course.notes, A, "canvas-12345").notes()
    assert any("2 versions of this notebook were handed in" in n for n in notes), notes


def test_same_export_time_the_files_own_date_decides(course, tmp_path):
    root = tmp_path / "submitted"
    inside = zip_bytes({f"{A}.ipynb": (version("zipped"), (2026, 11, 20, 11, 0))})
    d = nbgrader_entry(root, "carol", {f"{A}.ipynb": version("loose"), "v2.zip": inside},
                       dt.datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    os.utime(d / f"{A}.ipynb", (dt.datetime(2026, 11, 19, tzinfo=UTC).timestamp(),) * 2)
    report = col.collect(course, [root])
    assert filed(course, "carol") == version("zipped")
    (dup,) = report.duplicates
    assert dup.other == f"submitted/carol/{A}/{A}.ipynb" and "the file's own date" in dup.why


def test_dry_run_reports_duplicates_and_writes_nothing(course, tmp_path):
    export = tmp_path / "canvas.zip"
    export.write_bytes(zip_bytes({f"doejohn_1_2_{A}.ipynb": (version("a"), (2026, 11, 20, 12, 0)),
                                  f"doejohn_1_3_{A}-1.ipynb": (version("b"), (2026, 11, 20, 12, 1))}))
    report = col.collect(course, [export], dry_run=True)
    assert [s for s, *_ in report.collected] == ["canvas-1"] and len(report.duplicates) == 1
    assert report.duplicates[0].kept_at == ""
    assert not course.submitted.exists() and not course.archive.exists() and not course.inbox.exists()


# ---------------------------------------------------------------- metadata repair
def _repair(nb):
    raw = nbformat.writes(nb).encode()
    known = col.KnownNotebook.from_file(A, next((RELEASED / A).glob("*.ipynb")))
    out, notes = col.repair_metadata(raw, nbformat.reads(raw.decode(), as_version=4), known)
    return nbformat.reads(out.decode(), as_version=4), notes, known


def _meta(nb):
    return {c.get("id"): c.metadata.get("nbgrader") for c in nb.cells}


def test_nothing_to_repair_keeps_the_bytes():
    raw = version("fine")
    known = col.KnownNotebook.from_file(A, next((RELEASED / A).glob("*.ipynb")))
    assert col.repair_metadata(raw, nbformat.reads(raw.decode(), as_version=4), known) == (raw, [])


def test_stripped_metadata_is_restored_by_cell_id():
    nb = released()
    want = {c["id"]: dict(c.metadata["nbgrader"]) for c in nb.cells if "nbgrader" in c.metadata}
    for c in nb.cells:
        c.metadata.pop("nbgrader", None)
        if c["id"] in want:
            c.source = f"# rewritten beyond recognition: {c['id']}\nx = 1"   # content matching cannot find it
    out, notes, _ = _repair(nb)
    assert {i: m for i, m in _meta(out).items() if m} == want
    assert len(notes) == 1 and f"of {len(want)} cell(s) was missing" in notes[0]
    assert all(f"`{g}` by its cell id" in notes[0] for g in want)


def test_changed_grade_id_and_a_copied_graded_cell_are_put_right():
    nb = released()
    i = next(i for i, c in enumerate(nb.cells) if c.get("id") == "q_sample")
    nb.cells[i].metadata["nbgrader"]["grade_id"] = "q_sample_mine"             # renamed by hand
    test = next(c for c in nb.cells if c.get("id") == "test_q_sample_return")
    copy_ = nbformat.v4.new_code_cell(test.source)                             # a copy keeps the metadata
    copy_.metadata["nbgrader"] = dict(test.metadata["nbgrader"], points=100)
    nb.cells.insert(1, copy_)
    out, notes, known = _repair(nb)
    meta = _meta(out)
    assert meta["q_sample"]["grade_id"] == "q_sample" and meta["q_sample"]["solution"] is True
    assert meta[copy_["id"]] is None and meta["test_q_sample_return"]["points"] == 3
    claims = [c for c in out.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_q_sample_return"]
    assert len(claims) == 1
    assert any("does not belong to this notebook" in n for n in notes)
    assert any("a second claim on `test_q_sample_return`" in n for n in notes)
    assert any("`q_sample` by its cell id" in n for n in notes)


@pytest.mark.parametrize("strip", [False, True])
def test_answer_cell_handed_in_as_markdown_is_noted(strip):
    nb = released()
    i = next(i for i, c in enumerate(nb.cells) if c.get("id") == "q_sample")
    md = nbformat.v4.new_markdown_cell(nb.cells[i].source)
    md["id"] = "q_sample"
    if not strip:
        md.metadata = copy.deepcopy(nb.cells[i].metadata)
    nb.cells[i] = md
    out, notes, _ = _repair(nb)
    assert _meta(out)["q_sample"]["grade_id"] == "q_sample"
    assert any("`q_sample` was handed in as a Markdown cell" in n for n in notes), notes
    assert any("`q_sample` by its cell id" in n for n in notes) == strip


def test_collect_files_the_repaired_notebook_and_keeps_the_original(course, tmp_path):
    nb = released()
    for c in nb.cells:
        c.metadata.pop("nbgrader", None)
    raw = nbformat.writes(nb).encode()
    root = tmp_path / "submitted"
    nbgrader_entry(root, "dana", {f"{A}.ipynb": raw}, dt.datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    report = col.collect(course, [root])
    out = nbformat.reads(filed(course, "dana").decode(), as_version=4)
    assert _meta(out)["test_q_sample_return"]["points"] == 3
    (kept,) = list((course.inbox / report.batch).rglob(f"{A}.ipynb"))
    assert kept.read_bytes() == raw
