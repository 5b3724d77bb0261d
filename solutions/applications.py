"""Notebook 9 (What a trained model can do): inpainting, SDEdit, DDIM inversion and interpolation, a memorisation
check -- with a trained ε-model and nothing new to train.

* **Inpainting** (the "replacement" method; Song et al. 2021, "Score-Based Generative Modeling through SDEs", app.
  I.2; Lugmayr et al. 2022, RePaint, eq. 8): before each reverse step at timestep t, the known pixels of the image
  are replaced by the known image noised to the same t,

      x_t  <-  m ⊙ q_sample(x_known, t, ε) + (1 - m) ⊙ x_t        (m = 1 where the pixel is known)

  so the model always sees known pixels at the noise level it expects; at the end they are the known pixels.
* **SDEdit** (Meng et al. 2022): noise a guide image (a rough or corrupted digit) to a timestep t_0 with
  ``q_sample`` and run the sampler from t_0 down; small t_0 keeps the guide, large t_0 keeps only its outline.
* **DDIM inversion** (Song et al. 2021, DDIM, sec. 4.3 and 5.4): the deterministic
  (η = 0) DDIM step run upwards, from x_t to x_{t_next} with t_next > t, with ε evaluated at (x_t, t_next)
  in place of the unknown x_{t_next}:

      x̂_0 = (x_t - sqrt(1 - ᾱ_t) ε) / sqrt(ᾱ_t),     x_{t_next} = sqrt(ᾱ_{t_next}) x̂_0 + sqrt(1 - ᾱ_{t_next}) ε

  (t = -1 is the clean image, ᾱ = 1).  Decoding the resulting x_T with DDIM (η = 0) gives the image back up to
  that approximation's error.
* **Spherical interpolation** (Shoemake 1985; used on DDIM latents by Song et al. 2021, sec. 5.3), per image,
  with θ the angle between z_0 and z_1 (flattened):

      slerp(z_0, z_1, α) = sin((1 - α) θ) / sin θ · z_0 + sin(α θ) / sin θ · z_1
* **Memorisation check**: each sample's Euclidean distance to its nearest training image, against the same
  distance for held-out test images (Carlini et al. 2023 use such nearest-neighbour distances).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .beyond import _alpha_bar_at, ddim_step, ddim_timesteps
from .diffusion import Schedule, _schedule_for, default_schedule, q_sample

__all__ = ["merge_known", "inpaint_loop", "sdedit", "ddim_invert_step", "ddim_invert", "ddim_decode", "slerp",
           "nearest_distances"]


# ----------------------------------------------------------------------------- inpainting
def merge_known(x: Tensor, x_known: Tensor, mask: Tensor, t: Tensor, noise: Tensor,
                schedule: Schedule | None = None) -> Tensor:
    """m ⊙ q_sample(x_known, t, noise) + (1 - m) ⊙ x: the known pixels noised to timestep ``t`` ((B,) long)."""
    return mask * q_sample(x_known, t, noise, schedule) + (1 - mask) * x


@torch.inference_mode()
def inpaint_loop(model: nn.Module, x_known: Tensor, mask: Tensor, n_steps: int = 50, y: Tensor | None = None,
                 eta: float = 1.0, schedule: Schedule | None = None, seed: int | None = None) -> Tensor:
    """Fill in the pixels where ``mask`` is 0: DDIM steps (η = 1 by default) from pure noise, the known pixels
    replaced by ``merge_known`` before every step, and by the known image itself at the end."""
    device = x_known.device
    schedule = (schedule or default_schedule()).to(device)
    if seed is not None:
        torch.manual_seed(seed)
    ts = ddim_timesteps(schedule.T, n_steps)
    x = torch.randn_like(x_known)
    for i, t in enumerate(ts):
        tt = torch.full((x.shape[0],), t, device=device, dtype=torch.long)
        x = merge_known(x, x_known, mask, tt, torch.randn_like(x), schedule)
        eps = model(x, tt, y) if y is not None else model(x, tt)
        x = ddim_step(x, eps, t, ts[i + 1] if i + 1 < len(ts) else -1, schedule, eta=eta, clip_x0=True)
    return mask * x_known + (1 - mask) * x


# ----------------------------------------------------------------------------- SDEdit
@torch.inference_mode()
def sdedit(model: nn.Module, x_guide: Tensor, t0: int, n_steps: int = 20, y: Tensor | None = None,
           eta: float = 1.0, schedule: Schedule | None = None, seed: int | None = None) -> Tensor:
    """Noise ``x_guide`` to timestep ``t0`` and denoise with ``n_steps`` DDIM steps on t0, ..., 0."""
    device = x_guide.device
    schedule = (schedule or default_schedule()).to(device)
    if seed is not None:
        torch.manual_seed(seed)
    ts = torch.linspace(t0, 0, max(1, n_steps), dtype=torch.float64).round().long().unique_consecutive().tolist()
    x = q_sample(x_guide, torch.full((x_guide.shape[0],), t0, device=device, dtype=torch.long),
                 torch.randn_like(x_guide), schedule)
    for i, t in enumerate(ts):
        tt = torch.full((x.shape[0],), t, device=device, dtype=torch.long)
        eps = model(x, tt, y) if y is not None else model(x, tt)
        x = ddim_step(x, eps, t, ts[i + 1] if i + 1 < len(ts) else -1, schedule, eta=eta, clip_x0=True)
    return x


# ----------------------------------------------------------------------------- DDIM inversion
def ddim_invert_step(x_t: Tensor, eps: Tensor, t, t_next, schedule: Schedule | None = None) -> Tensor:
    """One deterministic DDIM step upwards, from x_t to x_{t_next} (t_next > t; t = -1: the clean image)."""
    s = _schedule_for(schedule, x_t)
    a_t, a_next = _alpha_bar_at(s.alpha_bars, t, x_t), _alpha_bar_at(s.alpha_bars, t_next, x_t)
    x0_pred = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    return a_next.sqrt() * x0_pred + (1 - a_next).sqrt() * eps


def _eps(model, x, t, y):
    tt = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
    return model(x, tt, y) if y is not None else model(x, tt)


@torch.inference_mode()
def ddim_invert(model: nn.Module, x_0: Tensor, n_steps: int = 50, y: Tensor | None = None,
                schedule: Schedule | None = None) -> Tensor:
    """x_0 -> x_T by ``n_steps`` inverted DDIM steps on the timesteps ``ddim_decode`` walks down (ε at (x_t, t_next))."""
    schedule = (schedule or default_schedule()).to(x_0.device)
    ts = [-1] + ddim_timesteps(schedule.T, n_steps)[::-1]
    x = x_0
    for t, t_next in zip(ts[:-1], ts[1:]):
        x = ddim_invert_step(x, _eps(model, x, t_next, y), t, t_next, schedule)
    return x


@torch.inference_mode()
def ddim_decode(model: nn.Module, x_T: Tensor, n_steps: int = 50, y: Tensor | None = None,
                schedule: Schedule | None = None) -> Tensor:
    """x_T -> x_0 by ``n_steps`` deterministic DDIM steps (η = 0, no clipping: the exact reverse of ``ddim_invert``)."""
    schedule = (schedule or default_schedule()).to(x_T.device)
    ts = ddim_timesteps(schedule.T, n_steps)
    x = x_T
    for i, t in enumerate(ts):
        x = ddim_step(x, _eps(model, x, t, y), t, ts[i + 1] if i + 1 < len(ts) else -1, schedule, eta=0.0)
    return x


# ----------------------------------------------------------------------------- interpolation
def slerp(z0: Tensor, z1: Tensor, alpha: float) -> Tensor:
    """Spherical interpolation per image: α = 0 gives z0, α = 1 gives z1 (linear where z0 and z1 are parallel)."""
    a, b = z0.flatten(1), z1.flatten(1)
    cos = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))
    theta = torch.acos(cos.clamp(-1, 1)).view(-1, *([1] * (z0.dim() - 1)))
    sin = torch.sin(theta)
    safe = sin.abs() > 1e-6
    w0 = torch.where(safe, torch.sin((1 - alpha) * theta) / torch.where(safe, sin, 1.0), torch.full_like(sin, 1 - alpha))
    w1 = torch.where(safe, torch.sin(alpha * theta) / torch.where(safe, sin, 1.0), torch.full_like(sin, alpha))
    return w0 * z0 + w1 * z1


# ----------------------------------------------------------------------------- memorisation
def nearest_distances(x: Tensor, bank: Tensor, chunk: int = 4096) -> tuple[Tensor, Tensor]:
    """For each image of ``x``: the Euclidean distance to its nearest image in ``bank`` and that image's index."""
    q = x.flatten(1).double()
    best = torch.full((q.shape[0],), float("inf"), dtype=torch.float64)
    idx = torch.zeros(q.shape[0], dtype=torch.long)
    for start in range(0, bank.shape[0], chunk):
        b = bank[start:start + chunk].flatten(1).double()
        d = torch.cdist(q, b)
        m, i = d.min(1)
        better = m < best
        best, idx = torch.where(better, m, best), torch.where(better, i + start, idx)
    return best.float(), idx
