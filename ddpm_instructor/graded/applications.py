"""Notebook 9: inputs and expected values of the blanks of what a trained model can do (the inpainting merge, the
inverted DDIM step, spherical interpolation), from ``solutions.applications``."""
from __future__ import annotations

import torch

from solutions import applications as apps
from solutions.diffusion import Schedule

from .case import Case, images, schedule_tensors


def inputs_merge(seed: int, batches) -> dict:
    """For each list of per-image timesteps in ``batches``: x, a known image, a random mask of known pixels, the
    timesteps and the noise (the grader's draw)."""
    g = torch.Generator().manual_seed(seed)

    def one(ts):
        B = len(ts)
        mask = (torch.rand(B, 1, 28, 28, generator=g) < 0.5).float()
        return [images(g, B), images(g, B, uniform=True), mask, torch.tensor(ts, dtype=torch.long), images(g, B)]
    return {"args": [one(ts) for ts in batches], "alpha_bars": schedule_tensors()["alpha_bars"]}


def expected_merge(inputs) -> dict:
    return {"results": [apps.merge_known(*a) for a in inputs["args"]]}


def inputs_invert(seed: int, steps, B: int = 3) -> dict:
    """(x_t, eps, t, t_next) for each step; t = -1 is the clean image."""
    g = torch.Generator().manual_seed(seed)
    return {"args": [[images(g, B, uniform=t < 0), images(g, B), int(t), int(tn)] for t, tn in steps],
            "alpha_bars": schedule_tensors()["alpha_bars"]}


def expected_invert(inputs) -> dict:
    s = Schedule(1 - torch.cat([inputs["alpha_bars"][:1], inputs["alpha_bars"][1:] / inputs["alpha_bars"][:-1]]))
    return {"results": [apps.ddim_invert_step(x, e, t, tn, s) for x, e, t, tn in inputs["args"]]}


def inputs_slerp(seed: int, alphas, B: int = 3) -> dict:
    g = torch.Generator().manual_seed(seed)
    z0, z1 = images(g, B), images(g, B)
    return {"args": [[z0, z1, float(a)] for a in alphas]}


def expected_slerp(inputs) -> dict:
    return {"results": [apps.slerp(z0.double(), z1.double(), a).float() for z0, z1, a in inputs["args"]]}


TESTS = {
    "test_merge_known": Case("merge_known", "merge_known", lambda: inputs_merge(91, [[0, 250, 640, 999], [37, 412]]),
                             expected_merge),
    "test_ddim_invert_step": Case("ddim_invert_step", "ddim_invert_step",
                                  lambda: inputs_invert(92, [(-1, 19), (139, 199), (499, 749), (919, 999)]),
                                  expected_invert),
    "test_slerp": Case("slerp", "slerp", lambda: inputs_slerp(93, [0.0, 0.3, 0.5, 0.85, 1.0]), expected_slerp),
}

SELF_CHECKS = {
    "merge_known": Case("merge_known", "", lambda: inputs_merge(0, [[10, 500], [999]]), expected_merge),
    "ddim_invert_step": Case("ddim_invert_step", "", lambda: inputs_invert(0, [(-1, 49), (449, 499)], B=2),
                             expected_invert),
    "slerp": Case("slerp", "", lambda: inputs_slerp(0, [0.0, 0.25, 1.0], B=2), expected_slerp),
}
