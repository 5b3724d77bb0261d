"""Notebook 1, second part: the score of the noised 1-D data, and walking back to the data with it.

The forward chain of notebook 1 (constant β) has the closed form of notebook 2 with ᾱ_t = (1 - β)^t:

    x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε,    ε ~ N(0, 1).

When x_0 comes from a Gaussian mixture Σ_k w_k N(μ_k, σ_k²), x_t is a Gaussian mixture too (a sum of independent
Gaussians is Gaussian), so its density p_t and its **score** ∇_x log p_t(x) are known exactly:

    p_t(x) = Σ_k w_k N(x; sqrt(ᾱ_t) μ_k, ᾱ_t σ_k² + 1 - ᾱ_t).

Tweedie's formula links the score to the noise a DDPM learns to predict: E[ε | x_t] = -sqrt(1 - ᾱ_t) ∇ log p_t(x_t).

The reverse process, run with the exact score (Song et al. 2021, the variance-preserving SDE
dx = -½ β x dt + sqrt(β) dW and its reverse):

* reverse SDE (DDPM's Algorithm 2 with ε written through the score):
  x_{t-1} = (x_t + β s_t(x_t)) / sqrt(1 - β) + sqrt(β) z
* probability-flow ODE dx/dt = -½ β (x + s_t(x)), one Euler step backwards in t:
  x_{t-1} = x_t + ½ β (x_t + s_t(x_t))
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["mixture_score", "tweedie_eps", "reverse_sde_step", "pf_ode_step", "reverse_1d"]


def mixture_score(x: Tensor, alpha_bar: float, means: Tensor, stds: Tensor, weights: Tensor) -> Tensor:
    """∇_x log p_t(x) for x_0 ~ Σ_k weights_k N(means_k, stds_k²) noised to ᾱ_t = ``alpha_bar``; x of any shape."""
    m = math.sqrt(alpha_bar) * means                       # component means at step t: sqrt(ᾱ_t) μ_k
    v = alpha_bar * stds ** 2 + (1 - alpha_bar)            # component variances: ᾱ_t σ_k² + 1 - ᾱ_t
    x = x.unsqueeze(-1)
    log_joint = torch.log(weights) - 0.5 * (x - m) ** 2 / v - 0.5 * torch.log(2 * math.pi * v)
    resp = torch.softmax(log_joint, dim=-1)                # responsibilities p(k | x_t)
    return (resp * (-(x - m) / v)).sum(-1)                 # Σ_k p(k | x) · ∇ log N_k(x)


def tweedie_eps(score: Tensor, alpha_bar: float) -> Tensor:
    """The noise a perfect DDPM predicts: E[ε | x_t] = -sqrt(1 - ᾱ_t) ∇ log p_t(x_t)."""
    return -math.sqrt(1 - alpha_bar) * score


def reverse_sde_step(x: Tensor, score: Tensor, beta: float, z: Tensor) -> Tensor:
    """x_{t-1} = (x_t + β s_t(x_t)) / sqrt(1 - β) + sqrt(β) z   (Algorithm 2, ε = -sqrt(1 - ᾱ_t) s)."""
    return (x + beta * score) / math.sqrt(1 - beta) + math.sqrt(beta) * z


def pf_ode_step(x: Tensor, score: Tensor, beta: float) -> Tensor:
    """x_{t-1} = x_t + ½ β (x_t + s_t(x_t))   (one Euler step of the probability-flow ODE, backwards in t)."""
    return x + 0.5 * beta * (x + score)


def reverse_1d(x_T: Tensor, score_fn, beta: float, n_steps: int, stochastic: bool,
               generator: torch.Generator | None = None) -> Tensor:
    """Walk x_T back n_steps with ``score_fn(x, alpha_bar)``; every state x_T, ..., x_0 as rows, in time order
    x_0 first (the layout of ``forward_diffuse_1d``, so the same plots apply)."""
    xs = [x_T]
    x = x_T
    for t in range(n_steps, 0, -1):
        s = score_fn(x, (1 - beta) ** t)                   # ᾱ_t = (1 - β)^t for a constant β
        if stochastic:                                     # no noise at the last step, as in Algorithm 2
            z = torch.randn(x.shape, generator=generator) if t > 1 else torch.zeros_like(x)
            x = reverse_sde_step(x, s, beta, z)
        else:
            x = pf_ode_step(x, s, beta)
        xs.append(x)
    return torch.stack(xs[::-1])
