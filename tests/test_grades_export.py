"""Grades out of the course: the written answers' manual points and comments in the CSV and the feedback, the
Canvas and Moodle gradebook import files, and one score for the CSV and Gradescope's results.json.

A small course directory is built directly with nbgrader's Gradebook API from the committed student versions of
notebooks 1 (written answers only) and 2 (graded tests and one written answer): no notebook is executed; only
the feedback test runs nbgrader (generate_feedback).  About 25 s on 2 busy cores.  The expected numbers come from the points
in the released notebooks and the grades given below, never from the code under test.
"""
from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from ddpm_instructor import cli
from ddpm_instructor import grades as gr
from ddpm_instructor import gradescope
from ddpm_instructor.coursedir import CourseDir
from ddpm_instructor.errors import InstructorError
from ddpm_instructor.feedback import feedback

# nbgrader's add_submission warns about its own session handling (SAWarning); nothing of this test's
pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")
REPO = Path(__file__).resolve().parent.parent
A, W = "02_forward_closed_form", "01_forward_1d"       # graded tests + 1 written answer; graded tests + 3 written
FAILS = {"bob": {"test_q_sample_return"}}                # graded tests each student fails
MANUAL = {("ann", A): {"written_02_1": (1.5, "Right idea; say why the bumps merge at t = 250.")},
          ("ann", W): {"written_01_1": (1, ""), "written_01_2": (0.5, "Only the mean."), "written_01_3": (1, "")},
          ("bob", W): {"written_01_1": (1, ""), "written_01_2": (1, ""), "written_01_3": (1, "")},
          ("dan", A): {"written_02_1": (2, "")}}
PENDING = {("bob", A)}                                   # written answers handed in, not graded yet
HANDED_IN = {("ann", A), ("ann", W), ("bob", A), ("bob", W), ("dan", A)}
ROSTER = [  # cat handed in nothing; eve has no LMS id; dan handed in but is not on the roster
    dict(id="ann", lms_id="1001", sis_id="S-ann", login="ann@uni", name="Ann Lee", email="ann@uni.edu", section="A1"),
    dict(id="bob", lms_id="1002", sis_id="", login="", name="Bob Roe", email="bob@uni.edu", section="A1"),
    dict(id="cat", lms_id="1003", sis_id="", login="", name="Cat Poe", email="cat@uni.edu", section="A2"),
    dict(id="eve", lms_id="", sis_id="", login="", name="Eve Doe", email="", section="A2"),
]


def _release_cells(assignment):
    """(notebook, cell, nbgrader metadata) of every nbgrader cell of the committed student version."""
    for path in sorted((REPO / "notebooks" / "release" / assignment).glob("*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        for c in nb.cells:
            if "nbgrader" in c.metadata:
                yield path.stem, c, c.metadata["nbgrader"]


def _points(assignment, written):
    return {m["grade_id"]: float(m["points"]) for _, c, m in _release_cells(assignment)
            if m.get("grade") and (c.cell_type == "markdown") == written}


def _record_grades(gb, student, assignment):
    for nb, cell, m in _release_cells(assignment):
        if not m.get("grade"):
            continue
        g = gb.find_grade(m["grade_id"], nb, assignment, student)
        if cell.cell_type == "code":                   # a graded test: what autograde records
            g.auto_score = 0.0 if m["grade_id"] in FAILS.get(student, ()) else float(m["points"])
            g.needs_manual_grade = False
        elif (student, assignment) in PENDING:         # written, waiting for the formgrader
            g.auto_score, g.needs_manual_grade = None, True
        else:                                          # written, graded in the formgrader
            score, comment = MANUAL[(student, assignment)][m["grade_id"]]
            g.auto_score, g.manual_score, g.needs_manual_grade = None, float(score), False
            gb.find_comment(m["grade_id"], nb, assignment, student).manual_comment = comment or None
    gb.db.commit()


def _hand_in(course, student, assignment):
    for path in (REPO / "notebooks" / "release" / assignment).glob("*.ipynb"):
        nb = nbformat.read(str(path), as_version=4)
        for c in nb.cells:
            if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("grade"):
                c.source = c.source.replace("YOUR ANSWER HERE", f"{student}'s answer.")
        for d in (course.submitted, course.autograded):
            (d / student / assignment).mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, str(d / student / assignment / path.name))


def _alembic_head():
    import os
    import nbgrader
    from alembic.script import ScriptDirectory
    return ScriptDirectory(os.path.join(os.path.dirname(nbgrader.__file__), "alembic")).get_current_head()


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    from nbgrader.api import Gradebook
    root = tmp_path_factory.mktemp("grades") / "course"
    course = CourseDir(root=root, quiet=True)
    course.write_config()
    mp = pytest.MonkeyPatch()      # a new gradebook asks the `alembic` command for nbgrader's schema version: ask
    mp.setattr("nbgrader.api.get_alembic_version", _alembic_head)      # alembic in this process (seconds faster)
    with Gradebook("sqlite:///" + str(course.db_path)) as gb:
        for a in (W, A):
            shutil.copytree(REPO / "notebooks" / "release" / a, course.release / a)
            gb.update_or_create_assignment(a)
            for nb, cell, m in _release_cells(a):
                gb.update_or_create_notebook(nb, a)
                if m.get("grade"):
                    gb.update_or_create_grade_cell(m["grade_id"], nb, a, max_score=float(m["points"]),
                                                   cell_type=cell.cell_type)
                if m.get("solution"):
                    gb.update_or_create_solution_cell(m["grade_id"], nb, a)
                gb.update_or_create_source_cell(m["grade_id"], nb, a, cell_type=cell.cell_type, source=cell.source,
                                                locked=bool(m.get("locked")), checksum=m.get("checksum"))
        for s in ("ann", "bob", "cat", "dan", "eve"):
            gb.update_or_create_student(s)
        for s, a in sorted(HANDED_IN):
            gb.add_submission(a, s)
            _record_grades(gb, s, a)
            _hand_in(course, s, a)
    mp.undo()
    roster = root / "roster.csv"
    with open(roster, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(ROSTER[0]))
        w.writeheader()
        w.writerows(ROSTER)
    course.roster = roster
    return course


def _expected_total(student, assignment):
    auto = sum(p for g, p in _points(assignment, False).items() if g not in FAILS.get(student, ()))
    manual = sum(s for s, _ in MANUAL.get((student, assignment), {}).values())
    return auto + manual


def _read(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


# ------------------------------------------------------------------ the course's CSV and the feedback
def test_grades_csv_has_the_manual_points_and_comments_and_says_what_is_not_final(course):
    main, detail, _ = gr.grades(course)
    rows = {(r["student_id"], r["assignment"]): r for r in csv.DictReader(open(main))}
    ann = rows[("ann", A)]
    assert float(ann["score"]) == _expected_total("ann", A) == 11.5
    assert (float(ann["autograded"]), float(ann["written"])) == (10, 1.5)
    assert (float(ann["autograded_max"]), float(ann["written_max"]), float(ann["max_score"])) == (10, 2, 12)
    assert ann["status"] == "graded" and ann["needs_manual_grade"] == "False"
    assert "written_02_1: Right idea; say why the bumps merge at t = 250." in ann["comments"]
    bob = rows[("bob", A)]
    assert bob["status"] == "graded; written part not graded yet" and bob["written_to_grade"] == "1"
    assert float(bob["score"]) == 7 and bob["needs_manual_grade"] == "True"
    w_max = sum(_points(W, False).values()) + sum(_points(W, True).values())
    assert float(rows[("ann", W)]["score"]) == _expected_total("ann", W) == 5 + 2.5 and float(rows[("ann", W)]["max_score"]) == w_max == 8
    assert rows[("cat", A)]["status"] == "missing" and rows[("cat", A)]["score"] == "0.0"
    cells = {(r["student_id"], r["assignment"], r["cell"]): r for r in csv.DictReader(open(detail))}
    c = cells[("ann", W, "written_01_2")]
    assert (c["kind"], c["score"], c["max_score"], c["comment"]) == ("written", "0.5", "1.0", "Only the mean.")
    assert cells[("bob", A, "test_q_sample_return")]["kind"] == "autograded"
    assert cells[("bob", A, "test_q_sample_return")]["score"] == "0.0"
    assert cells[("bob", A, "written_02_1")]["needs_manual_grade"] == "True"


def test_feedback_shows_the_manual_points_and_the_comment(course):
    pages = feedback(course, [A], students=["ann"])
    html = "\n".join(p.read_text() for p in pages if p.parent.parent.name == "ann")
    assert "Right idea; say why the bumps merge at t = 250." in html
    assert "ann&#39;s answer." in html or "ann's answer." in html
    assert "11.5" in html                               # nbgrader's total: 10 autograded + 1.5 by hand
    from ddpm_instructor.feedback import written_to_grade      # what feedback warns about
    assert written_to_grade(course, A, ["ann", "bob", "dan"]) == ["bob"]


# ------------------------------------------------------------------ one score
def test_results_json_and_the_csv_take_the_score_from_one_place(course):
    _, detail, rows = gr.grades(course)
    by_cell = {(r["student_id"], r["cell"]): float(r["score"]) for r in csv.DictReader(open(detail))
               if r["assignment"] == A}
    for s in ("ann", "bob", "dan"):
        res = gradescope._results(course, A, s, 1.0, "after_published")
        row = next(r for r in rows if r["student_id"] == s and r["assignment"] == A)
        assert res["score"] == row["autograded"] == _expected_total(s, A) - sum(
            p for p, _ in MANUAL.get((s, A), {}).values())
        assert sum(t["score"] for t in res["tests"]) == res["score"]
        assert [t["name"] for t in res["tests"]] == list(_points(A, False))          # the written answer is not a test
        for t in res["tests"]:
            assert t["score"] == by_cell[(s, t["name"])]
        assert "graded by hand, in a separate Gradescope assignment" in res["output"]


def test_both_exports_read_submission_score(course, monkeypatch):
    """The CSV and results.json have no score of their own: change what submission_score says, both follow."""
    real = gr.submission_score

    def shifted(course_, assignment, student, gb=None):
        sc = real(course_, assignment, student, gb)
        for c in sc.cells.values():
            c.score = c.max_score / 4
        return sc
    monkeypatch.setattr(gr, "submission_score", shifted)
    _, _, rows = gr.grades(course)
    row = next(r for r in rows if r["student_id"] == "ann" and r["assignment"] == A)
    res = gradescope._results(course, A, "ann", 1.0, "after_published")
    assert row["autograded"] == res["score"] == 2.5 and row["score"] == 3.0


# ------------------------------------------------------------------ Canvas and Moodle
def test_canvas_import_file_has_the_documented_layout(course):
    rep = gr.lms_export(course, "canvas", course.roster)
    lines = _read(rep.path)
    assert lines[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", W, A]
    assert lines[1] == ["Points Possible", "", "", "", "", "8", "12"]          # notebook 1: 5 autograded + 3 written
    body = {r[1] or r[0]: r for r in lines[2:]}
    assert body["1001"] == ["Ann Lee", "1001", "S-ann", "ann@uni", "A1", "7.5", "11.5"]
    assert body["1002"] == ["Bob Roe", "1002", "", "", "A1", "8", ""]    # notebook 2: written part not graded
    assert body["1003"] == ["Cat Poe", "1003", "", "", "A2", "", ""]     # nothing handed in: empty, not 0
    assert len(lines) == 2 + len(ROSTER)
    assert any(u.startswith("dan is not in the roster") for u in rep.unmatched), rep.unmatched
    assert any(u.startswith("eve has no lms_id") for u in rep.unmatched), rep.unmatched
    assert rep.left_empty == [f"bob / {A}: graded; written part not graded yet"]


def test_moodle_import_file_has_the_documented_layout(course):
    rep = gr.lms_export(course, "moodle", course.roster, out=course.root / "moodle.csv")
    lines = _read(course.root / "moodle.csv")
    assert lines[0] == ["Full name", "Email address", "ID number", "Username", W, A]
    body = {r[0]: r for r in lines[1:]}
    assert body["Ann Lee"] == ["Ann Lee", "ann@uni.edu", "", "ann@uni", "7.5", "11.5"]
    assert body["Bob Roe"] == ["Bob Roe", "bob@uni.edu", "", "", "8", ""]
    assert body["Cat Poe"] == ["Cat Poe", "cat@uni.edu", "", "", "", ""]
    assert len(lines) == 1 + len(ROSTER)
    assert any(u.startswith("eve has no email") for u in rep.unmatched)


def test_the_cli_writes_the_lms_file_and_fails_on_a_student_it_cannot_place(course, capsys):
    rc = cli.main(["--course-dir", str(course.root), "grades", "--format", "canvas", "--roster", str(course.roster)])
    out = capsys.readouterr().out
    assert rc == 1 and "NOT EXPORTED: dan is not in the roster" in out and "grades-canvas.csv" in out
    assert (course.root / "grades-canvas.csv").is_file()
    assert cli.main(["--course-dir", str(course.root), "grades", "--format", "moodle"]) == 2
    assert "--roster None: no such file" in capsys.readouterr().err
    with pytest.raises(InstructorError, match="--format blackboard"):
        gr.lms_export(course, "blackboard", course.roster)


# ------------------------------------------------------------------ the roster (read by collect and by the LMS export)
@pytest.mark.parametrize("rows, why", [
    ("id,lms_id,name\ns-zoe,1843207,Zoë Müller\ns-zoe2,1843207,Zoé Mûller\n",
     "row 3: lms_id 1843207 is also on row 2 (two students would become one)"),
    ("id,lms_id,email\nann,1001,ann@uni.edu\nann2,1002,ANN@uni.edu\n",
     "row 3: 'ann@uni.edu' is also an id of row 2 (two students would become one)"),
    ("id,lms_id\nZoë Müller,1843207\nZoé Mûller,1843215\n",             # once both cleaned to "Zo-M-ller"
     "row 2: id 'Zoë Müller' is not usable as a student id"),
    ("id,lms_id\nann,1001\nann,1002\n", "row 3: id 'ann' is also on row 2"),
    ("student,lms_id\nann,1001\n", "no 'id' column"),
])
def test_the_roster_never_merges_two_students_and_says_which_rows(tmp_path, rows, why):
    roster = tmp_path / "roster.csv"
    roster.write_text(rows, encoding="utf-8")
    with pytest.raises(InstructorError, match=re.escape(why)):
        gr.read_roster(roster)


def test_the_roster_keeps_ids_as_written_and_finds_a_student_by_an_id_never_by_a_shared_name(tmp_path):
    from ddpm_instructor.roster import load_roster
    roster = tmp_path / "roster.csv"
    roster.write_text("id,lms_id,name,email,login\ns.ann_01,48213,John Doe,jd1@uni.edu,jd1\n"
                      "s.ann_02,50977,John Doe,jd2@uni.edu,jd2\nmoodle-zoe,1843207;1843215,Zoë Müller,,\n",
                      encoding="utf-8")
    assert [p["id"] for p in gr.read_roster(roster)] == ["s.ann_01", "s.ann_02", "moodle-zoe"]
    r = load_roster(roster)
    assert r.by_lms_id("50977").id == "s.ann_02" and r.by_lms_id("1843215").id == "moodle-zoe"
    assert r.by_id("JD2@uni.edu").id == "s.ann_02" and r.by_id("jd1").id == "s.ann_01"
    assert [e.id for e in r.by_name("john  doe")] == ["s.ann_01", "s.ann_02"]     # two: collect matches neither
    assert r.by_name("Zoé Mûller") == []                                            # accents are not ignored


# ------------------------------------------------------------------ Gradescope's zip says how to grade the written part
def test_autograder_readme_says_how_to_grade_the_written_part(course):
    readme = gradescope.autograder_readme(course, A)       # the README.md of the zip export_autograder writes
    assert "worth 10 points" in readme and "second Gradescope assignment" in readme
    assert "| 1 | `written_02_1` | 2 |" in readme
    assert "The written answers (3 answer(s), 3 points)" in gradescope.autograder_readme(course, W)


# ------------------------------------------------------------------ the points tables say what the notebooks hold
def test_the_docs_points_table_gives_the_autograded_and_written_points_of_every_assignment():
    import re
    docs = (REPO / "docs" / "INSTRUCTORS.md").read_text()
    lessons = sorted(p.name for p in (REPO / "notebooks" / "release").iterdir() if p.is_dir())
    totals = [0.0, 0.0]
    for a in lessons:
        auto, written = sum(_points(a, False).values()), sum(_points(a, True).values())
        totals = [totals[0] + auto, totals[1] + written]
        m = re.search(rf"^\| {a} \|[^|]*\| (\d+) \|[^|]*\| (\d+) \| (\d+) \|$", docs, re.M)
        assert m and [float(g) for g in m.groups()] == [auto, written, auto + written], a
    auto, written = totals
    assert auto > 0 and written > 0
    assert f"| **course** | | **{auto:g}** | | **{written:g}** | **{auto + written:g}** |" in docs
    assert f"Points: {auto + written:g} in all: {auto:g} autograded" in (REPO / "README.md").read_text()
    assert f"**{written:g}** for the written answers" in (REPO / "notebooks" / "README.md").read_text()
