"""Notebook 9: inputs and expected values of the blanks of what a trained model can do (the inpainting merge, the
inverted DDIM step, spherical interpolation), from ``solutions.applications``."""
from __future__ import annotations

import torch

from solutions import applications as apps
from solutions.diffusion import Schedule
from tutorial_utils.checks import applications as checks

from .case import CheckData, Graded, calls, images, schedule_tensors


def alpha_bar_at(alpha_bars, t) -> torch.Tensor:
    """ᾱ at timestep t (a tensor of per-image timesteps: shaped to broadcast over images); t = -1 is the clean image."""
    t = torch.as_tensor(t).long()
    padded = torch.cat([alpha_bars.new_ones(1), alpha_bars.double()])
    return padded[t + 1].view(-1, 1, 1, 1) if t.dim() else padded[int(t) + 1]


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
    return {"results": [apps.merge_known(*a) for a in inputs["args"]], "hints": hints_merge(inputs)}


def hints_merge(inputs) -> list:
    """Per call, the values of the merge's common mistakes (``checks.MERGE_HINTS``): the judge only compares."""
    out = []
    for x, known, mask, t, noise in inputs["args"]:
        a = alpha_bar_at(inputs["alpha_bars"], t)
        noised = a.sqrt() * known.double() + (1 - a).sqrt() * noise.double()
        out.append({"mask_flipped": (1 - mask) * noised + mask * x, "known_clean": mask * known + (1 - mask) * x,
                    "noised_everywhere": noised, "rest_lost": mask * noised})
    return out


def inputs_invert(seed: int, steps, B: int = 3) -> dict:
    """(x_t, eps, t, t_next) for each step; t = -1 is the clean image."""
    g = torch.Generator().manual_seed(seed)
    return {"args": [[images(g, B, uniform=t < 0), images(g, B), int(t), int(tn)] for t, tn in steps],
            "alpha_bars": schedule_tensors()["alpha_bars"]}


def expected_invert(inputs) -> dict:
    s = Schedule(1 - torch.cat([inputs["alpha_bars"][:1], inputs["alpha_bars"][1:] / inputs["alpha_bars"][:-1]]))
    return {"results": [apps.ddim_invert_step(x, e, t, tn, s) for x, e, t, tn in inputs["args"]],
            "hints": hints_invert(inputs)}


def hints_invert(inputs) -> list:
    """Per call, the values of the inverted step's common mistakes (``checks.INVERT_HINTS``)."""
    ab, out = inputs["alpha_bars"], []
    for x, eps, t, tn in inputs["args"]:
        a_t, a_n = alpha_bar_at(ab, int(t)), alpha_bar_at(ab, int(tn))
        x, eps = x.double(), eps.double()
        h = {"x0_pred": (x - (1 - a_t).sqrt() * eps) / a_t.sqrt(), "x_t_as_x0": a_n.sqrt() * x + (1 - a_n).sqrt() * eps}
        if int(t) >= 0:
            h["off_by_one"] = (a_n.sqrt() * (x - (1 - a_t).sqrt() * eps) / alpha_bar_at(ab, int(t) - 1).sqrt()
                               + (1 - a_n).sqrt() * eps)
        h["eps_missing"] = (a_n / a_t).sqrt() * x
        out.append(h)
    return out


def inputs_slerp(seed: int, alphas, B: int = 3) -> dict:
    g = torch.Generator().manual_seed(seed)
    z0, z1 = images(g, B), images(g, B)
    return {"args": [[z0, z1, float(a)] for a in alphas]}


def expected_slerp(inputs) -> dict:
    return {"results": [apps.slerp(z0.double(), z1.double(), a).float() for z0, z1, a in inputs["args"]],
            "hints": hints_slerp(inputs)}


def hints_slerp(inputs) -> list:
    """Per call, the values of slerp's common mistakes (``checks.SLERP_HINTS``)."""
    out = []
    for z0, z1, alpha in inputs["args"]:
        alpha = float(alpha)
        h = {"straight_line": (1 - alpha) * z0 + alpha * z1}
        if alpha in (0.0, 1.0):
            h["ends_swapped"] = z1 if alpha == 0 else z0
        out.append(h)
    return out


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
