"""Device, seeding and the run profile.

The run profile decides how much compute the notebooks spend:

* ``full``: the seed's recipe (400 epochs on the 6s, 100 epochs for the conditional model,
  T = 1000). Hours on a CPU, minutes on a GPU.
* ``fast``: a CPU budget (CI, grading, a laptop) that still runs every line of every notebook:
  a few dozen training steps, then the shipped pretrained weights for sampling.

Choose with the environment variable ``DDPM_PROFILE=fast|full`` (or ``set_profile`` in a
notebook). When it is unset the default is ``full`` on a GPU and ``fast`` on a CPU.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch

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
    timesteps: int              # T of the diffusion
    batch_size: int
    epochs_digit6: int          # Algorithm 1 epochs over the 6s (notebook 4)
    epochs_cond: int            # epochs over all digits for UNet_cond (notebook 6)
    max_steps: int | None       # cap on training steps per run (None: no cap)
    train_limit: int | None     # train on only the first N images (None: all)
    n_samples: int              # images drawn by the sampling cells
    prefer_pretrained: bool     # sample from the shipped checkpoint rather than the model just trained

    def describe(self) -> str:
        steps = f"at most {self.max_steps} steps" if self.max_steps else "no step cap"
        return (f"profile '{self.name}': T={self.timesteps}, batch {self.batch_size}, "
                f"{self.epochs_digit6} epoch(s) on the 6s, {self.epochs_cond} on all digits, {steps}, "
                f"{self.n_samples} samples, {'pretrained' if self.prefer_pretrained else 'own'} weights for sampling")


PROFILES = {
    "full": RunProfile("full", timesteps=1000, batch_size=128, epochs_digit6=400, epochs_cond=100,
                       max_steps=None, train_limit=None, n_samples=64, prefer_pretrained=False),
    "fast": RunProfile("fast", timesteps=1000, batch_size=64, epochs_digit6=1, epochs_cond=1,
                       max_steps=20, train_limit=1280, n_samples=8, prefer_pretrained=True),
}

_override: str | None = None


def set_profile(name: str | None) -> RunProfile:
    """Choose the profile for this Python session (``None`` goes back to the environment/default)."""
    global _override
    if name is not None and name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}.")
    _override = name
    return get_profile()


def get_profile() -> RunProfile:
    name = _override or os.environ.get(PROFILE_ENV)
    if not name:
        name = "full" if torch.cuda.is_available() else "fast"
    name = name.strip().lower()
    if name not in PROFILES:
        raise ValueError(f"{PROFILE_ENV}={name!r} is not a profile; use one of {sorted(PROFILES)}.")
    return PROFILES[name]
