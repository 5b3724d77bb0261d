"""Notebook 2: inputs and expected values of ``linear_beta_schedule`` and ``q_sample``."""
from __future__ import annotations

import torch

import solutions
from tutorial_utils.checks import diffusion as checks

from .case import CheckData, Graded, calls, images, schedule_tensors


def inputs_schedule(args) -> dict:
    return {"args": [list(a) for a in args]}


def expected_schedule(inputs) -> dict:
    return {"results": [solutions.linear_beta_schedule(*a) for a in inputs["args"]]}


def inputs_q_sample(seed: int, t_values) -> dict:
    g = torch.Generator().manual_seed(seed)
    x0 = images(g, len(t_values), uniform=True)
    return {"x0": x0, "t": torch.tensor(t_values, dtype=torch.long), "noise": torch.randn(x0.shape, generator=g),
            "fresh_noise": torch.randn(x0.shape, generator=g), **schedule_tensors()}


def expected_q_sample(inputs) -> dict:
    s = solutions.Schedule(inputs["betas"])
    x0, t = inputs["x0"], inputs["t"]
    ab = s.alpha_bars[t]
    return {"sqrt_alpha_bar": solutions.extract(s.alpha_bars.sqrt(), t, x0.shape),
            "sqrt_one_minus_alpha_bar": solutions.extract((1 - s.alpha_bars).sqrt(), t, x0.shape),
            "out": solutions.q_sample(x0, t, inputs["noise"], schedule=s),
            "fresh_out": solutions.q_sample(x0, t, inputs["fresh_noise"], schedule=s),
            "alpha_bar": ab, "zero_var": 1 - ab}


def operands_q_sample(key: str):
    """A blank of q_sample: the batch, its timesteps, noise and schedule; the expected ``key`` (flattened too)."""
    def operands(inputs, exp):
        ops = {"x_start": inputs["x0"], "x_0": inputs["x0"], "t": inputs["t"], "noise": inputs["noise"],
               **{k: inputs[k] for k in ("betas", "alphas", "alpha_bars")}}
        return [(ops, {key: exp[key], key + "_flat": exp[key].flatten()})]
    return operands


TESTS = (
    Graded("test_linear_beta_schedule", checks.LINEAR_BETA_SCHEDULE, lambda: inputs_schedule(
        [(1200,), (37,), (250, 1e-3, 0.05), (2, 0.3, 0.6)]), expected_schedule,
        calls("timesteps", "beta_start", "beta_end")),
    Graded("test_q_sample_sqrt_alpha_bar", checks.Q_SAMPLE_SQRT_ALPHA_BAR,
           lambda: inputs_q_sample(123, [3, 77, 400, 640, 998]), expected_q_sample, operands_q_sample("sqrt_alpha_bar")),
    Graded("test_q_sample_sqrt_one_minus_alpha_bar", checks.Q_SAMPLE_SQRT_ONE_MINUS_ALPHA_BAR,
           lambda: inputs_q_sample(124, [5, 90, 333, 701, 997]), expected_q_sample,
           operands_q_sample("sqrt_one_minus_alpha_bar")),
    Graded("test_q_sample_return", checks.Q_SAMPLE_RETURN,
           lambda: inputs_q_sample(125, [1, 64, 250, 512, 999]), expected_q_sample, operands_q_sample("out")),
)

SELF_CHECKS = (
    CheckData(checks.LINEAR_BETA_SCHEDULE_CHECK, lambda: inputs_schedule([(1000,), (11, 0.1, 0.2)]), expected_schedule),
    CheckData(checks.Q_SAMPLE_CHECK, lambda: inputs_q_sample(0, [0, 10, 250, 999]), expected_q_sample),
)
