"""Notebook 8, parts A and B: inputs and expected values of the conversion ε̂ -> v on a Gaussian path, the exact
velocity of a Gaussian mixture and the straightness of trajectories, from ``solutions.flow``."""
from __future__ import annotations

import math

import torch

from solutions import flow
from tutorial_utils.checks import lab2d as checks

from .case import CheckData, Graded, calls


def _paths(alpha_sigma: str, t: float):
    """(α, σ, α', σ') of a path at t: the flow's (1 - t, t) or a variance-preserving cosine one (cos, sin)."""
    if alpha_sigma == "flow":
        return 1 - t, t, -1.0, 1.0
    c = math.pi / 2
    return math.cos(c * t), math.sin(c * t), -c * math.sin(c * t), c * math.cos(c * t)


def inputs_conversion(seed: int, steps, shape=(3, 2)) -> dict:
    g = torch.Generator().manual_seed(seed)
    args = []
    for kind, t in steps:
        a, s, da, ds = _paths(kind, float(t))
        args.append([torch.randn(*shape, generator=g), torch.randn(*shape, generator=g), a, s, da, ds])
    return {"args": args}


def expected_conversion(inputs) -> dict:
    return {"results": [flow.eps_to_velocity(*a) for a in inputs["args"]], "hints": [hints_conversion(*a) for a in inputs["args"]]}


def hints_conversion(x, eps, a, s, da, ds) -> dict:
    """The values of the conversion's common mistakes (``checks.CONVERSION_HINTS``)."""
    x0_hat = (x - s * eps) / a
    return {"x0_hat": x0_hat, "flow_only": eps - x0_hat, "x_t_as_x0": da * x + ds * eps,
            "noise_added": da * (x + s * eps) / a + ds * eps, "not_divided": da * (x - s * eps) + ds * eps}


def inputs_mixture(seed: int, ts, n: int = 6, k: int = 4) -> dict:
    g = torch.Generator().manual_seed(seed)
    args = []
    for t in ts:
        means = torch.randn(k, 2, generator=g) * 2
        weights = torch.rand(k, generator=g) + 0.2
        std = 0.1 + 0.3 * float(torch.rand((), generator=g))
        x = torch.randn(n, 2, generator=g) * 1.5
        args.append([x, float(t), means, std, weights / weights.sum()])
    return {"args": args}


def expected_mixture(inputs) -> dict:
    return {"results": [flow.mixture_velocity(*a) for a in inputs["args"]], "hints": [hints_mixture(*a) for a in inputs["args"]]}


def hints_mixture(x, t, means, std, weights) -> dict:
    """The values of the mixture velocity's common mistakes (``checks.MIXTURE_HINTS``)."""
    a = 1 - t
    var = a ** 2 * std ** 2 + t ** 2
    diff = x[:, None, :].double() - a * means[None].double()
    resp = torch.softmax(torch.log(weights.double()) - (diff ** 2).sum(-1) / (2 * var), dim=1)
    x0_k = means[None].double() + a * std ** 2 / var * diff
    eps_k = t / var * diff
    return {"unweighted": (eps_k - x0_k).mean(1), "denoiser": (resp[..., None] * x0_k).sum(1),
            "x0_is_mean": (resp[..., None] * (eps_k - means[None].double())).sum(1)}


def inputs_straightness(seed: int, sizes=((5, 4), (3, 6))) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"args": [[torch.randn(s + 1, n, 2, generator=g).cumsum(0)] for s, n in sizes]}


def expected_straightness(inputs) -> dict:
    return {"results": [flow.straightness(*a) for a in inputs["args"]], "hints": [hints_straightness(*a) for a in inputs["args"]]}


def hints_straightness(path) -> dict:
    """The values of the straightness ratio's common mistakes (``checks.STRAIGHTNESS_HINTS``)."""
    p = path.double()
    chord = (p[-1] - p[0]).norm(dim=-1)
    length = (p[1:] - p[:-1]).norm(dim=-1).sum(0)
    return {"upside_down": length / chord, "longest_segment": chord / (p[1:] - p[:-1]).norm(dim=-1).max(0).values,
            "squared": ((p[-1] - p[0]) ** 2).sum(-1) / ((p[1:] - p[:-1]) ** 2).sum(-1).sum(0)}


TESTS = (
    Graded("test_eps_to_velocity", checks.EPS_TO_VELOCITY,
           lambda: inputs_conversion(91, [("flow", 0.35), ("cosine", 0.6), ("cosine", 0.15)]), expected_conversion,
           calls("x_t", "eps", "alpha", "sigma", "d_alpha", "d_sigma")),
    Graded("test_mixture_velocity", checks.MIXTURE_VELOCITY, lambda: inputs_mixture(92, [0.95, 0.5, 0.08]),
           expected_mixture, calls("x", "t", "means", "std", "weights")),
    Graded("test_straightness", checks.STRAIGHTNESS, lambda: inputs_straightness(93), expected_straightness,
           calls("path")),
)

SELF_CHECKS = (
    CheckData(checks.EPS_TO_VELOCITY_CHECK, lambda: inputs_conversion(0, [("flow", 0.5), ("cosine", 0.3)], shape=(2, 2)),
              expected_conversion),
    CheckData(checks.MIXTURE_VELOCITY_CHECK, lambda: inputs_mixture(0, [0.7, 0.2], n=4, k=3), expected_mixture),
    CheckData(checks.STRAIGHTNESS_CHECK, lambda: inputs_straightness(0, sizes=((4, 3),)), expected_straightness),
)
