"""Every figure the notebooks show.  Images are tensors in [-1, 1], shape (B, 1, 28, 28)."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor
from torchvision.utils import make_grid

__all__ = ["to_display", "imshow", "show_images", "plot_forward_1d", "plot_reverse_1d", "plot_score_1d", "plot_noising_grid",
           "plot_pixel_histogram", "plot_class_grid", "plot_real_vs_generated", "plot_reverse_strip",
           "animate_reverse", "plot_losses"]


def to_display(images: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1], clipped, on the CPU."""
    return ((images.detach().float().cpu() + 1) / 2).clamp(0, 1)


def imshow(grid: Tensor, ax=None, title: str | None = None):
    """Show a (C, H, W) image tensor in [0, 1] (the seed's ``make_grid`` + ``imshow`` pattern)."""
    ax = ax or plt.gca()
    ax.imshow(grid.permute(1, 2, 0).numpy(), cmap="gray", vmin=0, vmax=1)
    ax.axis("off")
    if title:
        ax.set_title(title)
    return ax


def show_images(images: Tensor, nrow: int = 8, title: str | None = None, ax=None, size: float = 0.6):
    """A grid of images in [-1, 1]."""
    if ax is None:
        ncol = min(nrow, images.shape[0])
        _, ax = plt.subplots(figsize=(max(2, ncol * size), max(1.5, math.ceil(images.shape[0] / nrow) * size)))
    imshow(make_grid(to_display(images), nrow=nrow, padding=2, pad_value=1), ax=ax, title=title)
    return ax


def plot_forward_1d(xs: Tensor, steps_to_show=None, title: str | None = None):
    """KDE of x_t at several steps of the 1-D forward chain, against the N(0, 1) density.

    xs: (n_steps + 1, N) from ``solutions.forward_diffuse_1d``.
    """
    import seaborn as sns

    n_steps = xs.shape[0] - 1
    steps_to_show = steps_to_show or sorted({0, n_steps // 10, n_steps // 4, n_steps // 2, n_steps})
    fig, ax = plt.subplots(figsize=(7, 4))
    palette = sns.color_palette("viridis", len(steps_to_show))
    for color, step in zip(palette, steps_to_show):
        sns.kdeplot(xs[step].numpy(), ax=ax, color=color, label=f"t = {step}", bw_adjust=0.5)
    grid = np.linspace(-4, 4, 400)
    ax.plot(grid, np.exp(-grid ** 2 / 2) / np.sqrt(2 * np.pi), "k--", lw=2, label="N(0, 1)")
    ax.set_xlim(-4, 4)
    ax.set_xlabel("x")
    ax.legend()
    ax.set_title(title or "Forward diffusion in 1-D: the distribution of x_t drifts to N(0, 1)")
    return fig


def plot_reverse_1d(panels: dict, steps_to_show, x_lim: float = 4.0):
    """KDE of x_t at ``steps_to_show`` for each run in ``panels`` (title -> (n_steps + 1, N) tensor with x_0 in
    row 0, as ``forward_diffuse_1d`` and ``solutions.score1d.reverse_1d`` return it), side by side, in the style of
    ``plot_forward_1d``; the dashed curve is N(0, 1)."""
    import seaborn as sns

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), sharey=True)
    palette = sns.color_palette("viridis", len(steps_to_show))
    grid = np.linspace(-x_lim, x_lim, 400)
    for ax, (title, xs) in zip(np.atleast_1d(axes), panels.items()):
        for color, step in zip(palette, steps_to_show):
            sns.kdeplot(xs[step].numpy(), ax=ax, color=color, label=f"t = {step}", bw_adjust=0.5)
        ax.plot(grid, np.exp(-grid ** 2 / 2) / np.sqrt(2 * np.pi), "k--", lw=1.5, label="N(0, 1)")
        ax.set_xlim(-x_lim, x_lim)
        ax.set_xlabel("x")
        ax.set_title(title)
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_score_1d(x: Tensor, curves: dict, title: str | None = None):
    """Curves over x (label -> values at ``x``), e.g. the score ∇ log p_t at several t."""
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(7, 3.6))
    palette = sns.color_palette("viridis", len(curves))
    for color, (label, y) in zip(palette, curves.items()):
        ax.plot(x.numpy(), y.numpy(), color=color, label=label)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xlabel("x")
    ax.legend(fontsize=8)
    ax.set_title(title or "")
    fig.tight_layout()
    return fig


def plot_noising_grid(x0: Tensor, timesteps, q_sample, schedule=None, seed: int = 0):
    """Rows: images; columns: x_0 and x_t for each t in ``timesteps``, drawn with ``q_sample``."""
    g = torch.Generator().manual_seed(seed)
    cols = [x0]
    for t in timesteps:
        noise = torch.randn(x0.shape, generator=g)
        tt = torch.full((x0.shape[0],), t, dtype=torch.long)
        cols.append(q_sample(x0, tt, noise) if schedule is None else q_sample(x0, tt, noise, schedule=schedule))
    fig, axes = plt.subplots(1, len(cols), figsize=(1.3 * len(cols), 1.3 * x0.shape[0]))
    for ax, img, label in zip(axes, cols, ["x_0"] + [f"t = {t}" for t in timesteps]):
        imshow(make_grid(to_display(img), nrow=1, padding=2, pad_value=1), ax=ax, title=label)
    fig.tight_layout()
    return fig


def plot_pixel_histogram(x: Tensor, title: str | None = None, bins: int = 100):
    """Histogram of all pixel values of ``x`` against the N(0, 1) density."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    values = x.detach().flatten().cpu().numpy()
    ax.hist(values, bins=bins, density=True, alpha=0.6, label="pixels of x_t")
    grid = np.linspace(-4, 4, 400)
    ax.plot(grid, np.exp(-grid ** 2 / 2) / np.sqrt(2 * np.pi), "k--", lw=2, label="N(0, 1)")
    ax.set_title(title or f"Pixel values: mean {values.mean():+.3f}, std {values.std():.3f}")
    ax.legend()
    return fig


def plot_class_grid(samples: Tensor, labels: Tensor, n_classes: int = 10, per_class: int | None = None,
                    title: str | None = None):
    """One row per class: the samples whose label is that class."""
    rows = [samples[labels.cpu() == c] for c in range(n_classes)]
    per_class = per_class or max(r.shape[0] for r in rows)
    fig, axes = plt.subplots(n_classes, 1, figsize=(0.7 * per_class + 0.6, 0.75 * n_classes))
    for c, (ax, r) in enumerate(zip(np.atleast_1d(axes), rows)):
        if r.shape[0]:
            imshow(make_grid(to_display(r[:per_class]), nrow=per_class, padding=1, pad_value=1), ax=ax)
        ax.axis("off")
        ax.text(-0.02, 0.5, str(c), transform=ax.transAxes, ha="right", va="center", fontsize=12)
    if title:
        fig.suptitle(title)
    return fig


def plot_real_vs_generated(real: Tensor, generated: Tensor, nrow: int = 8, titles=("real", "generated")):
    """Real images and generated ones side by side."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 5))
    show_images(real, nrow=nrow, ax=a, title=titles[0])
    show_images(generated, nrow=nrow, ax=b, title=titles[1])
    fig.tight_layout()
    return fig


def plot_reverse_strip(frames, n_cols: int = 10, image_index: int = 0, show_x0: bool = False):
    """The reverse process as a strip: x_T ... x_0 for one image.

    ``frames``: list of ``(t, x_t)`` or ``(t, x_t, x0_hat)``. With ``show_x0=True`` a second row shows, under
    each x_t, the model's prediction of the clean image x̂_0 at that step (the third element of each frame).
    """
    if show_x0 and any(len(f) < 3 for f in frames):
        raise ValueError("show_x0=True needs frames of (t, x_t, x0_hat); keep x̂_0 in the sampling loop.")
    pick = np.linspace(0, len(frames) - 1, min(n_cols, len(frames))).round().astype(int)
    rows = 2 if show_x0 else 1
    fig, axes = plt.subplots(rows, len(pick), figsize=(1.2 * len(pick), 1.5 * rows), squeeze=False)
    for j, k in enumerate(pick):
        t, x = frames[k][0], frames[k][1]
        imshow(to_display(x[image_index]), ax=axes[0, j], title=f"t={t}")
        if show_x0:
            imshow(to_display(frames[k][2][image_index]), ax=axes[1, j])
    if show_x0:
        axes[0, 0].text(-0.15, 0.5, "x_t", transform=axes[0, 0].transAxes, ha="right", va="center")
        axes[1, 0].text(-0.15, 0.5, "x̂_0", transform=axes[1, 0].transAxes, ha="right", va="center")
    fig.tight_layout()
    return fig


def animate_reverse(frames, nrow: int = 8, interval: int = 80):
    """A matplotlib animation of the reverse process for a batch.

    ``frames``: list of ``(t, x_t)`` (or ``(t, x_t, x0_hat)``). Display it with
    ``display(HTML(anim.to_jshtml()))``: the figure itself is closed so that it is not shown as a still.
    """
    from matplotlib import animation

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.axis("off")
    grids = [make_grid(to_display(f[1]), nrow=nrow, padding=2, pad_value=1).permute(1, 2, 0).numpy() for f in frames]
    im = ax.imshow(grids[0], cmap="gray", vmin=0, vmax=1)
    title = ax.set_title(f"t = {frames[0][0]}")

    def update(k):
        im.set_data(grids[k])
        title.set_text(f"t = {frames[k][0]}")
        return im, title

    anim = animation.FuncAnimation(fig, update, frames=len(grids), interval=interval, blit=False)
    plt.close(fig)
    return anim


def plot_losses(losses, smooth: int = 50, title: str = "Training loss"):
    """Loss per step, with a running mean."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    losses = np.asarray(losses, dtype=float)
    ax.plot(losses, alpha=0.3, label="per step")
    if len(losses) >= smooth > 1:
        ax.plot(np.arange(smooth - 1, len(losses)), np.convolve(losses, np.ones(smooth) / smooth, "valid"),
                label=f"mean of {smooth}")
    ax.set_xlabel("step")
    ax.set_ylabel("MSE(ε, ε_θ)")
    ax.set_title(title)
    ax.legend()
    return fig
