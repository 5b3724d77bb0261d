"""Notebook 1, part 2: inputs and expected values of the mixture's score and of one probability-flow ODE step."""
from __future__ import annotations

import torch

from solutions.score1d import mixture_score, pf_ode_step
from tutorial_utils.checks import score1d as checks

from .case import CheckData, Graded, calls


def inputs_score(seed: int, mixtures, alpha_bars, shapes) -> dict:
    """One argument list per (mixture, ᾱ, shape of x): x spread over the mixture's range."""
    g = torch.Generator().manual_seed(seed)
    args = []
    for (means, stds, weights), ab, shape in zip(mixtures, alpha_bars, shapes):
        x = torch.randn(shape, generator=g, dtype=torch.float64) * 2.5
        args.append([x, float(ab), torch.tensor(means, dtype=torch.float64), torch.tensor(stds, dtype=torch.float64),
                     torch.tensor(weights, dtype=torch.float64)])
    return {"args": args}


def expected_score(inputs) -> dict:
    """The score, and the blanks m_k = sqrt(ᾱ)·μ_k and v_k = ᾱ·σ_k² + 1 - ᾱ (the self-checks store these too)."""
    return {"results": [mixture_score(*a) for a in inputs["args"]],
            "m": [float(ab) ** 0.5 * means for _, ab, means, _, _ in inputs["args"]],
            "v": [float(ab) * stds ** 2 + (1 - float(ab)) for _, ab, _, stds, _ in inputs["args"]],
            # the common mistakes the judge names: m without the square root, v without scaling the data's spread
            "hints": [{"m_unscaled": float(ab) * means.double(), "v_unscaled": stds.double() ** 2 + 1 - float(ab)}
                      for _, ab, means, stds, _ in inputs["args"]]}


def inputs_pf_ode(seed: int, betas, shapes) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"args": [[torch.randn(shape, generator=g, dtype=torch.float64),
                      torch.randn(shape, generator=g, dtype=torch.float64) * 3, float(b)]
                     for b, shape in zip(betas, shapes)]}


def expected_pf_ode(inputs) -> dict:
    return {"results": [pf_ode_step(*a) for a in inputs["args"]],
            "hints": [{"no_half": x + b * (x + score), "wrong_way": x - 0.5 * b * (x + score),   # checks.PF_ODE_HINTS
                       "sde_mean": (x + b * score) / (1 - b) ** 0.5} for x, score, b in inputs["args"]]}


TWO_BUMPS = ([-2.0, 1.5], [0.15, 0.15], [0.5, 0.5])          # notebook 1's data


def operands_score(key: str, part: str = ""):
    """A blank of mixture_score: its arguments, and the values of ``key`` (m, v or the results) for each call."""
    def operands(inputs, exp):
        return [({"x": a[0], "alpha_bar": a[1], "means": a[2], "stds": a[3], "weights": a[4], "args": a},
                 {part or key: want}) for a, want in zip(inputs["args"], exp[key])]
    return operands


TESTS = (
    Graded("test_mixture_score_m", checks.MIXTURE_SCORE_M, lambda: inputs_score(
        101, [([-1.0, 0.5, 2.5], [0.3, 0.1, 0.5], [0.2, 0.5, 0.3]), ([0.7, -3.0], [0.05, 0.4], [0.9, 0.1])],
        [0.62, 0.047], [(13,), (3, 5)]), expected_score, operands_score("m")),
    Graded("test_mixture_score_v", checks.MIXTURE_SCORE_V, lambda: inputs_score(
        103, [([2.0, -0.5], [0.2, 0.6], [0.7, 0.3]), ([-1.5, 0.0, 1.5], [0.1, 0.1, 0.1], [0.3, 0.4, 0.3])],
        [0.81, 0.33], [(6,), (4, 2)]), expected_score, operands_score("v")),
    Graded("test_mixture_score_return", checks.MIXTURE_SCORE_RETURN, lambda: inputs_score(
        105, [([-2.5, 1.0, 3.0], [0.25, 0.05, 0.3], [0.25, 0.25, 0.5]), ([0.3, -1.2], [0.5, 0.08], [0.6, 0.4])],
        [0.95, 0.12], [(17,), (2, 3, 2)]), expected_score, operands_score("results", "return")),
    Graded("test_pf_ode_step", checks.PF_ODE_STEP, lambda: inputs_pf_ode(102, [0.03, 0.002], [(11,), (2, 6)]),
           expected_pf_ode, calls("x", "score", "beta")),
)
SELF_CHECKS = (
    CheckData(checks.MIXTURE_SCORE_CHECK, lambda: inputs_score(1, [TWO_BUMPS, TWO_BUMPS], [0.9, 0.3], [(9,), (9,)]),
              expected_score),
    CheckData(checks.PF_ODE_STEP_CHECK, lambda: inputs_pf_ode(2, [0.02, 0.02], [(7,), (7,)]), expected_pf_ode),
)
