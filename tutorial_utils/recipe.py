"""The course's training recipe: one small object, built from torch's own parts.

    recipe = Recipe(steps=1400, batch_size=128, lr=2e-3, warmup=100, ema=0.995)
    optimizer = recipe.optimizer(model)            # AdamW
    scheduler = recipe.scheduler(optimizer)        # linear warm-up, then cosine decay (torch.optim.lr_scheduler)
    ema = recipe.ema_model(model)                  # torch.optim.swa_utils.AveragedModel with an EMA average
    with recipe.autocast(device): ...              # bf16 autocast where the hardware has it, else a no-op

The notebooks' training loops (notebook 4's ``train_ddpm``, which you complete, and its reference
``solutions.train``, which notebook 6 and the course's trainer ``python -m ddpm_instructor.train`` run) take
these four parts; the profiles (``tutorial_utils.runtime``) and the shipped checkpoints
(``tutorial_utils.checkpoints.PRETRAINED``) name the numbers.  Nothing here is an answer to a notebook.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass

import torch
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, LinearLR, SequentialLR
from torch.optim.swa_utils import AveragedModel

__all__ = ["Recipe", "bf16_supported", "ema_weights", "AMP_ENV"]

AMP_ENV = "DDPM_AMP"   # DDPM_AMP=none forces fp32 (e.g. to time fp32 on a CPU that has bf16 units); bf16 is the default


def _amp_override() -> str | None:
    value = os.environ.get(AMP_ENV, "").strip().lower()
    if not value:
        return None
    if value not in ("bf16", "none"):
        raise ValueError(f"{AMP_ENV}={value!r}: use {AMP_ENV}=none (fp32) or {AMP_ENV}=bf16 (bf16 autocast where "
                         f"the device has bf16 units), or unset it.")
    return value


def bf16_supported(device: torch.device | str = "cpu") -> bool:
    """Whether bf16 autocast speeds this device up: a CPU with AVX512-BF16 or AMX, a GPU with bf16 units.
    (On other CPUs bf16 is emulated and slower than fp32, so the recipe trains in fp32 there.)"""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
        amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
        return bool((probe and probe()) or (amx and amx()))
    return False


@dataclass(frozen=True)
class Recipe:
    """How a model is trained: the optimiser, the learning-rate schedule, the EMA, the precision.

    * ``steps`` optimiser steps of ``batch_size`` images;
    * AdamW with peak learning rate ``lr`` and ``weight_decay``; the gradient norm clipped to ``grad_clip``
      (0: no clipping);
    * the learning rate rises linearly over ``warmup`` steps, then falls along a cosine to ``min_lr_ratio * lr``;
    * ``ema``: decay d of the exponential moving average θ_EMA ← d θ_EMA + (1 - d) θ kept after every step
      (0: none); the first update copies the weights, later ones cap d at (1 + n)/(10 + n), n the updates so
      far, so the barely trained early weights fade fast;
    * ``amp``: ``"bf16"`` autocasts the forward pass to bfloat16 where the device supports it (weights,
      optimiser state and EMA stay fp32), ``"none"`` keeps fp32;
    * ``p_uncond``, ``null_class``: label dropout for classifier-free guidance (conditional models only):
      each training label is replaced by ``null_class`` with probability ``p_uncond``.
    """
    steps: int
    batch_size: int = 128
    lr: float = 2e-3
    warmup: int = 200
    min_lr_ratio: float = 0.02
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema: float = 0.998
    amp: str = "bf16"
    p_uncond: float = 0.0
    null_class: int | None = None

    def __post_init__(self):
        problems = []
        if not (isinstance(self.steps, int) and self.steps >= 1):
            problems.append(f"steps must be a whole number ≥ 1 (got {self.steps!r})")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            problems.append(f"batch_size must be a whole number ≥ 1 (got {self.batch_size!r})")
        if not self.lr > 0:
            problems.append(f"lr must be > 0 (got {self.lr!r})")
        if not (isinstance(self.warmup, int) and 0 <= self.warmup < self.steps):
            problems.append(f"warmup must be a whole number of steps in [0, steps) = [0, {self.steps}) "
                            f"(got {self.warmup!r})")
        if not 0 <= self.min_lr_ratio <= 1:
            problems.append(f"min_lr_ratio must be in [0, 1] (got {self.min_lr_ratio!r})")
        if not 0 <= self.ema < 1:
            problems.append(f"ema must be a decay in [0, 1), 0 for none (got {self.ema!r})")
        if self.amp not in ("bf16", "none"):
            problems.append(f"amp must be 'bf16' or 'none' (got {self.amp!r})")
        if not 0 <= self.p_uncond < 1:
            problems.append(f"p_uncond must be a probability in [0, 1) (got {self.p_uncond!r})")
        if self.p_uncond and self.null_class is None:
            problems.append("p_uncond > 0 needs null_class, the label that means 'no label'")
        if problems:
            raise ValueError("bad training recipe: " + "; ".join(problems) + ".")

    @classmethod
    def from_dict(cls, d: dict, **overrides) -> "Recipe":
        """A recipe from a plain dict (e.g. ``PRETRAINED[name]["recipe"]``); keys that are not recipe fields
        (``digits``, ``labels``, ``objective``) are ignored, ``overrides`` win."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in {**d, **overrides}.items() if k in names and v is not None})

    def replace(self, **changes) -> "Recipe":
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        parts = [f"{self.steps} steps of batch {self.batch_size}", f"AdamW lr {self.lr:g}"
                 + (f" (weight decay {self.weight_decay:g})" if self.weight_decay else ""),
                 (f"{self.warmup} warm-up steps, " if self.warmup else "") + f"cosine to {self.min_lr_ratio:g}×",
                 f"EMA {self.ema:g}" if self.ema else "no EMA",
                 f"grad clip {self.grad_clip:g}" if self.grad_clip else "no grad clip",
                 "bf16 autocast where the device has bf16 units" if self.amp == "bf16" else "fp32"]
        if self.p_uncond:
            parts.append(f"label dropout {self.p_uncond:g} to class {self.null_class}")
        return ", ".join(parts)

    # ------------------------------------------------------------------ the parts, from torch
    def optimizer(self, model: nn.Module) -> torch.optim.AdamW:
        return torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    def scheduler(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        """Linear warm-up from lr/warmup to lr over ``warmup`` steps, then cosine decay to ``min_lr_ratio * lr``
        over the remaining steps (``scheduler.step()`` once after each ``optimizer.step()``)."""
        cosine = CosineAnnealingLR(optimizer, T_max=self.steps - self.warmup, eta_min=self.lr * self.min_lr_ratio)
        if not self.warmup:
            return cosine
        warm = LinearLR(optimizer, start_factor=1 / self.warmup, end_factor=1.0, total_iters=self.warmup - 1)
        if self.warmup == 1:
            warm = LambdaLR(optimizer, lambda step: 1.0)
        return SequentialLR(optimizer, [warm, cosine], milestones=[self.warmup])

    def ema_model(self, model: nn.Module) -> AveragedModel | None:
        """A copy of ``model`` that follows the EMA of its weights: call ``ema.update_parameters(model)`` after
        each optimiser step; ``ema.module`` is the averaged network (None when ``ema`` is 0)."""
        if not self.ema:
            return None
        decay = self.ema

        @torch.no_grad()
        def ema_update(ema_params, params, num_averaged):
            step = int(num_averaged)                                 # updates so far (≥ 1 here)
            d = min(decay, (1 + step) / (10 + step))                 # warm-up cap: early weights fade fast
            torch._foreach_lerp_(ema_params, params, 1 - d)          # θ_EMA ← d θ_EMA + (1 - d) θ

        ema = AveragedModel(model, multi_avg_fn=ema_update, use_buffers=True)
        ema.module.eval()
        for p in ema.parameters():
            p.requires_grad_(False)
        return ema

    def amp_in_force(self) -> str:
        """``amp``, unless the environment's ``DDPM_AMP`` (``none`` or ``bf16``) says otherwise."""
        return _amp_override() or self.amp

    def autocast(self, device: torch.device | str):
        """The forward pass's precision: bf16 autocast when bf16 is asked for and the device supports it."""
        device = torch.device(device)
        if self.uses_bf16(device):
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def uses_bf16(self, device: torch.device | str) -> bool:
        return self.amp_in_force() == "bf16" and bf16_supported(device)

    def precision(self, device: torch.device | str) -> str:
        """One line for the training cell: the precision this run will use on ``device``, and why."""
        device = torch.device(device)
        forced = f" ({AMP_ENV}={_amp_override()})" if _amp_override() else ""
        if self.uses_bf16(device):
            units = "the GPU's bf16 units" if device.type == "cuda" else "this CPU's bf16 units (AVX512-BF16 or AMX)"
            return f"precision: bf16 autocast on {units}{forced}"
        if self.amp_in_force() == "none":
            return f"precision: fp32, as asked{forced or ' (the recipe says amp=none)'}"
        return (f"precision: fp32: this {device.type.upper()} has no bf16 units, where bf16 would be emulated and "
                f"slower (set {AMP_ENV}=none to say fp32 explicitly)")


def ema_weights(model: nn.Module, ema: AveragedModel | None) -> nn.Module:
    """The network to sample from: the EMA's copy when there is one, else ``model`` itself."""
    return ema.module if ema is not None else model
