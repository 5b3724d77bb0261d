"""The noise-prediction network ε_θ(x_t, t): a small UNet for 28×28 images.

    x_t (B,1,28,28) ─ init conv ─ down1 (28) ─ down2 (14) ─ mid (7) ─ up2 (14) ─ up1 (28) ─ out conv ─ ε̂
                                    └──────────── skip ──────────────────┘        │
                                                 └──────────── skip ──────────────┘
    t ─ sinusoidal embedding ─ MLP ─ emb, added inside every ConvBlock.

With ``input_skip=True`` (the ``laptop`` profile's UNet; the shipped checkpoints have none) the network also passes
its input straight to its output, scaled by a number it learns for each t (in ``UNet_cond``, each t and label):
ε_θ(x_t, t) = UNet(x_t, t) + s(t)·x_t.
Why: every path from x_t to the output passes a GroupNorm, which subtracts its groups' means, so the UNet has no
linear path for the mean of x_t over an image (it survives only as differences between a group's channels,
divided by a data-dependent std).  Near t = T, where ε ≈ x_t, that mean (of 784 independent N(0, 1) values: std
1/28) is part of the answer; a network that misses it at every step lets the sampler multiply the mean of x_T by
about ∏ 1/sqrt(α_t) = 1/sqrt(ᾱ_T) ≈ 157 on the way to x_0.  A narrow (ch=16) or briefly trained UNet misses it and
its samples drift to a grey blur (benchmarks/RESULTS_NOTES.md, "The laptop recipe search (issue 24): what it
found"); with s(t), zero at the start, it learns it.  s plays the role of c_skip in Karras et al. 2022's
preconditioning (D = c_skip·x + c_out·F), here on the ε output, learned instead of fixed, without c_in/c_out.

Notebook 3 (a walk-through, graded nowhere: always public).  ``UNet_cond`` (notebook 6) is in ``conditional.py``.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["SinusoidalPositionEmbeddings", "ConvBlock", "Unet"]


class SinusoidalPositionEmbeddings(nn.Module):
    """t -> [sin(t·ω_k), cos(t·ω_k)] with ω_k = 10000^(-k/(d/2-1)), as in the Transformer."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, t: Tensor) -> Tensor:
        half = self.dim // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device) / (half - 1))
        args = t.float()[:, None] * freqs[None, :]
        return torch.cat([args.sin(), args.cos()], dim=-1)


class ConvBlock(nn.Module):
    """Two 3×3 convolutions with GroupNorm and SiLU; the embedding is added in between."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, groups: int = 8):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm1 = nn.GroupNorm(groups, out_ch)
        self.emb_proj = nn.Linear(emb_dim, out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.act = nn.SiLU()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.act(self.norm1(self.conv1(x)))
        h = h + self.emb_proj(emb)[:, :, None, None]       # (B, C) -> (B, C, 1, 1), same shift at every pixel
        return self.act(self.norm2(self.conv2(h)))


class Unet(nn.Module):
    """ε_θ(x_t, t) for 1×28×28 images.  ``ch`` sets the width (ch=32 is the course's model); ``input_skip`` adds
    s(t)·x_t to the output (see the module's docstring)."""

    def __init__(self, ch: int = 32, in_ch: int = 1, emb_dim: int | None = None, input_skip: bool = False):
        super().__init__()
        emb_dim = emb_dim or 4 * ch
        self.time_mlp = nn.Sequential(
            SinusoidalPositionEmbeddings(ch),
            nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim),
        )
        self.init_conv = nn.Conv2d(in_ch, ch, 3, padding=1)
        self.down1 = ConvBlock(ch, ch, emb_dim)                  # 28×28
        self.pool1 = nn.Conv2d(ch, ch, 4, stride=2, padding=1)   # -> 14×14
        self.down2 = ConvBlock(ch, 2 * ch, emb_dim)              # 14×14
        self.pool2 = nn.Conv2d(2 * ch, 2 * ch, 4, stride=2, padding=1)  # -> 7×7
        self.mid = ConvBlock(2 * ch, 2 * ch, emb_dim)            # 7×7
        self.upsample2 = nn.ConvTranspose2d(2 * ch, 2 * ch, 4, stride=2, padding=1)  # -> 14×14
        self.up2 = ConvBlock(4 * ch, ch, emb_dim)                # concat skip from down2
        self.upsample1 = nn.ConvTranspose2d(ch, ch, 4, stride=2, padding=1)  # -> 28×28
        self.up1 = ConvBlock(2 * ch, ch, emb_dim)                # concat skip from down1
        self.out_conv = nn.Conv2d(ch, in_ch, 1)
        self.input_skip = nn.Linear(emb_dim, 1) if input_skip else None  # emb -> s(t), one number per image
        if self.input_skip is not None:
            nn.init.zeros_(self.input_skip.weight)                    # s = 0 at the start: the plain UNet
            nn.init.zeros_(self.input_skip.bias)

    def backbone(self, x: Tensor, emb: Tensor) -> Tensor:
        """The UNet proper: every ConvBlock receives the conditioning vector ``emb``."""
        h0 = self.init_conv(x)
        h1 = self.down1(h0, emb)
        h2 = self.down2(self.pool1(h1), emb)
        h = self.mid(self.pool2(h2), emb)
        h = self.up2(torch.cat([self.upsample2(h), h2], dim=1), emb)
        h = self.up1(torch.cat([self.upsample1(h), h1], dim=1), emb)
        out = self.out_conv(h)
        if self.input_skip is not None:
            out = out + self.input_skip(emb)[:, :, None, None] * x      # + s(t)·x_t
        return out

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        _check_input(x, t)
        return self.backbone(x, self.time_mlp(t))


def _check_input(x: Tensor, t: Tensor) -> None:
    if x.dim() != 4 or x.shape[-2:] != (28, 28):
        raise ValueError(f"expected images of shape (B, C, 28, 28); got {tuple(x.shape)}. "
                         "Add a channel axis with x.unsqueeze(1) if you have (B, 28, 28).")
    if t.dim() != 1 or t.shape[0] != x.shape[0]:
        raise ValueError(f"t must be a 1-D tensor with one timestep per image ({x.shape[0]}); got shape {tuple(t.shape)}.")
