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
def _timestep_args(x: Tensor, t, t_index) -> tuple[Tensor, int]:
    """Accept both call forms of a reverse step: ``(x, t, t_index)`` with ``t`` a (B,) tensor, and the seed's
    ``(x, t_index)`` with a plain int (then ``t`` is that index for every image)."""
    if not isinstance(t, Tensor):
        if t_index is not None and int(t_index) != int(t):
            raise ValueError(f"t = {t} and t_index = {t_index} disagree.")
        t_index = int(t)
        t = torch.full((x.shape[0],), t_index, device=x.device, dtype=torch.long)
    elif t_index is None:
        values = t.flatten().unique()
        if values.numel() != 1:
            raise ValueError("t holds different timesteps; pass t_index (the step of the loop) as well.")
        t_index = int(values.item())
    if t.ndim == 0:
        t = t.expand(x.shape[0])
    return t, int(t_index)


@torch.inference_mode()
def p_sample_DDPM(model: nn.Module, x: Tensor, t, t_index: int | None = None,
                  schedule: Schedule | None = None) -> Tensor:
    """x_{t-1} from x_t: predict the noise with the model, then take one step of Algorithm 2.

    ``p_sample_DDPM(model, x, t, t_index)`` (``t``: a (B,) tensor) or the seed's ``p_sample_DDPM(model, x, t_index)``.
    """
    t, t_index = _timestep_args(x, t, t_index)
    return ddpm_reverse_step(x, model(x, t), t, t_index, schedule=schedule)


@torch.inference_mode()
def p_sample_cDDPM(model: nn.Module, x: Tensor, t, t_index: int | None = None, y: Tensor | None = None,
                   schedule: Schedule | None = None) -> Tensor:
    """Class-conditional version of ``p_sample_DDPM``: the model also sees the labels ``y``.

    ``p_sample_cDDPM(model, x, t, t_index, y)`` or ``p_sample_cDDPM(model, x, t_index, y=y)``.
    """
    if y is None and isinstance(t_index, Tensor) and not isinstance(t, Tensor):   # (model, x, t_index, y)
        t_index, y = None, t_index
    if y is None:
        raise TypeError("p_sample_cDDPM needs the labels y.")
    t, t_index = _timestep_args(x, t, t_index)
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


def _image_shape(shape, n_samples, image_shape=(1, 28, 28)) -> tuple:
    """``shape`` as given, or (n_samples, 1, 28, 28) (the seed's ``n_samples=``; an int ``shape`` means the same)."""
    if shape is None:
        if n_samples is None:
            raise TypeError("give the shape of the batch, e.g. (16, 1, 28, 28), or n_samples=16.")
        return (int(n_samples), *image_shape)
    if isinstance(shape, int):
        shape = (shape, *image_shape)
    shape = tuple(shape)
    if n_samples is not None and int(n_samples) != shape[0]:
        raise ValueError(f"n_samples = {n_samples} disagrees with shape {shape}.")
    return shape


def p_sample_loop_DDPM(model: nn.Module, shape=None, schedule: Schedule | None = None, device=None,
                       keep_every: int | None = None, progress: bool = True, seed: int | None = None,
                       n_samples: int | None = None):
    """Algorithm 2: start from pure noise and denoise T times.

    Returns x_0 of ``shape``; with ``keep_every=k`` also a list of ``(t, x_t)`` frames every k steps.
    The seed's form ``p_sample_loop_DDPM(model, n_samples=16, seed=1337)`` draws (16, 1, 28, 28).
    """
    shape = _image_shape(shape, n_samples)
    return _sample_loop(lambda x, t, i, s: p_sample_DDPM(model, x, t, i, schedule=s),
                        model, shape, schedule, device, keep_every, progress, seed)


def p_sample_loop_cDDPM(model: nn.Module, shape, y: Tensor | None = None, schedule: Schedule | None = None,
                        device=None, keep_every: int | None = None, progress: bool = True, seed: int | None = None,
                        n_samples: int | None = None):
    """Algorithm 2 for the class-conditional model: image ``i`` is drawn as digit ``y[i]``.

    ``p_sample_loop_cDDPM(model, shape, y)`` or the seed's ``p_sample_loop_cDDPM(model, y, seed=1337)``
    (one (1, 28, 28) image per label).
    """
    if y is None:                                   # the seed's form: the labels in place of the shape
        if not isinstance(shape, Tensor):
            raise TypeError("p_sample_loop_cDDPM needs the labels y: (model, shape, y) or (model, y).")
        shape, y = None, shape
    if shape is None and n_samples is None:
        n_samples = len(y)
    shape = _image_shape(shape, n_samples)
    y = torch.as_tensor(y)
    if y.shape != (shape[0],):
        raise ValueError(f"y must hold one label per image, shape ({shape[0]},); got {tuple(y.shape)}.")
    y = y.to(device if device is not None else next(model.parameters()).device)
    return _sample_loop(lambda x, t, i, s: p_sample_cDDPM(model, x, t, i, y, schedule=s),
                        model, shape, schedule, device, keep_every, progress, seed)
