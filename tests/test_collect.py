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
    """The handed-out notebook 2, told apart by ``tag`` (in its answer cell): distinct bytes per version."""
    nb = released()
    answer = next(c for c in nb.cells if c.get("id") == "q_sample")
    answer.source += f"\n# version {tag}"
    return nbformat.writes(nb).encode()


BLANK = nbformat.writes(released()).encode()


def zip_bytes(entries: dict) -> bytes:
    """{name: (bytes, (y, m, d, H, M))} -> a zip with those entry dates."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, (data, when) in entries.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(*when, 0)), data)
    return buf.getvalue()


def nbgrader_entry(root: Path, student: str, files: dict, when: dt.datetime, saved: dt.datetime | None = None) -> Path:
    """nbgrader's submitted/<student>/<assignment>/: the files (last saved at ``saved``, a minute before ``when`` by
    default: copies keep that date) and the timestamp.txt of the submission (``when``)."""
    d = root / student / A
    d.mkdir(parents=True)
    saved = saved or when - dt.timedelta(minutes=1)
    for name, data in files.items():
        (d / name).write_bytes(data)
        os.utime(d / name, (saved.timestamp(),) * 2)
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
    ("Jane Doe_4711_assignsubmission_file", True, "Jane Doe", "4711", "moodle-4711", "Moodle folder", None),  # 4.x
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


def test_moodle_4_folders_have_no_trailing_underscore(course, tmp_path):
    """Moodle >= 4.1 (mod/assign/classes/downloader.php) names the folder <Full Name>_<id>_assignsubmission_file
    and puts the student's files under it with their own paths."""
    export = tmp_path / "moodle.zip"
    export.write_bytes(zip_bytes({
        f"Jane Doe_4711_assignsubmission_file/{A}.ipynb": (version("jane"), (2026, 11, 20, 12, 0)),
        f"Participant_4712_assignsubmission_file/work/{A}.ipynb": (version("blind"), (2026, 11, 20, 12, 1)),
        "Jane Doe_4711_assignsubmission_onlinetext/onlinetext.html": (b"<p>hi</p>", (2026, 11, 20, 12, 0)),
    }))
    report = col.collect(course, [export])
    assert students(course) == {"moodle-4711", "moodle-4712"} and not report.unmatched, report.text()
    assert filed(course, "moodle-4712") == version("blind")


@pytest.mark.parametrize("entries, lms, filed_as", [
    ({f"doejohn_12345_678_{A}.ipynb": "doe", f"Jane Doe_4711_assignsubmission_file_/{A}.ipynb": "jane"},
     "canvas", {"canvas-12345": "doe"}),                                 # Canvas's files beside a Moodle folder
    ({f"alice/{A}/{A}.ipynb": "alice", f"Participant_4711_assignsubmission_file/{A}.ipynb": "p"},
     "nbgrader", {"alice": "alice", "Participant_4711_assignsubmission_file": "p"}),   # folders, one Moodle-named
    ({f"bob/{A}/{A}.ipynb": "bob", f"doejohn_12345_678_{A}.ipynb": "doe"}, "nbgrader", {"bob": "bob"}),
])
def test_an_export_that_mixes_layouts_is_not_read_until_lms_names_one(course, tmp_path, entries, lms, filed_as):
    export = tmp_path / "mixed.zip"
    export.write_bytes(zip_bytes({k: (version(v), (2026, 11, 20, 12, 0)) for k, v in entries.items()}))
    report = col.collect(course, [export])
    assert students(course) == set(), report.text()
    assert len(report.unmatched) == len(entries) and all(w.startswith(col.UNDECIDED) and "--lms" in w
                                                         for _, w in report.unmatched), report.text()
    report = col.collect(course, [export], lms=lms)
    assert {s: filed(course, s) for s in students(course)} == {s: version(v) for s, v in filed_as.items()}, \
        report.text()
    others = [w for _, w in report.unmatched]
    assert len(others) == len(entries) - len(filed_as) and all(f"with --lms {lms}:" in w for w in others), others
    with pytest.raises(InstructorError, match="--lms 'blackboard': use canvas, moodle, nbgrader"):
        col.collect(course, [export], lms="blackboard")


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


# ---------------------------------------------------------------- identity: the LMS's id, never a name
def test_canvas_students_with_the_same_name_and_different_user_ids_stay_two_students(course, tmp_path):
    """Canvas writes the sortable name without spaces: two John Does are both ``doejohn``; their user ids differ."""
    export = tmp_path / "submissions.zip"
    export.write_bytes(zip_bytes({
        f"doejohn_48213_9921034_{A}.ipynb": (version("john-1"), (2026, 11, 20, 12, 0)),
        f"doejohn_50977_9921511_{A}.ipynb": (version("john-2"), (2026, 11, 20, 13, 0)),
    }))
    report = col.collect(course, [export])
    assert students(course) == {"canvas-48213", "canvas-50977"}, report.text()
    assert filed(course, "canvas-48213") == version("john-1") and filed(course, "canvas-50977") == version("john-2")
    assert not report.duplicates and not course.archive.exists()
    assert records.load_collect(course.notes, A, "canvas-48213").identity == "Canvas user 48213"


def test_moodle_names_that_differ_only_in_accents_stay_two_students(course, tmp_path):
    export = tmp_path / "moodle.zip"
    export.write_bytes(zip_bytes({
        f"Zoë Müller_1843207_assignsubmission_file_/{A}.ipynb": (version("zoe-1"), (2026, 11, 20, 12, 0)),
        f"Zoé Mûller_1843215_assignsubmission_file_/{A}.ipynb": (version("zoe-2"), (2026, 11, 20, 13, 0)),
    }))
    report = col.collect(course, [export])
    assert students(course) == {"moodle-1843207", "moodle-1843215"}, report.text()
    assert filed(course, "moodle-1843207") == version("zoe-1") and filed(course, "moodle-1843215") == version("zoe-2")
    assert not report.duplicates and not course.archive.exists()
    assert records.load_collect(course.notes, A, "moodle-1843207").name == "Zoë Müller"


def test_a_renamed_student_is_filed_by_the_lms_id_not_by_the_name_and_reported(course, tmp_path):
    """Zoë renamed herself "Mary Roe" in Moodle; the real Mary Roe handed in too.  The roster has both."""
    roster = tmp_path / "roster.csv"
    roster.write_text("id,lms_id,name,email\ns-zoe,1843207,Zoë Müller,zm@uni.example\n"
                      "s-mary,1843215,Mary Roe,mr@uni.example\n", encoding="utf-8")
    export = tmp_path / "moodle.zip"
    export.write_bytes(zip_bytes({
        f"Mary Roe_1843207_assignsubmission_file_/{A}.ipynb": (version("zoe"), (2026, 11, 20, 14, 0)),
        f"Mary Roe_1843215_assignsubmission_file_/{A}.ipynb": (version("mary"), (2026, 11, 20, 12, 0)),
    }))
    report = col.collect(course, [export], roster=roster)
    assert filed(course, "s-zoe") == version("zoe") and filed(course, "s-mary") == version("mary"), report.text()
    assert not report.duplicates and not course.archive.exists() and not report.unmatched
    (r,) = report.renamed
    assert (r.student, r.identity, r.roster_name, r.export_name) == ("s-zoe", "Moodle participant 1843207",
                                                                     "Zoë Müller", "Mary Roe")
    assert "Moodle participant 1843207 is 'Zoë Müller' on the roster and 'Mary Roe' in the export" in report.text()


def test_a_canvas_sortable_name_is_the_rosters_name_and_another_name_is_a_rename(tmp_path):
    from ddpm_instructor.roster import load_roster
    roster = tmp_path / "roster.csv"
    roster.write_text("id,lms_id,name\ns-doe,48213,John Doe\ns-ann,48214,Mary Ann Roe\n")
    r = load_roster(roster)
    assert col._renamed(col.Owner("doejohn", "Canvas", "48213"), r, "s-doe") is None      # "Doe, John"
    assert col._renamed(col.Owner("roemaryann", "Canvas", "48214"), r, "s-ann") is None
    assert col._renamed(col.Owner("roemary", "Canvas", "48213"), r, "s-doe") == col.Renamed(
        "s-doe", "Canvas user 48213", "John Doe", "roemary")


def test_an_lms_id_not_on_the_roster_is_not_filed_under_a_name_match(course, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("id,lms_id,name\ns-doe,48213,John Doe\n")
    export = tmp_path / "submissions.zip"
    export.write_bytes(zip_bytes({f"doejohn_50977_9921511_{A}.ipynb": (version("other"), (2026, 11, 20, 12, 0))}))
    report = col.collect(course, [export], roster=roster)
    assert students(course) == set()
    assert [why for _, why in report.unmatched] == ["Canvas user 50977 ('doejohn') is not on the roster: add 50977 "
                                                   "as the lms_id of their row"]


def test_two_lms_ids_that_would_be_one_student_are_a_collision_and_neither_is_filed(course, tmp_path):
    """Moodle numbers participants per assignment, so a roster row may list several ids; two of them in the same
    assignment are two people (or a roster mistake): neither is filed, nothing is archived as the other."""
    roster = tmp_path / "roster.csv"
    roster.write_text("id,lms_id,name\ns-zoe,1843207;1843215,Zoë Müller\n", encoding="utf-8")
    export = tmp_path / "moodle.zip"
    export.write_bytes(zip_bytes({
        f"Zoë Müller_1843207_assignsubmission_file_/{A}.ipynb": (version("a"), (2026, 11, 20, 12, 0)),
        f"Zoé Mûller_1843215_assignsubmission_file_/{A}.ipynb": (version("b"), (2026, 11, 20, 13, 0)),
    }))
    report = col.collect(course, [export], roster=roster)
    assert students(course) == set() and not course.archive.exists() and not report.duplicates
    (c,) = report.collisions
    assert c.students == ["s-zoe"] and c.identities == ["Moodle participant 1843207", "Moodle participant 1843215"]
    assert "COLLISION" in report.text() and len(report.unmatched) == 2


def test_a_later_batch_from_another_lms_id_never_replaces_the_earlier_students_submission(course, tmp_path):
    """The roster's row for s-doe was given the wrong Canvas user id in the second batch: Mary's newer notebook
    must not move John's to archive/ and be graded as his."""
    first, second = tmp_path / "roster-1.csv", tmp_path / "roster-2.csv"
    first.write_text("id,lms_id,name\ns-doe,48213,John Doe\n")
    second.write_text("id,lms_id,name\ns-doe,50977,John Doe\n")
    (tmp_path / "1").mkdir(), (tmp_path / "2").mkdir()
    (tmp_path / "1" / "submissions.zip").write_bytes(zip_bytes({
        f"doejohn_48213_9921034_{A}.ipynb": (version("john"), (2026, 11, 20, 12, 0))}))
    (tmp_path / "2" / "submissions.zip").write_bytes(zip_bytes({
        f"roemary_50977_9921511_{A}.ipynb": (version("mary"), (2026, 11, 22, 12, 0))}))
    col.collect(course, [tmp_path / "1" / "submissions.zip"], roster=first)
    report = col.collect(course, [tmp_path / "2" / "submissions.zip"], roster=second)
    assert filed(course, "s-doe") == version("john") and not course.archive.exists(), report.text()
    (c,) = report.collisions
    assert c.identities[0].startswith("Canvas user 48213 (collected earlier, batch ")
    assert c.identities[1:] == ["Canvas user 50977"] and c.students == ["s-doe"]
    assert not report.collected and not report.replaced


def test_a_folder_name_is_the_student_id_as_it_is_and_ids_differing_in_case_collide(course, tmp_path):
    root = tmp_path / "submitted"
    nbgrader_entry(root, "Zoë Müller", {f"{A}.ipynb": version("z")}, dt.datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    nbgrader_entry(root, "Zoé Mûller", {f"{A}.ipynb": version("y")}, dt.datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    nbgrader_entry(root, "jdoe", {f"{A}.ipynb": version("j")}, dt.datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    nbgrader_entry(root, "JDoe", {f"{A}.ipynb": version("J")}, dt.datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    nbgrader_entry(root, "s-ok", {f"{A}.ipynb": version("ok")}, dt.datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    report = col.collect(course, [root])
    assert students(course) == {"s-ok"}, report.text()           # nothing cleaned into one id, no case-only twins
    why = dict(report.unmatched)
    assert "is not usable as a student id" in why[f"submitted/Zoë Müller/{A}/{A}.ipynb"]
    assert report.collisions and report.collisions[0].identities == ["student id JDoe", "student id jdoe"]


# ---------------------------------------------------------------- one student's bad file costs that student only
def _encrypted_zip() -> bytes:
    """A student's zip holding a password-protected zip (its entry flagged encrypted, bit 0, as ``zip -e``
    writes it): no password is ever tried."""
    inner = zip_bytes({f"{A}.ipynb": (version("secret"), (2026, 11, 20, 12, 0))})
    data = bytearray(zip_bytes({"homework.zip": (b"\x00" * 12 + inner, (2026, 11, 20, 12, 0))}))
    local, central = data.index(b"PK\x03\x04"), data.rindex(b"PK\x01\x02")   # zipfile writes no such flag itself
    data[local + 6] |= 0x1
    data[central + 8] |= 0x1
    return bytes(data)


def _bad_utf8_name_zip() -> bytes:
    """A zip entry flagged UTF-8 (bit 11) whose name is not UTF-8: 'é' (c3 a9) turned into ff fe."""
    data = zip_bytes({f"\u00e9t\u00e9_{A}.ipynb": (version("bad-name"), (2026, 11, 20, 12, 0))})
    assert data.count(b"\xc3\xa9") == 4                  # the name in the local header and the central directory
    return data.replace(b"\xc3\xa9", b"\xff\xfe")


def _surrogate_notebook() -> bytes:
    """Notebook 2 with a lone surrogate (a JSON escape no UTF-8 writer can write back) and grading metadata of
    another course's notebook on an extra cell."""
    nb = released()
    i = next(i for i, c in enumerate(nb.cells) if c.get("id") == "q_sample")
    nb.cells[i].source += "\nlabel = '@@LONE@@'"
    foreign = nbformat.v4.new_code_cell("print('from another course @@LONE@@')")
    foreign.metadata["nbgrader"] = {"grade": True, "grade_id": "hw3_test_2", "locked": True, "points": 50,
                                    "schema_version": 3, "solution": False}
    nb.cells.append(foreign)
    return nbformat.writes(nb).replace("@@LONE@@", "\\ud800").encode()


@pytest.mark.parametrize("case", ["encrypted zip", "bad UTF-8 name", "lone surrogate"])
def test_one_students_bad_file_costs_that_student_only(course, tmp_path, case):
    bad = {"encrypted zip": ("mallory_61002_9930001_work.zip", _encrypted_zip()),
           "bad UTF-8 name": ("mallory_61002_9930001_work.zip", _bad_utf8_name_zip()),
           "lone surrogate": (f"mallory_61002_9930001_{A}.ipynb", _surrogate_notebook())}[case]
    export = tmp_path / "submissions.zip"
    export.write_bytes(zip_bytes({
        f"doejohn_48213_9921034_{A}.ipynb": (version("john"), (2026, 11, 20, 12, 0)),
        bad[0]: (bad[1], (2026, 11, 20, 12, 5)),
        f"roemary_50977_9921511_{B}.ipynb": (nbformat.writes(released(B)).encode(), (2026, 11, 20, 12, 9)),
        f"mallory_61002_9930002_{B}.ipynb": (nbformat.writes(released(B)).encode(), (2026, 11, 20, 12, 9)),
    }))
    report = col.collect(course, [export])
    assert filed(course, "canvas-48213") == version("john") and students(course, B) >= {"canvas-50977"}, report.text()
    if case == "lone surrogate":             # a fair outcome: filed, the characters replaced, the foreign cell noted
        out = filed(course, "canvas-61002").decode("utf-8")
        assert "\\ud800" not in out and "\ufffd" in out and "hw3_test_2" not in out
        notes = records.load_collect(course.notes, A, "canvas-61002").notes()
        assert any("lone surrogates" in n for n in notes) and any("does not belong" in n for n in notes), notes
        return
    why = {"encrypted zip": "password-protected (encrypted): hand it in without a password",
           "bad UTF-8 name": "not a readable zip file (UnicodeDecodeError): a file name in it is marked as UTF-8 "
                             "but is not (a hand-made or damaged zip); zip the files again"}[case]
    where = f"submissions.zip:{bad[0]}" + (":homework.zip" if case == "encrypted zip" else "")   # the entry / the zip
    assert dict(report.unmatched) == {where: why}
    (r,) = report.refused
    assert (r.student, r.assignment) == ("canvas-61002", B)    # the one assignment filed for them in this batch
    rec = records.load_collect(course.notes, B, "canvas-61002")
    assert rec.refused == [f"{where}: {why}"] and f"Not collected: {where}: {why}" in rec.notes()


def test_a_zip_entry_with_an_impossible_date_is_filed_at_the_time_of_its_zip(course, tmp_path):
    data = bytearray(zip_bytes({f"{A}.ipynb": (version("odd-date"), (2026, 11, 20, 12, 0))}))
    for at in (data.index(b"PK\x03\x04") + 12, data.index(b"PK\x01\x02") + 14):    # DOS date: month 13
        date = int.from_bytes(data[at:at + 2], "little")
        data[at:at + 2] = ((date & ~(0xF << 5)) | (13 << 5)).to_bytes(2, "little")
    export = tmp_path / "submissions.zip"
    export.write_bytes(zip_bytes({"mallory_61002_9930001_work.zip": (bytes(data), (2026, 11, 20, 12, 5)),
                                  f"doejohn_48213_9921034_{A}.ipynb": (version("john"), (2026, 11, 20, 12, 0))}))
    report = col.collect(course, [export])
    assert filed(course, "canvas-61002") == version("odd-date") and filed(course, "canvas-48213") == version("john")
    assert "2026-11-20 12:05:00" in (course.submitted / "canvas-61002" / A / "timestamp.txt").read_text(), report.text()


def test_a_zip_bomb_is_read_with_bounded_memory(course, tmp_path):
    """16 entries of 19 MB each (300 MB) in a 470 kB zip: collect's peak memory grows by far less than that,
    the student gets a note, the other student is filed."""
    entry = ('{"cells": [{"cell_type": "code", "execution_count": null, "id": "x", "metadata": {}, "outputs": [], '
             '"source": "' + "x = 1\\n" * (19 * 2**20 // 7) + '"}], "metadata": {}, "nbformat": 4, '
             '"nbformat_minor": 5}').encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for i in range(16):
            zf.writestr(f"notebook-{i}.ipynb", entry)
    bomb = buf.getvalue()
    assert len(bomb) < 500_000
    export = tmp_path / "submissions.zip"
    export.write_bytes(zip_bytes({f"doejohn_48213_9921034_{A}.ipynb": (version("john"), (2026, 11, 20, 12, 0)),
                                  "mallory_61002_9930001_bomb.zip": (bomb, (2026, 11, 20, 12, 5))}))
    del entry, buf, bomb
    script = f"""
import resource, sys, json
from ddpm_instructor import collect as col
from ddpm_instructor.coursedir import CourseDir
course = CourseDir(root={str(course.root)!r}, quiet=True)
col.known_notebooks(course)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
report = col.collect(course, [{str(export)!r}])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(grew_mb=(after - before) / 1024, students=sorted(course.submissions({A!r})),
                      unmatched=report.unmatched)))
"""
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["grew_mb"] < 200, got
    assert got["students"] == ["canvas-48213"]
    whys = [why for _, why in got["unmatched"]]
    assert any("MB in all unpacked from this student's files" in w for w in whys), whys


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files through /proc")
def test_a_class_is_collected_without_holding_a_file_open_per_notebook(course, tmp_path):
    export = tmp_path / "submissions.zip"
    export.write_bytes(zip_bytes({f"student{i:02d}_{70000 + i}_{9900000 + i}_{A}.ipynb": (version(str(i)),
                                                                                           (2026, 11, 20, 12, 0))
                                  for i in range(30)}))
    before = len(os.listdir("/proc/self/fd"))
    report = col.collect(course, [export])
    assert len(students(course)) == 30, report.text()
    assert len(os.listdir("/proc/self/fd")) == before


def test_escape_sequences_in_names_never_reach_the_report_raw(course, tmp_path):
    title, clear, clip, bidi = "\x1b]0;owned\x07", "\x1b[2J", "\x1b]52;c;cm0gLXJmIH4=\x07", "\u202e"
    inner = zip_bytes({f"{clear}{A}.ipynb": (version("mallory"), (2026, 11, 20, 12, 0)),
                       f"{clip}notes.txt": (b"hi", (2026, 11, 20, 12, 0)),
                       f"{bidi}bnypi.ipynb": (b"not json", (2026, 11, 20, 12, 0))})
    export = tmp_path / "submissions.zip"
    # a Canvas name holds word characters only (Canvas removes the rest): the file's own name may hold anything
    export.write_bytes(zip_bytes({f"mallory_61002_9930001_sub{title}.zip": (inner, (2026, 11, 20, 12, 5)),
                                  f"doejohn\x9b2J_48213_9921034_{title}hw.ipynb": (b"{", (2026, 11, 20, 12, 5))}))
    report = col.collect(course, [export])
    assert students(course) == {"canvas-61002"}, report.text()
    printed = report.text() + (course.logs / f"collect-{report.batch}.txt").read_text(encoding="utf-8")
    printed += json.dumps(records.load_collect(course.notes, A, "canvas-61002").notes(), ensure_ascii=False)
    for raw in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert raw not in printed
    assert "\\x1b]0;owned\\x07" in printed and "\\u202e" in printed and "\\x9b" in printed


# ---------------------------------------------------------------- released flags and cell types restored
def test_edited_grading_flags_and_cell_types_are_restored_by_grade_id():
    nb = released()
    want = {c["id"]: (c.cell_type, dict(c.metadata["nbgrader"])) for c in nb.cells if "nbgrader" in c.metadata}
    by_id = {c.get("id"): i for i, c in enumerate(nb.cells)}
    test = nb.cells[by_id["test_q_sample_return"]]
    test.metadata["nbgrader"].update(grade=False, solution=True)              # a test cell made an answer
    answer = nb.cells[by_id["q_sample"]]
    answer.metadata["nbgrader"].update(grade=True, solution=False, points=30)  # an answer made a graded test
    other = nb.cells[by_id["test_linear_beta_schedule"]]
    md = nbformat.v4.new_markdown_cell(other.source)                           # a test cell turned into Markdown
    md["id"], md.metadata = other["id"], copy.deepcopy(other.metadata)
    nb.cells[by_id["test_linear_beta_schedule"]] = md
    out, notes, _ = _repair(nb)
    got = {c["id"]: (c.cell_type, dict(c.metadata["nbgrader"])) for c in out.cells if "nbgrader" in c.metadata}
    assert got == want
    assert any("grading settings of the graded test cell `test_q_sample_return` had been changed (grade, solution)"
               in n for n in notes), notes
    assert any("`q_sample` had been changed (grade, points, solution)" in n for n in notes), notes
    assert any("`test_linear_beta_schedule` was handed in as a Markdown cell" in n for n in notes), notes
    code = next(c for c in out.cells if c["id"] == "test_linear_beta_schedule")
    assert code.outputs == [] and code.execution_count is None


# ---------------------------------------------------------------- no import cycle through collect
def _imports(module: str) -> set:
    """The ddpm_instructor modules ``module`` imports, at the top or inside a function (``from .x import``)."""
    import ast
    tree = ast.parse((REPO / "ddpm_instructor" / f"{module}.py").read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            out |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
    return {m for m in out if (REPO / "ddpm_instructor" / f"{m}.py").exists()}


def test_nothing_collect_imports_imports_collect_back_nor_forms_a_cycle():
    graph, todo = {}, ["collect"]
    while todo:
        m = todo.pop()
        if m not in graph:
            graph[m] = _imports(m)
            todo += sorted(graph[m])
    for start in graph:                       # a path from a module back to itself is a cycle
        seen, stack = set(), list(graph[start])
        while stack:
            m = stack.pop()
            assert m != start, f"import cycle through {start}: {graph}"
            if m not in seen:
                seen.add(m)
                stack += graph.get(m, ())
    assert {"coursedir", "roster"} <= set(graph["collect"]) and "collect" not in _imports("grades")


# ---------------------------------------------------------------- the submission time: never the student's word
DUE = dt.datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
LATE_AT = dt.datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
FORGED = b"2001-01-01 00:00:00.000000 UTC"


def submitted_at(course, student) -> dt.datetime:
    from ddpm_instructor.coursedir import parse_ts
    return parse_ts((course.submitted / student / A / "timestamp.txt").read_text())


def test_a_timestamp_txt_dated_2001_never_makes_a_late_submission_on_time(course, tmp_path):
    """nbgrader's layout: the notebook was last written after the due date, its timestamp.txt (written by the
    student's own submit, or by hand) says 2001.  The file's own date stands: filed as late, and the student's
    collect notes and the report say which time was used and that the timestamp.txt was not."""
    root = tmp_path / "submitted"
    d = nbgrader_entry(root, "mallory", {f"{A}.ipynb": version("mallory")}, LATE_AT, saved=LATE_AT)
    (d / "timestamp.txt").write_bytes(FORGED)
    report = col.collect(course, [root])
    assert students(course) == {"mallory"}, report.text()
    assert submitted_at(course, "mallory") == LATE_AT > DUE
    rec = records.load_collect(course.notes, A, "mallory")
    assert rec.submitted.startswith("2026-11-22 09:00:00")
    said = " ".join(rec.notebooks[A])
    assert "its timestamp.txt says 2001-01-01 00:00:00" in said and "not used" in said, said
    assert "@ mallory/02_forward_closed_form: submitted 2026-11-22 09:00:00" in report.text(), report.text()


def test_a_timestamp_txt_handed_in_through_an_lms_is_only_a_file(course, tmp_path):
    """A Moodle folder holds what the student uploaded: their timestamp.txt says nothing about when; the LMS's
    date in its zip stands.  Canvas's LATE is its own word, and the student's notes say so."""
    export = tmp_path / "moodle.zip"
    when = (LATE_AT.year, LATE_AT.month, LATE_AT.day, LATE_AT.hour, LATE_AT.minute)
    export.write_bytes(zip_bytes({f"Mallory Roe_4711_assignsubmission_file_/{A}.ipynb": (version("m"), when),
                                  "Mallory Roe_4711_assignsubmission_file_/timestamp.txt": (FORGED, when)}))
    canvas = tmp_path / "canvas.zip"
    canvas.write_bytes(zip_bytes({f"roemallory_LATE_50977_9921511_{A}.ipynb": (version("c"), when)}))
    report = col.collect(course, [export, canvas])
    assert submitted_at(course, "moodle-4711") == LATE_AT, report.text()
    assert submitted_at(course, "canvas-50977") == LATE_AT, report.text()
    assert "Canvas marks this submission LATE." in records.load_collect(course.notes, A, "canvas-50977").notebooks[A]
    assert "@ canvas-50977/02_forward_closed_form: submitted 2026-11-22 09:00:00.000000 UTC (its date in the zip; " \
           "Canvas marks it LATE)" in report.text(), report.text()
