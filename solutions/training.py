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

import contextlib
from typing import Callable, Iterable

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


def train(model: nn.Module, optimizer: torch.optim.Optimizer, dataloader: Iterable, epochs: int,
          max_steps: int | None = None, progress: bool = True, *, scheduler=None, ema=None,
          autocast=None, grad_clip: float = 0.0, conditional: bool = False, p_uncond: float = 0.0,
          null_class: int | None = None, schedule: Schedule | None = None, objective: str = "ddpm",
          on_step: Callable[[int, float], None] | None = None, device=None) -> list[float]:
    """Algorithm 1 on ``dataloader``; returns the loss of every step (stops after ``max_steps`` if given).

    This is notebook 4's ``train_ddpm`` with its blanks filled in, and the loop the course's trainer
    (``python -m ddpm_instructor.train``) runs for the shipped checkpoints.  The recipe's parts are passed in
    (``tutorial_utils.recipe.Recipe`` builds them): ``optimizer``; ``scheduler`` stepped after each optimiser
    step; ``ema`` (an ``AveragedModel``) updated after it; ``autocast`` the context of the forward pass (bf16);
    ``grad_clip`` the gradient-norm cap (0: none).  ``dataloader`` yields ``(x_0, y)`` batches; with
    ``conditional`` the model is called as ε_θ(x_t, t, y), and with ``p_uncond`` each label is replaced by
    ``null_class`` with that probability (label dropout for classifier-free guidance).  ``objective="flow"``
    trains notebook 8's velocity instead (``solutions.flow.flow_matching_loss``).  ``on_step(step, loss)`` is
    called after every step (the trainer saves its resume state there).
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    T = (schedule or default_schedule()).T
    autocast = autocast if autocast is not None else contextlib.nullcontext()
    if objective not in ("ddpm", "flow"):
        raise ValueError(f"objective must be 'ddpm' or 'flow', not {objective!r}.")
    if p_uncond and not (conditional and null_class is not None):
        raise ValueError("label dropout (p_uncond > 0) needs conditional=True and a null_class.")
    model.train()
    losses: list[float] = []
    total = max_steps if max_steps else epochs * len(dataloader)
    bar = tqdm(total=total, desc="training", unit="step", disable=not progress, mininterval=1)
    for _ in range(epochs):
        for x_0, y, *paired in dataloader:                                   # 2: x_0 ~ q(x_0)
            x_0 = x_0.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True) if conditional else None
            if y is not None and p_uncond:                                   # label dropout (Ho & Salimans 2022)
                drop = torch.rand(y.shape[0], device=device) < p_uncond
                y = torch.where(drop, torch.full_like(y, null_class), y)
            with autocast:                                                   # bf16 forward pass where supported
                if objective == "flow":
                    from .flow import flow_matching_loss
                    noise = paired[0].to(device) if paired else None         # reflow: the (x_0, noise) pairs
                    loss = flow_matching_loss(model, x_0, torch.rand(x_0.shape[0], device=device), y, noise)
                else:
                    t = torch.randint(0, T, (x_0.shape[0],), device=device)  # 3: t ~ Uniform (0-based)
                    loss = p_losses(model, x_0, t, schedule=schedule, y=y)   # 4-5: ε ~ N(0, I), ‖ε - ε_θ‖²
            optimizer.zero_grad(set_to_none=True)                            # 5: gradient step on the loss
            loss.backward()
            if grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            if ema is not None:
                ema.update_parameters(model)
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
            if on_step is not None:
                on_step(len(losses), losses[-1])
            if max_steps and len(losses) >= max_steps:
                bar.close()
                return losses
    bar.close()
    return losses
