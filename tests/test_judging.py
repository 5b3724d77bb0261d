"""Judging in a bounded process (ddpm_instructor.judging).

A record can cost far more to judge than its size: these tests hand the judging child an expanded (stride-0)
tensor, an oversized payload, a judge that never returns, one that allocates gigabytes and one that kills its own
process, and check that each costs only its own blank, with a note, while the others are judged and the grader's
own memory stays where it was.
"""
from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import solutions
from ddpm_instructor import graded, judging
from judging_hooks import VICTIM, dying_judge, greedy_judge, sleepy_judge
from tutorial_utils.checks import RECORDS
from tutorial_utils.probes import PROBES, RECORD_MIME, encode

SCHED, LOSS, GUIDED = "test_linear_beta_schedule", VICTIM, "test_guided_eps"
EXPANDED_SHAPE = (400_000, 1, 28, 28)          # 4-byte floats: 1 254 400 000 bytes once materialised


@pytest.fixture(scope="module")
def inputs_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("graded_inputs")
    graded.write_inputs(d, [SCHED, LOSS, GUIDED])
    return d


def _outputs(inputs_dir: Path, gid: str, obj, mutate=None) -> list:
    """The outputs a graded cell shows in the kernel: the probe's record of ``obj`` on the grader's inputs."""
    spec = torch.load(inputs_dir / f"{gid}.pt", weights_only=True)
    plain = PROBES[spec["probe"]](obj, spec["inputs"])
    if mutate is not None:
        plain = mutate(plain)
    payload = encode(gid, RECORDS[spec["probe"]].kind, plain)
    return [{"output_type": "display_data", "metadata": {}, "data": {RECORD_MIME: payload, "text/plain": "[record]"}}]


def _cell(inputs_dir, gid, obj, points=1.0, mutate=None):
    return judging.GradedCell.from_outputs(gid, points, _outputs(inputs_dir, gid, obj, mutate))


def _right_cells(inputs_dir):
    from solutions.beyond import guided_eps
    return [_cell(inputs_dir, SCHED, solutions.linear_beta_schedule, 1.0),
            _cell(inputs_dir, LOSS, torch.nn.functional.mse_loss, 2.0),
            _cell(inputs_dir, GUIDED, guided_eps, 3.0)]


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- records
def test_right_answers_pass_in_one_child(inputs_dir):
    batch = judging.judge_cells(_right_cells(inputs_dir), inputs_dir, timeout_s=60, memory_mb=1024)
    assert [r.passed for r in batch.results] == [True, True, True], batch.results
    assert [r.points for r in batch.results] == [1.0, 2.0, 3.0]
    assert batch.children == 1 and batch.notes == []


def test_expanded_and_oversized_records_cost_only_their_blank(inputs_dir):
    cells = _right_cells(inputs_dir)

    def expand(record):              # a few bytes of storage standing for 1.2 GB
        record["value"] = torch.zeros(1, 1, 1, 1).expand(*EXPANDED_SHAPE)
        return record
    cells[1] = _cell(inputs_dir, LOSS, torch.nn.functional.mse_loss, 2.0, mutate=expand)
    assert len(cells[1].outputs[0]["data"][RECORD_MIME]) < 10_000
    # longer than the record limit and not even a torch file: refused unread (read, it would be "not a torch.save")
    limit = graded.record_limit(GUIDED)
    cells[2] = judging.GradedCell.from_outputs(GUIDED, 3.0, [{"output_type": "display_data",
                                                              "data": {RECORD_MIME: "A" * (limit + 4)}}])
    before = _maxrss_mb()
    batch = judging.judge_cells(cells, inputs_dir, timeout_s=60, memory_mb=1024)
    assert [r.passed for r in batch.results] == [True, False, False], batch.results
    assert batch.results[1].points == 0 and batch.results[2].points == 0
    assert "expanded" in batch.results[1].message
    assert f"at most {limit:,}" in batch.results[2].message and "torch.save" not in batch.results[2].message
    assert _maxrss_mb() - before < 200, "the grader's own memory grew"
    materialised_mb = EXPANDED_SHAPE[0] * 28 * 28 * 4 / 2**20
    assert batch.peak_mb < materialised_mb, "the judging child materialised the expanded tensor"


def test_a_judge_that_allocates_gigabytes_is_refused_the_memory(inputs_dir):
    before = _maxrss_mb()
    batch = judging.judge_cells(_right_cells(inputs_dir), inputs_dir, timeout_s=60, memory_mb=512, judge=greedy_judge)
    assert [r.passed for r in batch.results] == [True, False, True], batch.results
    assert "could not judge this test" in batch.results[1].message
    assert _maxrss_mb() - before < 200
    assert batch.peak_mb < 3000


def test_a_judge_that_loops_costs_only_its_blank(inputs_dir):
    t0 = time.monotonic()
    batch = judging.judge_cells(_right_cells(inputs_dir), inputs_dir, timeout_s=2, memory_mb=1024, judge=sleepy_judge)
    took = time.monotonic() - t0
    assert [r.passed for r in batch.results] == [True, False, True], batch.results
    assert "stopped judging this test after 2 s" in batch.results[1].message
    assert batch.children == 2, "the tests after the stopped one are judged in a fresh child"
    assert any(f"`{LOSS}`" in n and "time limit" in n for n in batch.notes)
    assert took < 60, took


def test_a_judging_child_that_dies_costs_only_its_blank(inputs_dir):
    batch = judging.judge_cells(_right_cells(inputs_dir), inputs_dir, timeout_s=60, memory_mb=1024, judge=dying_judge)
    assert [r.passed for r in batch.results] == [True, False, True], batch.results
    assert "ended without a verdict (signal 9" in batch.results[1].message


def test_a_verdict_counts_only_for_the_test_it_was_asked_about():
    cell = judging.GradedCell(SCHED, 1.0, [])
    forged = {"grade_id": LOSS, "max_points": 100.0, "passed": True, "message": "ok", "points": 100.0}
    res = judging._result(cell, forged)
    assert not res.passed and res.points == 0 and res.max_points == 1.0


def test_only_errors_and_records_reach_the_child():
    outs = [{"output_type": "stream", "name": "stdout", "text": "x" * 10_000},
            {"output_type": "display_data", "data": {"image/png": "A" * 10_000, RECORD_MIME: "QUJD"}},
            {"output_type": "display_data", "data": {RECORD_MIME: ["not", "a", "string"]}},
            {"output_type": "error", "ename": "ValueError", "evalue": "v" * 5000, "traceback": ["t" * 5000]}]
    cell = judging.GradedCell.from_outputs(SCHED, 1.0, outs)
    assert [o["output_type"] for o in cell.outputs] == ["display_data", "error"]
    assert cell.outputs[0]["data"] == {RECORD_MIME: "QUJD"} and len(cell.outputs[1]["evalue"]) <= 1000


def test_the_graders_process_never_imports_torch():
    code = ("import sys, ddpm_instructor.execute, ddpm_instructor.judge_graded, ddpm_instructor.grader_notes, "
            "ddpm_instructor.judging as j; "
            "j.GradedCell.from_outputs('t', 1, [{'output_type': 'display_data', 'data': {'x/y': 'QUJD'}}]); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr
