"""Notebook 7: inputs (the DDIM step's draws of z included) and expected values of the cosine schedule, the DDIM
step and classifier-free guidance."""
from __future__ import annotations

import torch

from solutions.beyond import cosine_alpha_bars, cosine_beta_schedule, ddim_step, guided_eps
from solutions.diffusion import Schedule
from tutorial_utils.checks import beyond as checks

from .case import CheckData, Graded, calls, images, schedule_tensors


def inputs_cosine(args) -> dict:
    return {"args": [list(a) for a in args]}


def expected_cosine(inputs) -> dict:
    return {"alpha_bars": [cosine_alpha_bars(*a) for a in inputs["args"]],
            "betas": [cosine_beta_schedule(*a).double() for a in inputs["args"]]}


def inputs_ddim(seed: int, steps) -> dict:
    g = torch.Generator().manual_seed(seed)
    x_t, eps = images(g, 6), images(g, 6)
    return {"x_t": x_t, "eps": eps, "steps": [list(s) for s in steps], "alpha_bars": schedule_tensors()["alpha_bars"],
            "z": [torch.randn(x_t.shape, generator=g) for _ in steps]}


def expected_ddim(inputs) -> dict:
    ab = inputs["alpha_bars"]
    s = Schedule(1 - ab / torch.cat([torch.ones(1), ab[:-1]]))
    out = {"x0_pred": [], "mean": [], "out": []}
    x, eps = inputs["x_t"], inputs["eps"]
    for (t, t_prev, eta), z in zip(inputs["steps"], inputs["z"]):
        a_t = ab[t]
        out["x0_pred"].append((x - (1 - a_t).sqrt() * eps) / a_t.sqrt())   # from the very ᾱ the student's code reads
        out["mean"].append(ddim_step(x, eps, t, t_prev, s, eta=eta, noise=torch.zeros_like(x)))
        out["out"].append(ddim_step(x, eps, t, t_prev, s, eta=eta, noise=z))
    return out


def inputs_guided(seed: int, ws) -> dict:
    g = torch.Generator().manual_seed(seed)
    ec, eu = images(g, 3), images(g, 3)
    return {"args": [[ec, eu, float(w)] for w in ws]}


def expected_guided(inputs) -> dict:
    return {"results": [guided_eps(*a) for a in inputs["args"]],
            "hints": [{"other_convention": ec + float(w) * (ec - eu), "reversed": eu + float(w) * (eu - ec)}   # checks.GUIDED_HINTS
                      for ec, eu, w in inputs["args"]]}


def operands_cosine(key: str):
    def operands(inputs, exp):
        return [({"timesteps": a[0], "s": a[1] if len(a) > 1 else 0.008, "args": a}, {key: res})
                for a, res in zip(inputs["args"], exp[key])]
    return operands


def operands_ddim(key: str):
    """Each step: x_t, ε, the timesteps, η and the step's z, the schedule and its two ᾱ."""
    def operands(inputs, exp):
        ab = inputs["alpha_bars"]
        want = exp["x0_pred"] if key == "x0_pred" else exp["out"]
        return [({"x_t": inputs["x_t"], "eps": inputs["eps"], "t": t, "t_prev": t_prev, "eta": eta, "noise": z,
                  "alpha_bars": ab, "alpha_bar_t": ab[t], "alpha_bar_prev": ab[t_prev] if t_prev >= 0
                  else torch.tensor(1.0)}, {key: w}) for (t, t_prev, eta), z, w in zip(inputs["steps"], inputs["z"], want)]
    return operands


TESTS = (
    Graded("test_cosine_alpha_bars", checks.COSINE_ALPHA_BARS, lambda: inputs_cosine([(800,), (37, 0.02)]),
           expected_cosine, operands_cosine("alpha_bars")),
    Graded("test_cosine_betas", checks.COSINE_BETAS, lambda: inputs_cosine([(1200,), (64, 0.01)]), expected_cosine,
           operands_cosine("betas")),
    Graded("test_ddim_x0_pred", checks.DDIM_X0_PRED, lambda: inputs_ddim(71, [(900, 880, 0.0), (37, 17, 0.0)]),
           expected_ddim, operands_ddim("x0_pred")),
    Graded("test_ddim_x_prev", checks.DDIM_X_PREV, lambda: inputs_ddim(72, [(640, 600, 0.0), (300, 250, 1.0),
                                                                          (19, -1, 0.0)]), expected_ddim,
           operands_ddim("x_prev")),
    Graded("test_guided_eps", checks.GUIDED_EPS, lambda: inputs_guided(73, [0.0, 1.0, 2.5, 7.0]), expected_guided,
           calls("eps_cond", "eps_uncond", "w")),
)

SELF_CHECKS = (
    CheckData(checks.COSINE_CHECK, lambda: inputs_cosine([(1000,), (10, 0.008)]), expected_cosine),
    CheckData(checks.DDIM_CHECK, lambda: inputs_ddim(0, [(999, 979, 0.0), (500, 450, 0.5), (20, -1, 0.0)]),
              expected_ddim),
    CheckData(checks.GUIDED_CHECK, lambda: inputs_guided(0, [0.0, 1.0, 3.0]), expected_guided),
)
