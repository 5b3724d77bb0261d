"""Notebook 2: inputs and expected values of ``linear_beta_schedule`` and ``q_sample``."""
from __future__ import annotations

import torch

import solutions

from .case import Case, images, schedule_tensors


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


TESTS = {
    "test_linear_beta_schedule": Case("calls", "schedule", lambda: inputs_schedule(
        [(1200,), (37,), (250, 1e-3, 0.05), (2, 0.3, 0.6)]), expected_schedule),
    "test_q_sample_sqrt_alpha_bar": Case("q_sample", "q_sample_sqrt_alpha_bar",
                                         lambda: inputs_q_sample(123, [3, 77, 400, 640, 998]), expected_q_sample),
    "test_q_sample_sqrt_one_minus_alpha_bar": Case("q_sample", "q_sample_sqrt_one_minus_alpha_bar",
                                                   lambda: inputs_q_sample(124, [5, 90, 333, 701, 997]), expected_q_sample),
    "test_q_sample_return": Case("q_sample", "q_sample_return",
                                 lambda: inputs_q_sample(125, [1, 64, 250, 512, 999]), expected_q_sample),
}

SELF_CHECKS = {
    "linear_beta_schedule": Case("calls", "", lambda: inputs_schedule([(1000,), (11, 0.1, 0.2)]), expected_schedule),
    "q_sample": Case("q_sample", "", lambda: inputs_q_sample(0, [0, 10, 250, 999]), expected_q_sample),
}
