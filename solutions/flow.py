"""Notebook 8 (Flow matching): a straight path from data to noise, its velocity, and few-step samplers.

Convention, used everywhere in this module and in notebook 8: **t = 0 is data, t = 1 is noise**
(the same direction as DDPM's t, so x_0 is still the clean image and x_1 = ε is pure noise).

* **The linear interpolant** — conditional flow matching with the optimal-transport path (Lipman et al. 2023,
  "Flow Matching for Generative Modeling", eq. 20–23, σ_min = 0), which is rectified flow's path (Liu et al.
  2023, "Flow Straight and Fast", eq. 1):

      x_t = (1 - t) x_0 + t ε,          x_0 ~ data,  ε ~ N(0, I),  t ~ U[0, 1]

* **The velocity target** — the time derivative of that path, the same for every t:

      u_t = d x_t / dt = ε - x_0

  and the loss ‖v_θ(x_t, t, y) - (ε - x_0)‖².  Its minimiser is v(x, t) = E[ε - x_0 | x_t = x], the velocity
  field whose ODE  dx/dt = v(x, t)  carries N(0, I) at t = 1 to the data at t = 0.

* **Sampling** integrates that ODE backwards, from t = 1 to t = 0 (so the step h = t_next - t is negative):

      Euler:  x_{t+h} = x_t + h v(x_t, t)
      Heun:   x̃ = x_t + h v(x_t, t),   x_{t+h} = x_t + h/2 (v(x_t, t) + v(x̃, t+h))      (second order)

* **Classifier-free guidance** on the velocity (Ho & Salimans 2022, applied to v instead of ε):

      ṽ = v_θ(x_t, t, ∅) + w (v_θ(x_t, t, y) - v_θ(x_t, t, ∅))

The flow model is the course's ``UNet_cond`` unchanged (no new class): its sinusoidal time embedding was built
for timesteps 0 .. 999, so a continuous t in [0, 1] goes in as ``TIME_SCALE * t`` — in one place, ``velocity``.

The diffusion model's second-order ODE solver, DPM-Solver++(2M), is in ``beyond.py`` (stage 07, so notebook 8 can
use it while its own answers are not public).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .beyond import _check_guidance

__all__ = ["TIME_SCALE", "flow_interpolant", "velocity_target", "flow_matching_loss", "velocity",
           "guided_velocity", "flow_velocity", "euler_step", "heun_step", "flow_times", "flow_sample_loop",
           "network_calls", "reflow_pairs", "eps_to_velocity", "mixture_velocity", "straightness"]

TIME_SCALE = 1000.0          # t in [0, 1] -> the embedding's range 0 .. 1000 (what UNet_cond was built for)


# ----------------------------------------------------------------------------- the path and its velocity
def _per_image(t, like: Tensor) -> Tensor:
    """t (a number or a (B,) tensor) shaped (B, 1, 1, 1) to broadcast over images like ``like``."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if t.dim() == 0:
        t = t.expand(like.shape[0])
    return t.reshape(-1, *([1] * (like.dim() - 1)))


def flow_interpolant(x_0: Tensor, noise: Tensor, t) -> Tensor:
    """x_t = (1 - t) x_0 + t ε   (t = 0: the data, t = 1: the noise)."""
    t = _per_image(t, x_0)
    return (1 - t) * x_0 + t * noise


def velocity_target(x_0: Tensor, noise: Tensor) -> Tensor:
    """u_t = d x_t / dt = ε - x_0   (the same at every t: the path is a straight line)."""
    return noise - x_0


def velocity(model: nn.Module, x_t: Tensor, t: Tensor, y: Tensor) -> Tensor:
    """v_θ(x_t, t, y): the UNet called with its time input scaled to the embedding's range."""
    return model(x_t, TIME_SCALE * t, y)


def flow_matching_loss(model: nn.Module, x_0: Tensor, t: Tensor, y: Tensor, noise: Tensor | None = None) -> Tensor:
    """‖v_θ(x_t, t, y) - (ε - x_0)‖²  (mean over pixels and batch), t a (B,) float tensor in [0, 1]."""
    if noise is None:
        noise = torch.randn_like(x_0)
    x_t = flow_interpolant(x_0, noise, t)
    return F.mse_loss(velocity(model, x_t, t, y), velocity_target(x_0, noise))


# ----------------------------------------------------------------------------- guidance
def guided_velocity(v_cond: Tensor, v_uncond: Tensor, w: float) -> Tensor:
    """ṽ = v_u + w (v_c - v_u)   (w = 0: unconditional, 1: conditional, > 1: guided)."""
    return v_uncond + w * (v_cond - v_uncond)


def flow_velocity(model: nn.Module, x_t: Tensor, t, y: Tensor, w: float | None = None,
                  null_class: int | None = None) -> Tensor:
    """v_θ(x_t, t, y), or with ``w`` the guided ṽ: the conditional and the null label in ONE call of batch 2B."""
    t = torch.as_tensor(t, dtype=x_t.dtype, device=x_t.device).expand(x_t.shape[0])
    if w is None or w == 1:
        return velocity(model, x_t, t, y)
    null = torch.full_like(y, null_class)
    v_c, v_u = velocity(model, torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([y, null])).chunk(2)
    return guided_velocity(v_c, v_u, w)


# ----------------------------------------------------------------------------- ODE steps
def euler_step(x_t: Tensor, v: Tensor, t: float, t_next: float) -> Tensor:
    """x_{t_next} = x_t + (t_next - t) v(x_t, t)   (t_next < t when sampling)."""
    return x_t + (t_next - t) * v


def heun_step(velocity_fn, x_t: Tensor, t: float, t_next: float, v: Tensor | None = None) -> Tensor:
    """Heun's method (the trapezoid rule with an Euler predictor), second order:

        x̃ = x_t + h v(x_t, t),   x_{t_next} = x_t + h/2 (v(x_t, t) + v(x̃, t_next)),   h = t_next - t

    ``velocity_fn(x, t)`` is the field; ``v`` (optional) is v(x_t, t) if already known.
    """
    h = t_next - t
    v = velocity_fn(x_t, t) if v is None else v
    x_pred = euler_step(x_t, v, t, t_next)                                   # predictor
    return x_t + h / 2 * (v + velocity_fn(x_pred, t_next))                  # corrector


def flow_times(n_steps: int) -> list[float]:
    """n_steps + 1 evenly spaced times 1 = t_0 > ... > t_N = 0."""
    if n_steps < 1:
        raise ValueError(f"n_steps must be a positive number of ODE steps; got {n_steps}.")
    return torch.linspace(1, 0, n_steps + 1, dtype=torch.float64).tolist()


def network_calls(sampler: str, n_steps: int) -> int:
    """Network evaluations of a sampler with guidance batched (ε or v for y and ∅ in one call of batch 2B):
    Euler, DDIM, DPM-Solver++(2M): one per step; Heun: two per step, except the last (x̃ at t = 0 is not needed,
    the last step is Euler, as in Karras et al. 2022, Algorithm 1)."""
    return 2 * n_steps - 1 if sampler == "heun" else n_steps


@torch.inference_mode()
def flow_sample_loop(model: nn.Module, shape, y: Tensor, n_steps: int = 8, method: str = "euler",
                     w: float | None = None, null_class: int | None = None, device=None,
                     seed: int | None = None, noise: Tensor | None = None) -> Tensor:
    """Sample by integrating dx/dt = ṽ(x, t, y) from t = 1 (x_1 = ε ~ N(0, I)) to t = 0 in ``n_steps`` steps.

    ``method``: ``"euler"`` (1 network call per step) or ``"heun"`` (2 per step; the last step is Euler).
    """
    if method not in ("euler", "heun"):
        raise ValueError(f"method must be 'euler' or 'heun'; got {method!r}.")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    y = _check_guidance(shape, y, w, null_class, device)
    if seed is not None:
        torch.manual_seed(seed)
    x = torch.randn(shape, device=device) if noise is None else noise.to(device)    # x_1 = ε
    was_training = model.training
    model.eval()

    def field(x_, t_):
        return flow_velocity(model, x_, t_, y, w, null_class)

    ts = flow_times(n_steps)
    for t, t_next in zip(ts[:-1], ts[1:]):
        if method == "heun" and t_next > 0:
            x = heun_step(field, x, t, t_next)
        else:
            x = euler_step(x, field(x, t), t, t_next)
    model.train(was_training)
    return x


# ----------------------------------------------------------------------------- reflow (rectified flow's second round)
@torch.inference_mode()
def reflow_pairs(model: nn.Module, n_pairs: int, n_steps: int = 8, method: str = "heun", w: float | None = None,
                 null_class: int | None = None, n_classes: int = 10, batch: int = 250, seed: int = 0,
                 autocast=None, progress=None) -> tuple[Tensor, Tensor, Tensor]:
    """The coupling of Liu et al. 2023 ("Flow Straight and Fast", Algorithm 1, the reflow step): draw noise z and
    a label y, integrate the model's (guided) ODE from z to x = ODE(z, y), and return ``(z, x, y)``.

    Flow matching on these pairs (x_t = (1 - t) x + t z, target z - x) learns a flow whose paths are straighter,
    so that few Euler steps (one, ideally) follow them.  Labels are balanced (``n_classes`` digits, shuffled);
    x is clipped to the data's range [-1, 1].  ``autocast`` (a context manager, e.g. bf16) wraps each batch;
    ``progress(done, total)`` is called after each batch."""
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    y = (torch.arange(n_pairs) % n_classes)[torch.randperm(n_pairs, generator=gen)]
    z = torch.randn((n_pairs, 1, 28, 28), generator=gen)
    xs = []
    for i in range(0, n_pairs, batch):
        with autocast if autocast is not None else torch.autocast(device.type, enabled=False):
            x = flow_sample_loop(model, z[i:i + batch].shape, y[i:i + batch].to(device), n_steps=n_steps,
                                 method=method, w=w, null_class=null_class, noise=z[i:i + batch])
        xs.append(x.float().clamp(-1, 1).cpu())
        if progress is not None:
            progress(min(i + batch, n_pairs), n_pairs)
    return z, torch.cat(xs), y


# ----------------------------------------------------------------------------- one view of the parameterisations
# (notebook 8, parts A and B: a Gaussian path x_t = α_t x_0 + σ_t ε, of which DDPM's (√ᾱ, √(1-ᾱ)) and the flow's
# (1 - t, t) are two choices)
def eps_to_velocity(x_t: Tensor, eps: Tensor, alpha, sigma, d_alpha, d_sigma) -> Tensor:
    """The velocity d x_t / dt that a noise prediction ε̂ implies on the path x_t = α x_0 + σ ε:

        x̂_0 = (x_t - σ ε̂) / α,        v = α' x̂_0 + σ' ε̂

    (α, σ and their time derivatives α', σ' are numbers or tensors that broadcast against x_t).  For the flow's
    path (α, σ) = (1 - t, t) it is ε̂ - x̂_0."""
    x0_hat = (x_t - sigma * eps) / alpha
    return d_alpha * x0_hat + d_sigma * eps


def mixture_velocity(x: Tensor, t: float, means: Tensor, std: float, weights: Tensor) -> Tensor:
    """The exact flow velocity v(x, t) = E[ε - x_0 | x_t = x] on the path x_t = (1 - t) x_0 + t ε, for data drawn
    from the isotropic Gaussian mixture Σ_k w_k N(μ_k, std² I).  x (N, D), means (K, D), weights (K,), 0 < t <= 1.

    Given the component k, x_t ~ N((1 - t) μ_k, v I) with v = (1 - t)² std² + t², and (x_0, ε) are jointly
    Gaussian with x_t, so E[x_0 | x_t, k] = μ_k + (1 - t) std² / v · (x_t - (1 - t) μ_k) and
    E[ε | x_t, k] = t / v · (x_t - (1 - t) μ_k); the posterior P(k | x_t) weights the components."""
    a, s = 1 - t, t
    var = a ** 2 * std ** 2 + s ** 2
    diff = x[:, None, :] - a * means[None]
    resp = torch.softmax(torch.log(weights) - (diff ** 2).sum(-1) / (2 * var), dim=1)
    x0_k = means[None] + a * std ** 2 / var * diff
    eps_k = s / var * diff
    return (resp[..., None] * (eps_k - x0_k)).sum(1)


def straightness(path: Tensor) -> Tensor:
    """How straight each trajectory is: the distance from its start to its end over the length of the polygon
    through its points (1: a straight segment; smaller: it bends).  path (S + 1, N, D): S + 1 points of N
    trajectories; returns (N,)."""
    chord = (path[-1] - path[0]).norm(dim=-1)
    length = (path[1:] - path[:-1]).norm(dim=-1).sum(0)
    return chord / length
