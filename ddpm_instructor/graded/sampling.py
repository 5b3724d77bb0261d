"""Notebook 5: inputs (the step's draws of z included) and expected values of ``p_sample_DDPM``."""
from __future__ import annotations

import torch

import solutions
from tutorial_utils.checks.sampling import FixedEps
from tutorial_utils.checks import sampling as checks

from .case import CheckData, Graded, images, schedule_tensors


def inputs_reverse(seed: int, t_indices=(0, 1, 500, 999)) -> dict:
    g = torch.Generator().manual_seed(seed)
    x = images(g, 16)
    return {"x": x, "t_indices": list(t_indices), "a": 0.3 + 0.01 * (seed % 5), "b": 1.0,
            "z": [torch.randn(x.shape, generator=g) for _ in t_indices], **schedule_tensors()}


def expected_reverse(inputs) -> dict:
    s = solutions.Schedule(inputs["betas"])
    x, out = inputs["x"], {"mean": [], "sigma": [], "out": []}
    for t_index, z in zip(inputs["t_indices"], inputs["z"]):
        t = torch.full((x.shape[0],), t_index, dtype=torch.long)
        eps = FixedEps(inputs["a"], inputs["b"])(x, t)                              # the probe's stand-in for ε_θ
        out["mean"].append(solutions.ddpm_reverse_step(x, eps, t, 0, schedule=s))    # t_index 0: the mean, no noise
        out["sigma"].append(s.betas[t_index].sqrt().item())
        out["out"].append(solutions.ddpm_reverse_step(x, eps, t, t_index, noise=z, schedule=s))
    return out


def operands_reverse(inputs, exp):
    """Each step: x, t, the step's z, the stand-in model and its ε (and the score it stands for), the schedule."""
    x, s = inputs["x"], {k: inputs[k] for k in ("betas", "alphas", "alpha_bars")}
    out = []
    for i, (t_index, z) in enumerate(zip(inputs["t_indices"], inputs["z"])):
        t = torch.full((x.shape[0],), int(t_index), dtype=torch.long)
        eps = inputs["a"] * x + inputs["b"] * (t.float() / 1000).view(-1, 1, 1, 1)
        ab, beta = s["alpha_bars"][t_index], s["betas"][t_index]
        out.append(({"x": x, "x_t": x, "t": t, "t_index": int(t_index), "z": z if t_index else torch.zeros_like(x),
                     "noise": z, "eps": eps, "score": -eps / (1 - ab).sqrt(), "beta": float(beta),
                     "alpha_bar": float(ab), "model": {"__make__": "tutorial_utils.checks.sampling:FixedEps",
                                                       "args": [inputs["a"], inputs["b"]]}, **s},
                    {"x_prev": exp["out"][i]}))
    return out


TESTS = (
    Graded("test_p_sample_DDPM", checks.REVERSE_STEP, lambda: inputs_reverse(31337, (0, 2, 321, 998)), expected_reverse,
           operands_reverse),
)

SELF_CHECKS = (
    CheckData(checks.REVERSE_STEP_CHECK, lambda: inputs_reverse(0), expected_reverse),
)
