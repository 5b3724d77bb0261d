"""No answer is reachable from the student's kernel: every module and data file a bundle ships is walked, and nothing
in it yields a graded blank's expected value on the grader's inputs.

For each assignment the bundle is built as an instructor would at the latest (every other stage declared public,
``ddpm_instructor.bundle.build_bundle``), and ``tests/bundle_walker.py`` runs with only that bundle importable, as
the grading kernel does.  For each graded blank of the assignment it receives the quantities the blank's line
combines and the values the grader expects, both as the blank's declaration gives them from the grader's inputs
(``ddpm_instructor.graded.TESTS[grade_id].operands``); it calls every function, class, instance and method the
bundle defines whose parameters those quantities can fill (a function the decision refuses is a stub in the bundle of
the assignment that grades it: ``ddpm_instructor.bundle.refuse_functions``), and compares every result, and every
tensor stored in a shipped data file, with the expected values.  The only hits allowed are the calls the per-blank decision allows on purpose
(``solutions.REUSE``), and a stand-in model the probe hands the student's code, whose output *is* the blank
(``STAND_INS``).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import solutions
from ddpm_instructor import bundle as bd
from ddpm_instructor.coursedir import CourseDir
from ddpm_instructor.graded import TESTS

REPO = Path(__file__).resolve().parent.parent
WALKER = Path(__file__).resolve().parent / "bundle_walker.py"
# every graded stage that has a student version (a stage still being written has nothing to bundle yet)
ASSIGNMENTS = sorted(s for s in {stage for stage in solutions.STAGES.values() if stage}
                     if any((REPO / "notebooks" / "release" / s).glob("*.ipynb")))
# the model a probe hands the student's code, and the blank that is exactly one call of it (pred_noise = model(x_t, t))
STAND_INS = {"test_train_pred_noise": "tutorial_utils.checks.training.SpyModel(...)"}
# a function whose result is one plain call of that stand-in, in the sub-case where the blank is that call: at w = 1
# the guided velocity is the model's conditional output, which stage 07's _model_eps returns unguided (its guided
# branch, _guided_model_eps, is a stub in notebook 8's bundle); a guided sub-case that hits still fails
PLAIN_CALL = {("test_guided_velocity", "solutions.beyond._model_eps"): lambda operands: operands.get("w") == 1}


def subs(gid: str) -> list[dict]:
    """The blank's operands and expected values, one entry per call the probe makes, as its declaration gives them
    (``Graded.operands``)."""
    case = TESTS[gid]
    inputs = case.make_inputs()
    return [{"operands": o, "expected": e} for o, e in case.operands(inputs, case.expected(inputs))]


def allowed(gid: str, what: str, sub: int) -> bool:
    """A hit the per-blank decision allows on purpose (``solutions.REUSE``), the probe's own stand-in model, or one
    plain call of it where that is the sub-case's answer (``PLAIN_CALL``)."""
    reuse = solutions.REUSE.get(TESTS[gid].kind, {})
    plain = PLAIN_CALL.get((gid, what))
    return ((gid in STAND_INS and what.startswith(STAND_INS[gid])) or any(what == f"solutions.{name}" for name in reuse)
            or (plain is not None and plain(subs(gid)[sub]["operands"])))


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundles") / "course"
    course = CourseDir(root=root, quiet=True)
    for a in ASSIGNMENTS:
        shutil.copytree(REPO / "notebooks" / "release" / a, course.release / a)
    bd.declare_public(course, ASSIGNMENTS)
    return course


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_nothing_a_bundle_ships_computes_a_graded_blank(course, assignment, tmp_path):
    dest, _ = bd.build_bundle(course, assignment)
    gids = sorted(_graded_ids(assignment))
    assert gids, f"{assignment}: no graded blanks found"
    cases = [{"grade_id": gid, "probe": TESTS[gid].kind, "subs": subs(gid)} for gid in gids]
    torch.save(cases, tmp_path / "cases.pt")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DDPM_GRADER_INPUTS")}
    env.update(TMPDIR=str(tmp_path), MPLBACKEND="Agg", DDPM_DOWNLOAD="0", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(WALKER), str(dest), str(tmp_path / "cases.pt"), str(tmp_path / "hits.json")],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    hits = [h for h in json.loads((tmp_path / "hits.json").read_text()) if not allowed(h[0], h[1], h[3])]
    assert not hits, f"{assignment}: the bundle computes graded blanks: {hits}"


def _graded_ids(assignment: str) -> set[str]:
    import nbformat
    ids = set()
    for nb in (REPO / "notebooks" / "release" / assignment).glob("*.ipynb"):
        for c in nbformat.read(str(nb), as_version=4).cells:
            g = c.metadata.get("nbgrader", {})
            if g.get("grade") and not g.get("solution"):
                ids.add(g.get("grade_id"))
    return ids & set(TESTS)
