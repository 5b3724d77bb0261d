"""ddpm_instructor.grader_notes: the "Grader notes" cell at the top of the autograded notebook and the typed
autograde record, from collect's notes, the test cells nbgrader put back and the run's own notes."""
from __future__ import annotations

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell
from traitlets.config import Config

from ddpm_instructor import records
from ddpm_instructor.grader_notes import NOTES_MARK, GraderNotes
from ddpm_instructor.notebook_run import run_record
from ddpm_instructor.sanitize import escape_note

A, S, NAME = "02_x", "s1", "02_x"


def graded_cell(gid):
    return new_code_cell("submit()", metadata={"nbgrader": {"grade": True, "grade_id": gid, "points": 1,
                                                            "solution": False}})


def resources_for(student=S):
    return {"nbgrader": {"student": student, "assignment": A, "notebook": NAME}}


def test_restored_test_cells_are_found_by_grade_id_not_by_text(tmp_path):
    sub = tmp_path / "submitted" / S / A
    sub.mkdir(parents=True)
    handed_in = nbformat.v4.new_notebook(cells=[graded_cell("test_a")])
    (sub / f"{NAME}.ipynb").write_text(nbformat.writes(handed_in))
    run = nbformat.v4.new_notebook(cells=[graded_cell("test_a"), graded_cell("test_b")])   # nbgrader put b back
    run.cells[0].source = "# This cell (id:test_a) was missing from the submission."       # text says nothing
    gn = GraderNotes(config=Config({"CourseDirectory": {"root": str(tmp_path)}}))
    notes = gn._restored_notes(run, S, A, NAME, records.CollectRecord())
    assert notes == ["The graded test cell `test_b` was missing; the original was put back and run."]
    # collect filed this notebook: it compared it with the release, and its own notes say what was deleted
    assert gn._restored_notes(run, S, A, NAME, records.CollectRecord(notebooks={NAME: []})) == []


def test_notes_go_to_the_top_cell_and_the_record_collects_first_without_repeats(tmp_path):
    notes_dir = tmp_path / "notes"
    records.save(records.CollectRecord(notebooks={NAME: ["collected as x.ipynb", "same"]}),
                 records.notes_path(notes_dir, A, S, "collect"))
    nb = nbformat.v4.new_notebook(cells=[new_code_cell("x = 1")])
    resources = resources_for()
    run = run_record(resources)
    run.notes, run.seconds, run.executed, run.slowest_cell = ["same", "cell 2 was stopped"], 3.14159, True, (2.5, "c")
    GraderNotes(notes_dir=str(notes_dir)).preprocess(nb, resources)

    top = nb.cells[0]
    assert top.cell_type == "markdown" and top.metadata[NOTES_MARK] is True and len(nb.cells) == 2
    assert top.source.splitlines()[2:] == [f"- {escape_note(n)}" for n in ("collected as x.ipynb", "same",
                                                                         "cell 2 was stopped")]
    rec = records.load_autograde(notes_dir, A, S)
    assert rec.notebooks[NAME].notes == ["collected as x.ipynb", "same", "cell 2 was stopped"]
    assert (rec.notebooks[NAME].seconds, rec.notebooks[NAME].slowest_cell) == (3.1, (2.5, "c"))


def test_a_quiet_run_says_so_and_an_old_notes_cell_is_replaced():
    old = new_markdown_cell("**Grader notes** (automatic): stale")
    old.metadata[NOTES_MARK] = True
    nb = nbformat.v4.new_notebook(cells=[old, new_code_cell("x = 1")])
    GraderNotes().preprocess(nb, {})
    assert [c.cell_type for c in nb.cells] == ["markdown", "code"]
    assert nb.cells[0].source == "**Grader notes** (automatic): the notebook ran without problems."


def test_each_notebook_of_a_submission_keeps_its_own_run(tmp_path):
    notes_dir = tmp_path / "notes"
    for name, note in (("nb1", "first"), ("nb2", "second")):
        resources = {"nbgrader": {"student": S, "assignment": A, "notebook": name}}
        run_record(resources).notes.append(note)
        GraderNotes(notes_dir=str(notes_dir)).preprocess(nbformat.v4.new_notebook(), resources)
    rec = records.load_autograde(notes_dir, A, S)
    assert {k: r.notes for k, r in rec.notebooks.items()} == {"nb1": ["first"], "nb2": ["second"]}


def test_a_name_the_student_chose_stays_text_in_the_notes_cell():
    resources = {}
    run_record(resources).notes.append("collected `<img src=x onerror=alert(1)>.ipynb` as 02_x.ipynb")
    nb = nbformat.v4.new_notebook()
    GraderNotes().preprocess(nb, resources)
    assert "<img" not in nb.cells[0].source and "&lt;img" in nb.cells[0].source
