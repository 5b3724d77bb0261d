"""No answer is reachable from the student's kernel: every module and data file a bundle ships is walked, and nothing
in it yields a graded blank's expected value on the grader's inputs.

For each assignment the bundle is built as an instructor would at the latest (every other stage declared public,
``ddpm_instructor.bundle.build_bundle``), and ``tests/bundle_walker.py`` runs with only that bundle importable, as
the grading kernel does.  For each graded blank of the assignment it receives the quantities the blank's line
combines, computed here from the grader's inputs (``ddpm_instructor.graded.TESTS``), and the values the grader
expects; it calls every function, class, instance and method the bundle defines whose parameters those quantities
can fill (while the blank's probe would be running, so that a refused call is refused as it would be), and compares
every result, and every tensor stored in a shipped data file, with the expected values.  The only hits allowed are
the calls the per-blank decision allows on purpose (``solutions.REUSE``), and a stand-in model the probe hands the
student's code, whose output *is* the blank (``STAND_INS``).
"""
from __future__ import annotations

import importlib
import inspect
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
FLOW = "tutorial_utils.checks.flow"
# the model a probe hands the student's code, and the blank that is exactly one call of it (pred_noise = model(x_t, t))
STAND_INS = {"test_train_pred_noise": "tutorial_utils.checks.training.SpyModel(...)"}


def _make(path: str, *args) -> dict:
    return {"__make__": path, "args": list(args)}


def _sched(inputs) -> dict:
    return {k: inputs[k] for k in ("betas", "alphas", "alpha_bars") if k in inputs}


def _spy(scale, shift, x, t):                       # the stand-in model of notebook 4, written out independently
    return scale.double() * x.double() + shift.double()[t].view(-1, 1, 1, 1)


def subs(gid: str) -> list[dict]:
    """The blank's operands and expected values, one entry per call the probe makes."""
    case = TESTS[gid]
    inputs = case.make_inputs()
    exp = case.expected(inputs)
    out = []
    if case.probe == "mixture_score":
        part = case.judge.rsplit("_", 1)[1]
        for a, res in zip(inputs["args"], exp["results"]):
            x, ab, means, stds, weights = a
            want = {"m": ab ** 0.5 * means, "v": ab * stds ** 2 + 1 - ab, "return": res}[part]
            out.append(({"x": x, "alpha_bar": ab, "means": means, "stds": stds, "weights": weights, "args": a},
                        {part: want}))
    elif case.probe in ("pf_ode_step", "calls", "flow_interpolant", "velocity_target", "euler_step", "guided"):
        names = {"pf_ode_step": ("x", "score", "beta"), "calls": ("timesteps", "beta_start", "beta_end"),
                 "flow_interpolant": ("x_0", "noise", "t"), "velocity_target": ("x_0", "noise"),
                 "euler_step": ("x_t", "v", "t", "t_next"), "guided": ("eps_cond", "eps_uncond", "w")}[case.probe]
        for a, res in zip(inputs["args"], exp["results"]):
            out.append(({**dict(zip(names, a)), "args": a}, {"result": res}))
    elif case.probe == "q_sample":
        key = {"q_sample_sqrt_alpha_bar": "sqrt_alpha_bar", "q_sample_sqrt_one_minus_alpha_bar":
               "sqrt_one_minus_alpha_bar", "q_sample_return": "out"}[case.judge]
        ops = {"x_start": inputs["x0"], "x_0": inputs["x0"], "t": inputs["t"], "noise": inputs["noise"],
               **_sched(inputs)}
        out.append((ops, {key: exp[key], key + "_flat": exp[key].flatten()}))
    elif case.probe == "loss_fn":
        out.append(({"input": inputs["a"], "target": inputs["b"]}, {"mse": exp["mse"]}))
    elif case.probe == "train_step":
        x0, t, noise = inputs["x0"], inputs["t"], inputs["noise"]
        x_t = exp["x_t"]
        scale = inputs["spy_scale"].double().clone().requires_grad_()
        shift = inputs["spy_shift"].double().clone().requires_grad_()
        pred = _spy(scale, shift, x_t, t)
        loss = ((pred - noise.double()) ** 2).mean()
        loss.backward()
        ops = {"x_0": x0, "x_start": x0, "t": t, "noise": noise, "scale": inputs["spy_scale"],
               "shift": inputs["spy_shift"], "inputs": inputs}
        part = case.judge.split("_", 1)[1]
        if part == "x_t":
            out.append((ops, {"x_t": x_t}))
        elif part == "pred_noise":
            out.append(({**ops, "x_t": x_t, "x": x_t, "model": _make("tutorial_utils.checks.training:SpyModel",
                                                                       inputs["spy_scale"], inputs["spy_shift"])},
                        {"pred_noise": pred.detach()}))
        else:
            out.append(({**ops, "x_t": x_t, "x": x_t, "pred_noise": pred.detach().float()},
                        {"loss": loss.detach(), "scale_after": (scale - 0.1 * scale.grad).detach(),
                         "shift_after": (shift - 0.1 * shift.grad).detach()}))
    elif case.probe == "reverse_step":
        x, s = inputs["x"], _sched(inputs)
        for i, (t_index, z) in enumerate(zip(inputs["t_indices"], inputs["z"])):
            t = torch.full((x.shape[0],), int(t_index), dtype=torch.long)
            eps = inputs["a"] * x + inputs["b"] * (t.float() / 1000).view(-1, 1, 1, 1)
            ab, beta = s["alpha_bars"][t_index], s["betas"][t_index]
            out.append(({"x": x, "x_t": x, "t": t, "t_index": int(t_index), "z": z if t_index else torch.zeros_like(x),
                         "noise": z, "eps": eps, "score": -eps / (1 - ab).sqrt(), "beta": float(beta),
                         "alpha_bar": float(ab), "model": _make("tutorial_utils.checks.sampling:FixedEps",
                                                                inputs["a"], inputs["b"]), **s},
                        {"x_prev": exp["out"][i]}))
    elif case.probe == "class_emb":
        cols = int(exp["shape"][1])
        out.append(({"ch": inputs["ch"], "n_classes": inputs["n_classes"], "y": inputs["y"], "table": inputs["table"],
                     "weight": inputs["table"]}, {"lookup": inputs["table"][inputs["y"], :cols]}))
    elif case.probe == "cond_forward":
        sd = inputs["state_dict"]
        key = case.judge.split("_", 1)[1]
        out.append(({"ch": inputs["ch"], "n_classes": inputs["n_classes"], "x": inputs["x"], "t": inputs["t"],
                     "y": inputs["y"], "state_dict": sd, "weight": sd["class_emb.weight"]}, {key: exp[key]}))
    elif case.probe == "cosine":
        key = case.judge.split("_", 1)[1]
        for a, res in zip(inputs["args"], exp[key]):
            out.append(({"timesteps": a[0], "s": a[1] if len(a) > 1 else 0.008, "args": a}, {key: res}))
    elif case.probe == "ddim":
        ab = inputs["alpha_bars"]
        key = case.judge.split("_", 1)[1]
        want = exp["x0_pred"] if key == "x0_pred" else exp["out"]
        for (t, t_prev, eta), z, w in zip(inputs["steps"], inputs["z"], want):
            out.append(({"x_t": inputs["x_t"], "eps": inputs["eps"], "t": t, "t_prev": t_prev, "eta": eta, "noise": z,
                         "alpha_bars": ab, "alpha_bar_t": ab[t], "alpha_bar_prev": ab[t_prev] if t_prev >= 0
                         else torch.tensor(1.0)}, {key: w}))
    elif case.probe == "heun_step":
        for (t, tn), res in zip(inputs["steps"], exp["results"]):
            out.append(({"velocity_fn": _make(f"{FLOW}:LinearField", inputs["a"], inputs["b"]), "x_t": inputs["x"],
                         "t": t, "t_next": tn}, {"result": res}))
    elif case.probe == "guided_velocity":
        x, y = inputs["x"], inputs["y"]
        spy = _make(f"{FLOW}:SpyVelocity", inputs["a"], inputs["b"], inputs["c"])
        for w, res in zip(inputs["ws"], exp["results"]):
            out.append(({"model": {"__partial__": f"{FLOW}:_velocity", "args": [spy]}, "x": x, "x_t": x,
                         "t": torch.full((x.shape[0],), inputs["t"]), "y": y, "w": w,
                         "null_class": int(inputs["null_class"])}, {"result": res}))
    elif case.probe in ("merge_known", "ddim_invert_step", "slerp"):
        names = {"merge_known": ("x", "x_known", "mask", "t", "noise"), "ddim_invert_step": ("x_t", "eps", "t", "t_next"),
                 "slerp": ("z0", "z1", "alpha")}[case.probe]
        for a, res in zip(inputs["args"], exp["results"]):
            ops = {**dict(zip(names, a)), "args": a}
            if case.probe == "merge_known":            # q_sample's names too: it computes half of the merge
                ops.update(x_start=a[1], x_0=a[1])
            if case.probe == "ddim_invert_step":       # ddim_step's names too: called upwards it is the blank (refused)
                ops.update(alpha_bars=inputs["alpha_bars"], t_prev=a[3], x=a[0])
            out.append((ops, {"result": res}))
    elif isinstance(inputs.get("args"), list) and isinstance(exp.get("results"), list):
        # a function of the grader's argument lists: its operands are its arguments, named as the reference names them
        ref = next((getattr(m, case.probe) for m in (importlib.import_module(f"solutions.{n}") for n in solutions.STAGES)
                    if hasattr(m, case.probe)), None)
        names = list(inspect.signature(ref).parameters) if ref else []
        extra = {k: v for k, v in inputs.items() if k != "args"}
        for a, res in zip(inputs["args"], exp["results"]):
            named = {(names[i] if i < len(names) else f"arg{i}"): v for i, v in enumerate(a)}
            out.append(({**extra, **named, "args": a}, {"result": res}))
    else:
        raise AssertionError(f"{gid}: no operands for probe {case.probe}; add them here")
    return [{"operands": o, "expected": e} for o, e in out]


def allowed(gid: str, what: str) -> bool:
    """A hit the per-blank decision allows on purpose (``solutions.REUSE``), or the probe's own stand-in model."""
    reuse = solutions.REUSE.get(TESTS[gid].probe, {})
    return (gid in STAND_INS and what.startswith(STAND_INS[gid])) or any(what == f"solutions.{name}" for name in reuse)


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
    cases = [{"grade_id": gid, "probe": TESTS[gid].probe, "subs": subs(gid)} for gid in gids]
    torch.save(cases, tmp_path / "cases.pt")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DDPM_GRADER_INPUTS")}
    env.update(TMPDIR=str(tmp_path), MPLBACKEND="Agg", DDPM_DOWNLOAD="0", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(WALKER), str(dest), str(tmp_path / "cases.pt"), str(tmp_path / "hits.json")],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    hits = [h for h in json.loads((tmp_path / "hits.json").read_text()) if not allowed(h[0], h[1])]
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
