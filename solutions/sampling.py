"""Notebook 5 (graded): Algorithm 2 of the DDPM paper, the reverse step and the sampling loops.

    x_T ~ N(0, I)
    for t = T, ..., 1:
        z ~ N(0, I) if t > 1, else z = 0
        x_{t-1} = 1/sqrt(α_t) (x_t - β_t/sqrt(1-ᾱ_t) ε_θ(x_t, t)) + σ_t z,   σ_t² = β_t
    return x_0
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .diffusion import Schedule, _schedule_for, default_schedule
from .helpers import extract

__all__ = ["ddpm_reverse_step", "p_sample_DDPM", "p_sample_loop_DDPM", "p_sample_cDDPM", "p_sample_loop_cDDPM"]


def ddpm_reverse_step(x: Tensor, eps: Tensor, t: Tensor, t_index: int, noise: Tensor | None = None,
                      schedule: Schedule | None = None) -> Tensor:
    """One step of Algorithm 2 given the model's noise prediction ``eps`` = ε_θ(x_t, t):

        x_{t-1} = 1/sqrt(α_t) · (x_t - β_t / sqrt(1 - ᾱ_t) · ε_θ) + σ_t z,   σ_t² = β_t

    with z ~ N(0, I) except at the last step (t_index == 0), which adds no noise.
    """
    s = _schedule_for(schedule, x)
    beta_t = extract(s.betas, t, x.shape)
    sqrt_one_minus_alpha_bar_t = extract((1.0 - s.alpha_bars).sqrt(), t, x.shape)
    sqrt_recip_alpha_t = extract(s.alphas.rsqrt(), t, x.shape)
    mean = sqrt_recip_alpha_t * (x - beta_t / sqrt_one_minus_alpha_bar_t * eps)
    if t_index == 0:
        return mean
    if noise is None:
        noise = torch.randn_like(x)
    return mean + beta_t.sqrt() * noise


# ----------------------------------------------------------------------------- Algorithm 2
@torch.inference_mode()
def p_sample_DDPM(model: nn.Module, x: Tensor, t: Tensor, t_index: int,
                  schedule: Schedule | None = None) -> Tensor:
    """x_{t-1} from x_t: predict the noise with the model, then take one step of Algorithm 2."""
    return ddpm_reverse_step(x, model(x, t), t, t_index, schedule=schedule)


@torch.inference_mode()
def p_sample_cDDPM(model: nn.Module, x: Tensor, t: Tensor, t_index: int, y: Tensor,
                   schedule: Schedule | None = None) -> Tensor:
    """Class-conditional version of ``p_sample_DDPM``: the model also sees the labels ``y``."""
    return ddpm_reverse_step(x, model(x, t, y), t, t_index, schedule=schedule)


def _sample_loop(step, model, shape, schedule, device, keep_every, progress, seed):
    device = torch.device(device) if device is not None else next(model.parameters()).device
    schedule = (schedule or default_schedule()).to(device)
    if seed is not None:
        torch.manual_seed(seed)
    was_training = model.training
    model.eval()
    x = torch.randn(shape, device=device)                    # x_T ~ N(0, I)
    frames = [(schedule.T, x.cpu())] if keep_every else []
    for i in tqdm(reversed(range(schedule.T)), total=schedule.T, desc="sampling", disable=not progress):
        t = torch.full((shape[0],), i, device=device, dtype=torch.long)
        x = step(x, t, i, schedule)
        if keep_every and (i % keep_every == 0):
            frames.append((i, x.cpu()))
    model.train(was_training)
    return (x, frames) if keep_every else x


def p_sample_loop_DDPM(model: nn.Module, shape, schedule: Schedule | None = None, device=None,
                       keep_every: int | None = None, progress: bool = True, seed: int | None = None):
    """Algorithm 2: start from pure noise and denoise T times.

    Returns x_0 of ``shape``; with ``keep_every=k`` also a list of ``(t, x_t)`` frames every k steps.
    """
    return _sample_loop(lambda x, t, i, s: p_sample_DDPM(model, x, t, i, schedule=s),
                        model, shape, schedule, device, keep_every, progress, seed)


def p_sample_loop_cDDPM(model: nn.Module, shape, y: Tensor, schedule: Schedule | None = None, device=None,
                        keep_every: int | None = None, progress: bool = True, seed: int | None = None):
    """Algorithm 2 for the class-conditional model: image ``i`` is drawn as digit ``y[i]``."""
    if y.shape != (shape[0],):
        raise ValueError(f"y must hold one label per image, shape ({shape[0]},); got {tuple(y.shape)}.")
    y = y.to(device if device is not None else next(model.parameters()).device)
    return _sample_loop(lambda x, t, i, s: p_sample_cDDPM(model, x, t, i, y, schedule=s),
                        model, shape, schedule, device, keep_every, progress, seed)
