"""Notebook 4 (graded): Algorithm 1 (training); Algorithm 2 (sampling) is in ``sampling.py``.

Algorithm 1                                   Algorithm 2
  repeat                                        x_T ~ N(0, I)
    x_0 ~ q(x_0)                                for t = T, ..., 1:
    t ~ Uniform({1, ..., T})                      z ~ N(0, I) if t > 1, else z = 0
    ε ~ N(0, I)                                   x_{t-1} = 1/sqrt(α_t) (x_t - β_t/sqrt(1-ᾱ_t) ε_θ(x_t, t)) + σ_t z
    gradient step on ‖ε - ε_θ(sqrt(ᾱ_t) x_0 + sqrt(1-ᾱ_t) ε, t)‖²          return x_0
  until converged
"""
from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .diffusion import Schedule, default_schedule, q_sample

__all__ = ["p_losses", "train_step", "train"]


# ----------------------------------------------------------------------------- Algorithm 1
def p_losses(model: nn.Module, x_start: Tensor, t: Tensor, noise: Tensor | None = None,
             schedule: Schedule | None = None, y: Tensor | None = None) -> Tensor:
    """The simple DDPM loss  ‖ε - ε_θ(x_t, t)‖²  (mean over pixels and batch)."""
    if noise is None:
        noise = torch.randn_like(x_start)
    x_t = q_sample(x_start, t, noise, schedule=schedule)
    pred_noise = model(x_t, t) if y is None else model(x_t, t, y)
    return F.mse_loss(pred_noise, noise)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x_start: Tensor,
               schedule: Schedule | None = None, y: Tensor | None = None) -> float:
    """One gradient step of Algorithm 1 on a batch of clean images; returns the loss."""
    T = (schedule or default_schedule()).T
    t = torch.randint(0, T, (x_start.shape[0],), device=x_start.device)
    loss = p_losses(model, x_start, t, schedule=schedule, y=y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def train(model: nn.Module, dataloader: Iterable, epochs: int, lr: float = 1e-3,
          schedule: Schedule | None = None, device=None, seed: int | None = 0,
          conditional: bool = False, max_steps: int | None = None, optimizer=None,
          progress: bool = True) -> list[float]:
    """Train ``model`` with Algorithm 1 and return the loss of every step.

    ``dataloader`` yields ``(images, labels)`` batches (labels are used when ``conditional``).
    ``max_steps`` stops early (the fast profile uses it).  Seeded: the same seed, data order and
    device give the same losses.
    """
    if seed is not None:
        torch.manual_seed(seed)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device).train()
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    losses: list[float] = []
    bar = tqdm(total=max_steps if max_steps else epochs * len(dataloader), desc="training",
               disable=not progress)
    for _ in range(epochs):
        for batch in dataloader:
            x, y = (batch[0], batch[1]) if isinstance(batch, (list, tuple)) else (batch, None)
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True) if (conditional and y is not None) else None
            losses.append(train_step(model, optimizer, x, schedule=schedule, y=y))
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
            if max_steps and len(losses) >= max_steps:
                bar.close()
                return losses
    bar.close()
    return losses
