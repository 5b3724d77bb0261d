"""Notebook 8's 2-D lab (part B): a ring of Gaussians, a small MLP of (x, t), its training loop, an Euler integrator
that keeps every point of a trajectory, the sliced Wasserstein distance and the lab's plots.

Everything here is made from torch (nothing is downloaded) and trains in seconds on a CPU.  The notebook's
convention: t = 0 is the data, t = 1 the noise.  The quantities the notebook asks for (the conversion ε̂ -> v,
the exact velocity of the mixture, the straightness of a path) are the student's own functions, passed in.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import matplotlib.pyplot as plt
import torch
from torch import Tensor, nn

__all__ = ["Mixture", "ring_of_gaussians", "TimeMLP", "train_2d", "integrate", "sliced_wasserstein",
           "plot_fields", "plot_paths", "plot_distances"]


# --------------------------------------------------------------------------- the data
@dataclass(frozen=True)
class Mixture:
    """An isotropic Gaussian mixture in 2-D: Σ_k weights[k] N(means[k], std² I)."""
    means: Tensor           # (K, 2)
    std: float
    weights: Tensor         # (K,), summing to 1

    def sample(self, n: int, seed: int = 0) -> Tensor:
        """n points (n, 2), the same for the same seed."""
        g = torch.Generator().manual_seed(seed)
        k = torch.multinomial(self.weights, n, replacement=True, generator=g)
        return self.means[k] + self.std * torch.randn(n, 2, generator=g)


def ring_of_gaussians(k: int = 8, radius: float = 2.0, std: float = 0.15) -> Mixture:
    """k equal Gaussians of standard deviation ``std`` evenly spaced on a circle of ``radius``."""
    angle = torch.arange(k) * 2 * math.pi / k
    return Mixture(torch.stack([angle.cos(), angle.sin()], 1) * radius, float(std), torch.full((k,), 1.0 / k))


# --------------------------------------------------------------------------- the network and its training
class TimeMLP(nn.Module):
    """f(x, t): x (N, 2), t (N,) a time in [0, 1] -> (N, 2).  The time enters as t and sin/cos features."""

    def __init__(self, hidden: int = 128, n_freq: int = 4):
        super().__init__()
        self.register_buffer("freq", math.pi * 2.0 ** torch.arange(n_freq, dtype=torch.float32))
        self.net = nn.Sequential(nn.Linear(2 + 1 + 2 * n_freq, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 2))

    def forward(self, x: Tensor, t) -> Tensor:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(x.shape[0]).reshape(-1, 1)
        ft = t * self.freq
        return self.net(torch.cat([x, t, ft.sin(), ft.cos()], 1))


def train_2d(model: nn.Module, loss_fn: Callable[[nn.Module, Tensor], Tensor], batches: Callable[[int], Tensor],
             steps: int, lr: float = 2e-3, seed: int = 0) -> list[float]:
    """``steps`` Adam steps of ``loss_fn(model, batches(step))`` with a cosine learning rate from ``lr`` to 0;
    prints its time and returns the losses."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    losses, start = [], time.time()
    model.train()
    for step in range(steps):
        loss = loss_fn(model, batches(step))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    tail = sum(losses[-100:]) / len(losses[-100:])
    print(f"{steps} steps in {time.time() - start:.1f} s; loss {losses[0]:.3f} -> {tail:.3f} (mean of the last 100)")
    return losses


# --------------------------------------------------------------------------- ODEs and distances
@torch.no_grad()
def integrate(field: Callable[[Tensor, float], Tensor], x: Tensor, times) -> Tensor:
    """Euler's method for dx/dt = field(x, t) through ``times`` (t_0, t_1, ...); every point: (len(times), N, 2)."""
    times = [float(t) for t in times]
    path = [x]
    for t, t_next in zip(times[:-1], times[1:]):
        x = x + (t_next - t) * field(x, t)
        path.append(x)
    return torch.stack(path)


def sliced_wasserstein(a: Tensor, b: Tensor, n_proj: int = 256, seed: int = 0) -> float:
    """The sliced 2-Wasserstein distance between two equal-sized point clouds: the root mean square, over random
    directions, of the distance between the sorted projections."""
    if a.shape != b.shape:
        raise ValueError(f"the two clouds must have the same shape; got {tuple(a.shape)} and {tuple(b.shape)}.")
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(a.shape[1], n_proj, generator=g, dtype=torch.float64)
    d = d / d.norm(dim=0)
    pa, pb = (a.double() @ d).sort(0).values, (b.double() @ d).sort(0).values
    return float(((pa - pb) ** 2).mean().sqrt())


# --------------------------------------------------------------------------- plots
def plot_fields(fields: dict, times, lim: float = 3.0, n: int = 13, data: Tensor | None = None):
    """One row per field, one column per time: arrows of -field(x, t) on an n x n grid (the way a point moves when
    sampling runs from t = 1 to t = 0), the same arrow scale down each column (set by the first row's arrows, so a
    field much larger than the first row's shows long arrows).  ``fields``: name -> f(x, t)."""
    g = torch.linspace(-lim, lim, n)
    grid = torch.stack(torch.meshgrid(g, g, indexing="xy"), -1).reshape(-1, 2)
    with torch.no_grad():
        arrows = {name: [-f(grid, t) for t in times] for name, f in fields.items()}
    fig, axes = plt.subplots(len(fields), len(times), figsize=(1.9 * len(times), 1.9 * len(fields)), squeeze=False)
    first = next(iter(arrows.values()))
    for j, t in enumerate(times):          # the first row's 90th percentile arrow is 0.8 grid cells long in its column
        scale = float(first[j].norm(dim=1).quantile(0.9)) / (0.8 * 2 * lim / (n - 1)) + 1e-12
        for i, (name, a) in enumerate(arrows.items()):
            ax = axes[i, j]
            if data is not None:
                ax.scatter(data[:, 0], data[:, 1], s=1, c="0.8")
            ax.quiver(grid[:, 0], grid[:, 1], a[j][:, 0], a[j][:, 1], angles="xy", scale_units="xy",
                      scale=scale, width=0.008)
            ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xticks=[], yticks=[], aspect="equal")
            if i == 0:
                ax.set_title(f"t = {t:.2f}", fontsize=9)
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
    plt.tight_layout()
    plt.show()


def plot_paths(paths: dict, data: Tensor | None = None, lim: float = 3.2):
    """One panel per sampler: its trajectories (S + 1, N, 2) from the start (o) to the end (x)."""
    fig, axes = plt.subplots(1, len(paths), figsize=(2.6 * len(paths), 2.7), squeeze=False)
    for ax, (name, p) in zip(axes[0], paths.items()):
        if data is not None:
            ax.scatter(data[:, 0], data[:, 1], s=1, c="0.8")
        ax.plot(p[:, :, 0], p[:, :, 1], lw=0.7, alpha=0.8)
        ax.scatter(p[0, :, 0], p[0, :, 1], s=8, marker="o", c="k")
        ax.scatter(p[-1, :, 0], p[-1, :, 1], s=12, marker="x", c="r")
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xticks=[], yticks=[], aspect="equal", title=name)
        ax.title.set_fontsize(9)
    plt.tight_layout()
    plt.show()


def plot_distances(table: dict, floor: float | None = None):
    """Sliced Wasserstein distance to the data against the number of steps, one line per sampler."""
    fig, ax = plt.subplots(figsize=(4.6, 2.8))
    for name, rows in table.items():
        ax.plot([n for n, _ in rows], [d for _, d in rows], "o-", label=name)
    if floor is not None:
        ax.axhline(floor, color="gray", ls=":", label="two samples of the data")
    ax.set(xscale="log", yscale="log", xlabel="Euler steps (network calls)", ylabel="sliced Wasserstein")
    ax.set_xticks(sorted({n for rows in table.values() for n, _ in rows}))
    ax.get_xaxis().set_major_formatter(plt.ScalarFormatter())
    ax.legend(fontsize=7)
    plt.tight_layout()
    plt.show()
