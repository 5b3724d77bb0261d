"""ddpm_instructor.judge_graded: each graded test cell's code and outputs replaced by its verdict, the verdicts and
the judge's notes in the notebook's run record.  The judging itself (a bounded child process) is
tests/test_judging.py's; here ``judge_cells`` is replaced by a stand-in that records what it was asked."""
from __future__ import annotations

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_output
from traitlets.config import Config

from ddpm_instructor import judge_graded
from ddpm_instructor.judge_graded import JudgeGradedCells
from ddpm_instructor.judging import JudgeBatch
from ddpm_instructor.notebook_run import run_record
from ddpm_instructor import records


def graded(gid, points, outputs=(), solution=False):
    meta = {"nbgrader": {"grade": True, "solution": solution, "grade_id": gid, "points": points}}
    return new_code_cell("secret_test_code()", metadata=meta, outputs=list(outputs))


def notebook():
    record = new_output("display_data", data={"application/x-record": "QUJD", "image/png": "iVBO"})
    return nbformat.v4.new_notebook(cells=[
        new_markdown_cell("intro"),
        graded("answer_cell", 2, solution=True),                       # an answer cell: not a test
        graded("test_a", 2, [record]),
        new_code_cell("print(1)"),
        graded("test_b", 3, [new_output("error", ename="ValueError", evalue="bad", traceback=["..."])]),
    ])


def fake_judge(asked_log: list):
    def judge_cells(cells, inputs_dir, timeout_s, memory_mb, judge=None):
        asked_log.append((cells, inputs_dir, timeout_s, memory_mb))
        results = [records.TestResult(c.grade_id, c.max_points, c.grade_id == "test_a", f"verdict on {c.grade_id}",
                              c.max_points if c.grade_id == "test_a" else 0.0) for c in cells]
        return JudgeBatch(results=results, notes=["the grader stopped judging something"], children=1)
    return judge_cells


def test_graded_cells_show_the_verdict_never_their_code(tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(judge_graded, "judge_cells", fake_judge(asked))
    nb, resources = notebook(), {}
    pp = JudgeGradedCells(config=Config({"JudgeGradedCells": {"inputs_dir": str(tmp_path), "judge_timeout": 7,
                                                                "judge_memory_mb": 99}}))
    pp.preprocess(nb, resources)

    cells, inputs_dir, timeout_s, memory_mb = asked[0]
    assert [c.grade_id for c in cells] == ["test_a", "test_b"] and [c.max_points for c in cells] == [2.0, 3.0]
    assert (inputs_dir, timeout_s, memory_mb) == (str(tmp_path), 7, 99)
    assert cells[0].outputs == [{"output_type": "display_data", "metadata": {}, "data": {"application/x-record": "QUJD"}}]
    assert cells[1].outputs[0]["ename"] == "ValueError"

    a, b = nb.cells[2], nb.cells[4]
    assert "secret_test_code" not in a.source + b.source and "`test_a` (2 points)" in a.source
    assert [o.output_type for o in a.outputs] == ["stream"] and "verdict on test_a" in a.outputs[0].text
    assert [o.output_type for o in b.outputs] == ["error"] and b.outputs[0].ename == "GradedTestFailed"
    assert nb.cells[1].source == "secret_test_code()" and nb.cells[3].source == "print(1)"   # not tests: untouched

    run = run_record(resources)
    assert [t.grade_id for t in run.tests] == ["test_a", "test_b"] and [t.passed for t in run.tests] == [True, False]
    assert run.notes == ["the grader stopped judging something"]


def test_without_inputs_nothing_is_judged(monkeypatch):
    asked = []
    monkeypatch.setattr(judge_graded, "judge_cells", fake_judge(asked))
    nb, resources = notebook(), {}
    before = nbformat.writes(nb)
    JudgeGradedCells().preprocess(nb, resources)
    assert not asked and nbformat.writes(nb) == before and run_record(resources).tests == []


def test_the_judges_notes_follow_the_runs_own(tmp_path, monkeypatch):
    monkeypatch.setattr(judge_graded, "judge_cells", fake_judge([]))
    resources = {}
    run_record(resources).notes.append("cell 3 was stopped after 2 s")
    JudgeGradedCells(inputs_dir=str(tmp_path)).preprocess(notebook(), resources)
    assert run_record(resources).notes == ["cell 3 was stopped after 2 s", "the grader stopped judging something"]
