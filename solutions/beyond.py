"""Notebook 7 (Beyond DDPM): a better noise schedule, a faster sampler, and guidance.

* **Cosine schedule** — Nichol & Dhariwal (2021), "Improved Denoising Diffusion Probabilistic Models", eq. 17:

      ᾱ_t = f(t) / f(0),   f(t) = cos²( (t/T + s) / (1 + s) · π/2 ),   β_t = 1 - ᾱ_t / ᾱ_{t-1}  (clipped at 0.999)

* **DDIM** — Song, Meng & Ermon (2021), "Denoising Diffusion Implicit Models", eq. 12: from x_t to any
  earlier x_{t'} with the same trained ε_θ,

      x̂_0     = (x_t - sqrt(1-ᾱ_t) ε_θ) / sqrt(ᾱ_t)                               "predicted x_0"
      x_{t'}  = sqrt(ᾱ_{t'}) x̂_0 + sqrt(1-ᾱ_{t'} - σ_t²) ε_θ + σ_t z             "direction pointing to x_t"
      σ_t(η)  = η sqrt((1-ᾱ_{t'}) / (1-ᾱ_t)) sqrt(1 - ᾱ_t/ᾱ_{t'})

  η = 0 is deterministic (DDIM proper); η = 1 with t' = t-1 is the DDPM posterior q(x_{t-1} | x_t, x̂_0),
  whose variance is β̃_t = (1-ᾱ_{t-1}) / (1-ᾱ_t) · β_t.  Skipping steps (50 instead of 1000) is what makes it fast.

* **Classifier-free guidance** — Ho & Salimans (2022): one network trained with the label dropped to a
  *null class* some of the time learns both ε_θ(x_t, t, y) and ε_θ(x_t, t, ∅); sample with

      ε̃ = ε_θ(x_t, t, ∅) + w (ε_θ(x_t, t, y) - ε_θ(x_t, t, ∅))

  w = 1 is the plain conditional model, w > 1 pushes samples towards what makes them look like class y.

* **DPM-Solver++(2M)** — Lu et al. (2022), Algorithm 2: a second-order multistep solver of the same model's
  probability-flow ODE, on timesteps evenly spaced in λ = log(α/σ) (notebook 8 compares it with flow matching).

Index ``t`` runs over ``0 .. T-1`` (the papers' 1 .. T), as in the rest of ``solutions``.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .diffusion import Schedule, _schedule_for, default_schedule
from .helpers import extract
from .sampling import _sample_loop, ddpm_reverse_step

__all__ = ["cosine_alpha_bars", "cosine_beta_schedule", "guided_eps", "ddim_step", "ddim_sample_loop", "p_sample_loop_cfg",
           "ddim_timesteps", "ddim_sigma", "logsnr_timesteps", "dpm_solver_2m_sample_loop"]


# ----------------------------------------------------------------------------- cosine schedule
def cosine_alpha_bars(timesteps: int, s: float = 0.008) -> Tensor:
    """ᾱ_0 .. ᾱ_T of the cosine schedule in float64 (T + 1 values, ᾱ_0 = 1): ᾱ_t = f(t) / f(0)."""
    if timesteps < 1:
        raise ValueError(f"timesteps must be a positive number of diffusion steps, got {timesteps}.")
    t = torch.arange(timesteps + 1, dtype=torch.float64)
    f = torch.cos((t / timesteps + s) / (1 + s) * math.pi / 2) ** 2          # f(t), t = 0 .. T
    return f / f[0]


def cosine_beta_schedule(timesteps: int, s: float = 0.008, max_beta: float = 0.999,
                         dtype: torch.dtype = torch.float32) -> Tensor:
    """β_1 .. β_T of the cosine schedule (Nichol & Dhariwal 2021): ᾱ_t follows cos², computed in float64.

    ``s`` keeps β_1 from being tiny; β is clipped at ``max_beta`` to avoid the singularity at t = T.
    """
    alpha_bars = cosine_alpha_bars(timesteps, s)                             # ᾱ_t = f(t) / f(0)
    betas = 1 - alpha_bars[1:] / alpha_bars[:-1]                             # β_t = 1 - ᾱ_t / ᾱ_{t-1}
    return betas.clamp(max=max_beta).to(dtype)


# ----------------------------------------------------------------------------- classifier-free guidance
def guided_eps(eps_cond: Tensor, eps_uncond: Tensor, w: float) -> Tensor:
    """ε̃ = ε_u + w (ε_c - ε_u)   (Ho & Salimans 2022).

    w = 0: unconditional; w = 1: conditional (no guidance); w > 1: guided.  The paper writes
    ε̃ = ε_c + w' (ε_c - ε_u) = (1 + w') ε_c - w' ε_u, which is this with w = w' + 1.
    """
    return eps_uncond + w * (eps_cond - eps_uncond)


def _model_eps(model: nn.Module, x: Tensor, t: Tensor, y: Tensor | None, w: float | None,
               null_class: int | None) -> Tensor:
    """ε_θ(x_t, t), ε_θ(x_t, t, y), or the guided ε̃ (both passes in one batch of 2B)."""
    if y is None:
        return model(x, t)
    if w is None or w == 1:
        return model(x, t, y)
    return _guided_model_eps(model, x, t, y, w, null_class)


def _guided_model_eps(model: nn.Module, x: Tensor, t: Tensor, y: Tensor, w: float, null_class: int) -> Tensor:
    """The guided ε̃: ε_θ(x_t, t, y) and ε_θ(x_t, t, null) from one call on a batch of 2B, mixed with ``guided_eps``.
    (Notebook 8's guided_velocity does this for a velocity model, so its bundle ships a stub in its place:
    ``solutions.REFUSED``.)"""
    null = torch.full_like(y, null_class)
    eps_c, eps_u = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, null])).chunk(2)
    return guided_eps(eps_c, eps_u, w)


def _check_guidance(shape, y, w, null_class, device):
    if y is None:
        if w is not None:
            raise ValueError("guidance (w) needs labels y: it mixes ε_θ(x, t, y) with ε_θ(x, t, null).")
        return None
    if y.shape != (shape[0],):
        raise ValueError(f"y must hold one label per image, shape ({shape[0]},); got {tuple(y.shape)}.")
    if w is not None and w != 1 and null_class is None:
        raise ValueError("guidance with w != 1 needs null_class: the label the model was trained with as 'no label'.")
    return y.to(device)


# ----------------------------------------------------------------------------- DDIM
def _alpha_bar_at(alpha_bars: Tensor, t, like: Tensor) -> Tensor:
    """ᾱ_t broadcast to ``like`` (per image when t is a tensor); t = -1 means ᾱ = 1 (the clean image)."""
    t = torch.as_tensor(t, device=alpha_bars.device).long()
    if t.dim() == 0:
        t = t.expand(like.shape[0])
    padded = torch.cat([alpha_bars.new_ones(1), alpha_bars])               # index t + 1; t = -1 -> 1
    return extract(padded, t + 1, like.shape)


def ddim_sigma(alpha_bar_t: Tensor, alpha_bar_prev: Tensor, eta: float) -> Tensor:
    """σ_t(η) = η sqrt((1-ᾱ_{t'}) / (1-ᾱ_t)) sqrt(1 - ᾱ_t/ᾱ_{t'})   (Song et al. 2021, eq. 16)."""
    return eta * ((1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev)).clamp(min=0).sqrt()


def ddim_step(x_t: Tensor, eps: Tensor, t, t_prev, schedule: Schedule | None = None, eta: float = 0.0,
              noise: Tensor | None = None, clip_x0: bool = False) -> Tensor:
    """One DDIM step from x_t to x_{t_prev} given ε = ε_θ(x_t, t) (Song et al. 2021, eq. 12).

    ``t`` and ``t_prev`` are ints or (B,) long tensors, ``t_prev < t``; ``t_prev = -1`` steps to x_0.
    η = 0: deterministic; η = 1 and t_prev = t - 1: a DDPM step with the posterior variance β̃_t.
    ``clip_x0``: clamp x̂_0 to the data range [-1, 1] and use the ε that fits the clamped x̂_0 (as Ho et al.'s
    and most DDIM code do); it keeps a deterministic trajectory from drifting out of the data range.
    """
    s = _schedule_for(schedule, x_t)
    a_t = _alpha_bar_at(s.alpha_bars, t, x_t)
    a_prev = _alpha_bar_at(s.alpha_bars, t_prev, x_t)
    x0_hat = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()                      # predicted x_0
    if clip_x0:
        x0_hat = x0_hat.clamp(-1, 1)
        eps = (x_t - a_t.sqrt() * x0_hat) / (1 - a_t).sqrt()                 # the ε that gives this x̂_0
    sigma = ddim_sigma(a_t, a_prev, eta)
    direction = (1 - a_prev - sigma ** 2).clamp(min=0).sqrt() * eps          # direction pointing to x_t
    x_prev = a_prev.sqrt() * x0_hat + direction
    if eta == 0:
        return x_prev
    if noise is None:
        noise = torch.randn_like(x_t)
    return x_prev + sigma * noise                                            # random noise σ_t z


def ddim_timesteps(T: int, n_steps: int) -> list[int]:
    """``n_steps`` timesteps evenly spaced from T-1 down to 0 (all of them when n_steps = T)."""
    if not 1 <= n_steps <= T:
        raise ValueError(f"n_steps must be between 1 and T = {T}; got {n_steps}.")
    ts = torch.linspace(T - 1, 0, n_steps, dtype=torch.float64).round().long().tolist()
    return ts if n_steps > 1 else [T - 1]


@torch.inference_mode()
def ddim_sample_loop(model: nn.Module, shape, n_steps: int = 50, eta: float = 0.0, schedule: Schedule | None = None,
                     device=None, seed: int | None = None, y: Tensor | None = None, w: float | None = None,
                     null_class: int | None = None, progress: bool = False, clip_x0: bool = False) -> Tensor:
    """DDIM sampling: x_T ~ N(0, I), then ``n_steps`` DDIM steps on evenly spaced timesteps down to x_0.

    With labels ``y`` the model is called as ε_θ(x, t, y); with ``w`` (and ``null_class``) the ε is guided.
    ``clip_x0`` clamps each x̂_0 to [-1, 1] (see ``ddim_step``).  Measured on the course's small UNet
    (benchmarks/RESULTS.md): η = 1 with 50 steps gives good digits; η = 0 (deterministic) is worse without
    guidance.  Not because a step amplifies ε's error: the factor sqrt(1-ᾱ_t)/sqrt(ᾱ_t) (about 157 at t = 999)
    applies to x̂_0 only, and an error δ in ε reaches x_{t'} multiplied by sqrt(1-ᾱ_{t'}) - sqrt(ᾱ_{t'}/ᾱ_t)
    sqrt(1-ᾱ_t), which on the linear schedule's 50-step grid is about -0.22 at 999 -> 979, -0.11 at 489 -> 469
    and -0.07 near the end.  With η = 0 these errors accumulate along a deterministic trajectory, and no fresh
    noise is added to wash them out.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    schedule = (schedule or default_schedule()).to(device)
    y = _check_guidance(shape, y, w, null_class, device)
    if seed is not None:
        torch.manual_seed(seed)
    was_training = model.training
    model.eval()
    ts = ddim_timesteps(schedule.T, n_steps)
    x = torch.randn(shape, device=device)                                    # x_T ~ N(0, I)
    for i, t in enumerate(tqdm(ts, desc="DDIM", disable=not progress)):
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        tt = torch.full((shape[0],), t, device=device, dtype=torch.long)
        eps = _model_eps(model, x, tt, y, w, null_class)
        x = ddim_step(x, eps, t, t_prev, schedule, eta=eta, clip_x0=clip_x0)
    model.train(was_training)
    return x


# ----------------------------------------------------------------------------- DDPM with guidance
def p_sample_loop_cfg(model: nn.Module, shape, y: Tensor, w: float, null_class: int,
                      schedule: Schedule | None = None, device=None, keep_every: int | None = None,
                      progress: bool = True, seed: int | None = None):
    """Algorithm 2 (DDPM ancestral sampling, all T steps) with the guided ε̃ of classifier-free guidance."""
    device = device if device is not None else next(model.parameters()).device
    y = _check_guidance(shape, y, w, null_class, device)

    @torch.inference_mode()
    def step(x, t, i, s):
        return ddpm_reverse_step(x, _model_eps(model, x, t, y, w, null_class), t, i, schedule=s)

    return _sample_loop(step, model, shape, schedule, device, keep_every, progress, seed)


# ----------------------------------------------------------------------------- DPM-Solver++(2M) (notebook 8 compares it)
def logsnr_timesteps(schedule, n_steps: int) -> list[int]:
    """``n_steps`` distinct timesteps from T-1 down to 0, as evenly spaced in λ_t = log(α_t / σ_t) as integers allow."""
    if not 1 <= n_steps <= schedule.T:
        raise ValueError(f"n_steps must be between 1 and T = {schedule.T}; got {n_steps}.")
    ab = schedule.alpha_bars.double().cpu()
    lam = 0.5 * torch.log(ab / (1 - ab))                                     # decreasing in t
    if n_steps == 1:
        return [schedule.T - 1]
    ts, targets = [], torch.linspace(float(lam[-1]), float(lam[0]), n_steps, dtype=torch.float64)
    for i, target in enumerate(targets.tolist()):
        t = int((lam - target).abs().argmin())
        t = min(t, (ts[-1] - 1) if ts else schedule.T - 1, schedule.T - 1)   # strictly decreasing
        ts.append(max(t, n_steps - 1 - i))                                   # room left for the rest
    return ts


@torch.inference_mode()
def dpm_solver_2m_sample_loop(model: nn.Module, shape, y: Tensor, n_steps: int = 8, w: float | None = None,
                              null_class: int | None = None, schedule=None, device=None,
                              seed: int | None = None, clip_x0: bool = False) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) on the probability-flow ODE of an ε-prediction model.

    With α_t = sqrt(ᾱ_t), σ_t = sqrt(1 - ᾱ_t), λ_t = log(α_t / σ_t) and the data prediction
    x̂_0 = (x_t - σ_t ε̃) / α_t, one step from t_{i-1} to t_i (h_i = λ_{t_i} - λ_{t_{i-1}}, r_i = h_{i-1} / h_i):

        D_i = (1 + 1/(2 r_i)) x̂_0(t_{i-1}) - 1/(2 r_i) x̂_0(t_{i-2})        (D_1 = x̂_0(t_0): a DDIM step)
        x_{t_i} = (σ_{t_i} / σ_{t_{i-1}}) x_{t_{i-1}} - α_{t_i} (e^{-h_i} - 1) D_i

    One network call per step, on timesteps evenly spaced in λ (``logsnr_timesteps``; the paper's choice for
    small images: on DDIM's grid, evenly spaced in t, the last steps span most of λ's range and the
    extrapolation overshoots), the last one landing on the clean x̂_0.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    schedule = (schedule or default_schedule()).to(device)
    y = _check_guidance(shape, y, w, null_class, device)
    if seed is not None:
        torch.manual_seed(seed)
    was_training = model.training
    model.eval()
    ts = logsnr_timesteps(schedule, n_steps) + [-1]                          # -1: the clean image (ᾱ = 1)
    x = torch.randn(shape, device=device)                                    # x_T ~ N(0, I)

    def coefs(t):
        a = _alpha_bar_at(schedule.alpha_bars.double(), t, x).float()
        alpha, sigma = a.sqrt(), (1 - a).sqrt()
        return alpha, sigma, torch.log(alpha) - torch.log(sigma)             # λ = log(α/σ); -1 -> +inf

    x0_prev, h_prev = None, None
    for i, (t, t_next) in enumerate(zip(ts[:-1], ts[1:])):
        alpha, sigma, lam = coefs(t)
        alpha_n, sigma_n, lam_n = coefs(t_next)
        tt = torch.full((shape[0],), t, device=device, dtype=torch.long)
        x0 = (x - sigma * _model_eps(model, x, tt, y, w, null_class)) / alpha   # data prediction x̂_0
        if clip_x0:
            x0 = x0.clamp(-1, 1)                                             # the data range, as DDIM's clip_x0
        if t_next < 0:                                                       # the last step lands on x̂_0
            x = x0
            break
        h = lam_n - lam
        if x0_prev is None:
            d = x0                                                           # first step: first order (DDIM's)
        else:
            r = h_prev / h
            d = (1 + 1 / (2 * r)) * x0 - 1 / (2 * r) * x0_prev
        x = sigma_n / sigma * x - alpha_n * torch.expm1(-h) * d
        x0_prev, h_prev = x0, h
    model.train(was_training)
    return x
