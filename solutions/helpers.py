"""Helpers every notebook may use, graded nowhere (always public): ``extract`` and the 1-D forward chain of notebook 1."""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["extract", "forward_diffuse_1d"]


def extract(a: Tensor, t: Tensor, x_shape) -> Tensor:
    """Pick ``a[t]`` for every sample in the batch, shaped to broadcast against ``x_shape``.

    a: (T,) per-timestep constants;  t: (B,) integer timesteps  ->  (B, 1, 1, 1) on t's device.
    """
    if t.dim() != 1:
        raise ValueError(f"t must be a 1-D tensor of timesteps, one per image; got shape {tuple(t.shape)}.")
    out = a.to(t.device).gather(0, t.long())
    return out.reshape(t.shape[0], *((1,) * (len(x_shape) - 1)))


def forward_diffuse_1d(x0: Tensor, beta: float, n_steps: int, generator: torch.Generator | None = None) -> Tensor:
    """Run the forward chain x_t = sqrt(1-β) x_{t-1} + sqrt(β) ε step by step.

    Returns a (n_steps + 1, N) tensor holding x_0 .. x_{n_steps}.
    """
    xs = [x0]
    x = x0
    for _ in range(n_steps):
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        x = (1 - beta) ** 0.5 * x + beta ** 0.5 * noise
        xs.append(x)
    return torch.stack(xs)
