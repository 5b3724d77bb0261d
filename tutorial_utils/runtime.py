"""Device, seeding and the run profile.

The run profile decides how much compute the notebooks spend.  Three audiences, three profiles:

* ``laptop``: a student on a CPU (the default without a GPU, and what ``./course lab`` kernels use there).
  Notebook 4 trains your own UNet on the 6s and notebook 6 your own class-conditional UNet, long enough to draw
  real digits (``benchmarks/RESULTS.md`` gives the minutes and the judge's verdict on 2 cores); notebooks 5 and 6
  and notebook 7's guidance sweep sample from them (notebook 7's DDIM table and notebook 8 use the shipped models).
* ``smoke``: CI, nbval and the autograder.  Every line of every notebook runs, training stops after 20 steps,
  and the sampling cells fall back to the shipped checkpoints (your 20-step weights fail the sanity check).
* ``full``: a GPU (the default when one is present): the seed's training lengths (400 epochs on the 6s, 100
  epochs over all digits) with the course's recipe.

Choose with the environment variable ``DDPM_PROFILE=laptop|smoke|full`` (or ``set_profile`` in a notebook).
``fast``, the smoke profile's former name, is still accepted.
"""
from __future__ import annotations

import os
import random
import math
from dataclasses import dataclass

import numpy as np
import torch

from .recipe import Recipe

# notebook 4's and notebook 6's training lengths and UNet in the laptop profile, chosen by bench_recipe.py
# (benchmarks/RESULTS.md, "The laptop recipe search"): half the width, ch=16, makes a step 2.5x cheaper, and the input
# skip (solutions/model.py) is what lets that UNet draw digits (without it 10 % of its samples read as 6).
LAPTOP_STEPS_DIGIT6 = 800
LAPTOP_STEPS_COND = 1500
LAPTOP_WIDTH = 16
LAPTOP_INPUT_SKIP = True

PROFILE_ENV = "DDPM_PROFILE"

__all__ = ["get_device", "seed_everything", "RunProfile", "PROFILES", "get_profile", "set_profile"]


def get_device(prefer: str | None = None) -> torch.device:
    """``cuda`` if available (or ``mps`` on Apple silicon), else ``cpu``; ``prefer`` overrides."""
    if prefer:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices); returns a seeded CPU generator."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@dataclass(frozen=True)
class RunProfile:
    name: str
    audience: str               # who it is for, in words
    timesteps: int              # T of the diffusion
    recipe_digit6: Recipe       # notebook 4: your UNet on the 6s
    recipe_cond: Recipe         # notebook 6: your class-conditional UNet on all digits
    train_limit: int | None     # train on only the first N images (None: all)
    n_samples: int              # images drawn by the sampling cells
    batch_size: int             # notebook 8's short flow-matching run: batch, and
    max_steps: int | None       #   its number of steps (None: the shipped unet_flow's length)
    prefer_pretrained: bool     # notebook 8 samples the shipped unet_flow rather than its short run
    width: int = 32             # notebooks 4 and 6 build your UNet with ch=width (the shipped checkpoints keep 32)
    input_skip: bool = False    #   and with the input skip ε_θ(x_t, t) = UNet(x_t, t) + s(t)·x_t (solutions/model.py) if True

    @property
    def unet_kwargs(self) -> dict:
        """The constructor arguments of the UNet that notebooks 4 and 6 build (and save with the checkpoint)."""
        return {"ch": self.width, **({"input_skip": True} if self.input_skip else {})}

    def describe(self) -> str:
        return (f"profile '{self.name}' ({self.audience}): T={self.timesteps}; notebook 4 trains "
                f"{self.recipe_digit6.steps} steps of batch {self.recipe_digit6.batch_size}, notebook 6 "
                f"{self.recipe_cond.steps} steps of batch {self.recipe_cond.batch_size}"
                + (f", both with a UNet of width ch={self.width}" + (" and the input skip" if self.input_skip else "")
                   + " (the shipped models: ch=32, no input skip)" if self.unet_kwargs != {"ch": 32} else "")
                + f"; {self.n_samples} samples")


def _steps(epochs: int, n_images: int, batch: int) -> int:
    return epochs * math.ceil(n_images / batch)


_SMOKE = dict(lr=2e-3, warmup=2, ema=0.0, batch_size=64)
PROFILES = {
    "laptop": RunProfile(
        "laptop", "a student on a CPU: trains your own models to real digits", timesteps=1000,
        recipe_digit6=Recipe(steps=LAPTOP_STEPS_DIGIT6, batch_size=128, lr=2e-3, warmup=50, ema=0.995),
        recipe_cond=Recipe(steps=LAPTOP_STEPS_COND, batch_size=128, lr=2e-3, warmup=100, ema=0.995,
                           p_uncond=0.1, null_class=10),
        train_limit=None, n_samples=16, batch_size=64, max_steps=20, prefer_pretrained=True, width=LAPTOP_WIDTH,
        input_skip=LAPTOP_INPUT_SKIP),
    "smoke": RunProfile(
        "smoke", "CI and grading: every line runs, 20 training steps", timesteps=1000,
        recipe_digit6=Recipe(steps=20, **_SMOKE), recipe_cond=Recipe(steps=20, p_uncond=0.1, null_class=10, **_SMOKE),
        train_limit=1280, n_samples=8, batch_size=64, max_steps=20, prefer_pretrained=True),
    "full": RunProfile(
        "full", "a GPU: the seed's training lengths", timesteps=1000,
        recipe_digit6=Recipe(steps=_steps(400, 5918, 128), batch_size=128, lr=2e-3, warmup=200, ema=0.9995),
        recipe_cond=Recipe(steps=_steps(100, 60000, 128), batch_size=128, lr=2e-3, warmup=200, ema=0.9995,
                           p_uncond=0.1, null_class=10),
        train_limit=None, n_samples=64, batch_size=128, max_steps=None, prefer_pretrained=False),
}
ALIASES = {"fast": "smoke"}

_override: str | None = None


def set_profile(name: str | None) -> RunProfile:
    """Choose the profile for this Python session (``None`` goes back to the environment/default)."""
    global _override
    if name is not None:
        name = ALIASES.get(name, name)
        if name not in PROFILES:
            raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}.")
    _override = name
    return get_profile()


def get_profile() -> RunProfile:
    name = _override or os.environ.get(PROFILE_ENV)
    if not name:
        name = "full" if torch.cuda.is_available() else "laptop"
    name = name.strip().lower()
    name = ALIASES.get(name, name)
    if name not in PROFILES:
        raise ValueError(f"{PROFILE_ENV}={name!r} is not a profile; use one of {sorted(PROFILES)}.")
    return PROFILES[name]
