"""Notebook 7: inputs (the DDIM step's draws of z included) and expected values of the cosine schedule, the DDIM
step and classifier-free guidance."""
from __future__ import annotations

import torch

from solutions.beyond import cosine_alpha_bars, cosine_beta_schedule, ddim_step, guided_eps
from solutions.diffusion import Schedule

from .case import Case, images, schedule_tensors


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
    return {"results": [guided_eps(*a) for a in inputs["args"]]}


TESTS = {
    "test_cosine_alpha_bars": Case("cosine", "cosine_alpha_bars", lambda: inputs_cosine([(800,), (37, 0.02)]),
                                   expected_cosine),
    "test_cosine_betas": Case("cosine", "cosine_betas", lambda: inputs_cosine([(1200,), (64, 0.01)]), expected_cosine),
    "test_ddim_x0_pred": Case("ddim", "ddim_x0_pred", lambda: inputs_ddim(71, [(900, 880, 0.0), (37, 17, 0.0)]),
                              expected_ddim),
    "test_ddim_x_prev": Case("ddim", "ddim_x_prev", lambda: inputs_ddim(72, [(640, 600, 0.0), (300, 250, 1.0),
                                                                             (19, -1, 0.0)]), expected_ddim),
    "test_guided_eps": Case("guided", "guided", lambda: inputs_guided(73, [0.0, 1.0, 2.5, 7.0]), expected_guided),
}

SELF_CHECKS = {
    "cosine": Case("cosine", "", lambda: inputs_cosine([(1000,), (10, 0.008)]), expected_cosine),
    "ddim": Case("ddim", "", lambda: inputs_ddim(0, [(999, 979, 0.0), (500, 450, 0.5), (20, -1, 0.0)]), expected_ddim),
    "guided": Case("guided", "", lambda: inputs_guided(0, [0.0, 1.0, 3.0]), expected_guided),
}
