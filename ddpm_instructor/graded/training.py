"""Notebook 4: inputs (the loop's draws of t and ε included) and expected values of ``loss_fn`` and the loop."""
from __future__ import annotations

import torch
import torch.nn.functional as F

import solutions

from .case import Case, images


def inputs_loss(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"a": images(g, 4), "b": images(g, 4)}


def expected_loss(inputs) -> dict:
    a, b = inputs["a"], inputs["b"]
    return {"mse": F.mse_loss(a, b), "sse": F.mse_loss(a, b, reduction="sum"), "l1": F.l1_loss(a, b)}


def inputs_train(seed: int, batch: int = 6, T: int = 1000) -> dict:
    g = torch.Generator().manual_seed(seed)
    x0 = images(g, batch, uniform=True)
    return {"x0": x0, "T": T, "spy_scale": torch.tensor(0.5), "spy_shift": torch.linspace(-0.2, 0.2, T) + 0.01 * (seed % 7),
            "t": torch.randint(0, T, (batch,), generator=g), "noise": torch.randn(x0.shape, generator=g)}


def expected_train(inputs) -> dict:
    """x_t from the grader's own draws (the loop's q_sample is the public one, on the default schedule)."""
    return {"x_t": solutions.q_sample(inputs["x0"], inputs["t"], inputs["noise"])}


TESTS = {
    "test_loss_fn": Case("loss_fn", "loss_fn", lambda: inputs_loss(11), expected_loss),
    "test_train_x_t": Case("train_step", "train_x_t", lambda: inputs_train(2024), expected_train),
    "test_train_pred_noise": Case("train_step", "train_pred_noise", lambda: inputs_train(2025), expected_train),
    "test_train_loss": Case("train_step", "train_loss", lambda: inputs_train(2026), expected_train),
}

SELF_CHECKS = {
    "loss_fn": Case("loss_fn", "", lambda: inputs_loss(7), expected_loss),
    "train_step": Case("train_step", "", lambda: inputs_train(0), expected_train),
}
