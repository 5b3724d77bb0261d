"""Notebook 9: inputs and expected values of the blanks of what a trained model can do (the inpainting merge, the
inverted DDIM step, spherical interpolation), from ``solutions.applications``."""
from __future__ import annotations

import torch

from solutions import applications as apps
from solutions.diffusion import Schedule
from tutorial_utils.checks import applications as checks

from .case import CheckData, Graded, calls, images, schedule_tensors


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


def operands_merge(inputs, exp):
    """Each call's arguments, and q_sample's names for them too: it computes half of the merge."""
    return [({"x": a[0], "x_known": a[1], "mask": a[2], "t": a[3], "noise": a[4], "args": a, "x_start": a[1],
              "x_0": a[1]}, {"result": res}) for a, res in zip(inputs["args"], exp["results"])]


def operands_invert(inputs, exp):
    """Each call's arguments, and ddim_step's names for them too: called upwards it is the blank (refused)."""
    return [({"x_t": a[0], "eps": a[1], "t": a[2], "t_next": a[3], "args": a, "alpha_bars": inputs["alpha_bars"],
              "t_prev": a[3], "x": a[0]}, {"result": res}) for a, res in zip(inputs["args"], exp["results"])]


TESTS = (
    Graded("test_merge_known", checks.MERGE_KNOWN, lambda: inputs_merge(91, [[0, 250, 640, 999], [37, 412]]),
           expected_merge, operands_merge),
    Graded("test_ddim_invert_step", checks.DDIM_INVERT_STEP,
           lambda: inputs_invert(92, [(-1, 19), (139, 199), (499, 749), (919, 999)]), expected_invert, operands_invert),
    Graded("test_slerp", checks.SLERP, lambda: inputs_slerp(93, [0.0, 0.3, 0.5, 0.85, 1.0]), expected_slerp,
           calls("z0", "z1", "alpha")),
)

SELF_CHECKS = (
    CheckData(checks.MERGE_KNOWN_CHECK, lambda: inputs_merge(0, [[10, 500], [999]]), expected_merge),
    CheckData(checks.DDIM_INVERT_STEP_CHECK, lambda: inputs_invert(0, [(-1, 49), (449, 499)], B=2), expected_invert),
    CheckData(checks.SLERP_CHECK, lambda: inputs_slerp(0, [0.0, 0.25, 1.0], B=2), expected_slerp),
)
