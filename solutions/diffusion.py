"""Notebook 2 (graded): the noise schedule and the closed-form forward process q(x_t | x_0).

Notation follows Ho et al. (2020), "Denoising Diffusion Probabilistic Models":

    betas[t]      = β_t                       (noise added at step t)
    alphas[t]     = α_t  = 1 - β_t
    alpha_bars[t] = ᾱ_t  = ∏_{s<=t} α_s       (signal kept after t steps)

Index ``t`` runs over ``0 .. T-1`` (the paper's 1 .. T).  Every function takes the
schedule as an argument; ``schedule=None`` means the paper's linear schedule with
T = 1000, so the student-facing calls stay as short as ``q_sample(x0, t)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

from .helpers import extract

__all__ = ["linear_beta_schedule", "Schedule", "default_schedule", "q_sample"]


def linear_beta_schedule(timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """β_1 .. β_T spaced linearly from ``beta_start`` to ``beta_end`` (the paper's choice)."""
    if timesteps < 1:
        raise ValueError(f"timesteps must be a positive number of diffusion steps, got {timesteps}.")
    return torch.linspace(beta_start, beta_end, timesteps)


@dataclass(frozen=True)
class Schedule:
    """All per-timestep constants of a DDPM, computed once from ``betas``.

    Tensors are 1-D of length T.  Pass a ``Schedule`` to ``q_sample``,
    ``p_sample_DDPM`` and the training loop to change T or the β range.
    """

    betas: Tensor

    @classmethod
    def linear(cls, timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> "Schedule":
        return cls(linear_beta_schedule(timesteps, beta_start, beta_end))

    @property
    def T(self) -> int:
        return self.betas.shape[0]

    @property
    def alphas(self) -> Tensor:              # α_t = 1 - β_t
        return 1.0 - self.betas

    @property
    def alpha_bars(self) -> Tensor:          # ᾱ_t = ∏_{s<=t} α_s
        return torch.cumprod(self.alphas, dim=0)

    @property
    def device(self) -> torch.device:
        return self.betas.device

    def to(self, device) -> "Schedule":
        device = torch.device(device)
        return self if self.betas.device == device else Schedule(self.betas.to(device))


@lru_cache(maxsize=None)
def _linear_on(device: str) -> Schedule:
    return Schedule.linear(1000).to(device)


def default_schedule(device="cpu") -> Schedule:
    """The seed's schedule: linear β from 1e-4 to 0.02 over T = 1000 steps."""
    return _linear_on(str(torch.device(device)))


def _schedule_for(schedule: Schedule | None, like: Tensor) -> Schedule:
    return default_schedule(like.device) if schedule is None else schedule.to(like.device)


def q_sample(x_start: Tensor, t: Tensor, noise: Tensor | None = None, schedule: Schedule | None = None) -> Tensor:
    """Sample x_t ~ q(x_t | x_0) in one shot (closed form, eq. 4 of the paper):

        x_t = sqrt(ᾱ_t) · x_0 + sqrt(1 - ᾱ_t) · ε,    ε ~ N(0, I)
    """
    s = _schedule_for(schedule, x_start)
    if noise is None:
        noise = torch.randn_like(x_start)
    if noise.shape != x_start.shape:
        raise ValueError(f"noise has shape {tuple(noise.shape)} but x_start has {tuple(x_start.shape)}; they must match.")
    sqrt_alpha_bar = extract(s.alpha_bars.sqrt(), t, x_start.shape)
    sqrt_one_minus_alpha_bar = extract((1.0 - s.alpha_bars).sqrt(), t, x_start.shape)
    return sqrt_alpha_bar * x_start + sqrt_one_minus_alpha_bar * noise
