"""MNIST for the course, scaled to [-1, 1] exactly as the seed does.

Where the data lives is resolved in this order:
  1. the ``root`` argument;
  2. the environment variable ``DDPM_DATA_DIR``;
  3. ``data/`` at the top of the course checkout.
torchvision's MNIST reads ``<root>/MNIST/raw`` and downloads there when it may.

Two ways to get batches:
  * ``get_dataloaders`` — the seed's route: a torchvision dataset with per-image transforms;
  * ``load_mnist_tensors`` + ``TensorBatches`` — the fast route: the whole (subset of) MNIST as
    one tensor on the device, shuffled and sliced into batches without any per-image Python work.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

COURSE_ROOT = Path(__file__).resolve().parent.parent
DATA_ENV = "DDPM_DATA_DIR"
DOWNLOAD_ENV = "DDPM_DOWNLOAD"
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

__all__ = ["DatasetNotFoundError", "resolve_data_root", "scale_to_minus_one_one", "mnist_transform",
           "mnist_dataset", "get_dataloaders", "load_mnist_tensors", "TensorBatches"]


class DatasetNotFoundError(FileNotFoundError):
    """MNIST is not in the data folder and could not be downloaded."""


def resolve_data_root(root: str | os.PathLike | None = None) -> Path:
    """The data folder: explicit ``root``, else ``$DDPM_DATA_DIR``, else ``<course>/data``."""
    if root is not None:
        return Path(root).expanduser().resolve()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser().resolve()
    return COURSE_ROOT / "data"


def scale_to_minus_one_one(x: Tensor) -> Tensor:
    """[0, 1] -> [-1, 1]: the range the diffusion model works in."""
    return x * 2 - 1


# The seed's transform: PIL image -> [0, 1] tensor -> [-1, 1].
mnist_transform = transforms.Compose([transforms.ToTensor(), transforms.Lambda(scale_to_minus_one_one)])


def _download_allowed(download: bool | None) -> bool:
    if download is not None:
        return download
    return os.environ.get(DOWNLOAD_ENV, "1").lower() not in ("0", "false", "no")


def _open_mnist(train: bool, root=None, download: bool | None = None, transform=mnist_transform):
    folder = resolve_data_root(root)
    try:
        return datasets.MNIST(str(folder), train=train, download=False, transform=transform)
    except RuntimeError:
        pass  # not there yet
    if _download_allowed(download):
        try:
            return datasets.MNIST(str(folder), train=train, download=True, transform=transform)
        except Exception as err:  # offline, mirror down, disk full ...
            reason = f"the download failed ({type(err).__name__}: {err})"
    else:
        reason = "downloading is switched off"
    raise DatasetNotFoundError(missing_data_message(folder, reason))


def missing_data_message(folder: Path, reason: str) -> str:
    """What to do when MNIST is not in ``folder``: the simple fix first (the four files, no restart), then the
    environment variable (read when the kernel starts: it needs a restart), then the download."""
    raw = folder / "MNIST" / "raw"
    beside = " (the data folder beside this notebook)" if folder.parent == Path.cwd().resolve() else ""
    return (
        f"MNIST was not found in {raw} and {reason}.\n"
        f"Simplest fix: copy the four MNIST files {', '.join(MNIST_FILES)} into\n"
        f"    {raw}{beside}\n"
        f"and run this cell again: no restart needed.\n"
        f"Or use a folder that already holds MNIST/raw/: in the notebook run `%env {DATA_ENV}=/path/to/data` and run "
        f"this cell again, or pass root=...; {DATA_ENV} set in a shell is read when the kernel starts, so set it "
        f"before starting JupyterLab (restart JupyterLab if it is running: restarting only the kernel does not "
        f"pick up a shell's new variable).\n"
        f"Or connect to the internet and run this cell again (set {DOWNLOAD_ENV}=1 if you switched downloads off): "
        f"torchvision downloads MNIST (about 12 MB) into {folder}.")


def _digit_indices(targets: Tensor, digits) -> Tensor:
    digits = [int(d) for d in digits]
    bad = [d for d in digits if not 0 <= d <= 9]
    if bad:
        raise ValueError(f"digits must be between 0 and 9; got {bad}.")
    return torch.isin(targets, torch.tensor(digits)).nonzero().flatten()


def mnist_dataset(train: bool = True, digits=None, root=None, download: bool | None = None):
    """torchvision MNIST in [-1, 1]; ``digits=[6]`` keeps only the sixes (the seed's subset)."""
    ds = _open_mnist(train, root, download)
    if digits is None:
        return ds
    return Subset(ds, _digit_indices(ds.targets, digits).tolist())


def get_dataloaders(batch_size: int = 128, digits=None, root=None, download: bool | None = None,
                    num_workers: int = 0, seed: int = 0):
    """(train_loader, test_loader) with the seed's transforms; the train loader shuffles (seeded)."""
    train_ds = mnist_dataset(True, digits, root, download)
    test_ds = mnist_dataset(False, digits, root, download)
    g = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(train_ds, batch_size=batch_size, shuffle=True, drop_last=True,
                              num_workers=num_workers, generator=g)
    test_loader = DataLoader(test_ds, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    return train_loader, test_loader


def load_mnist_tensors(train: bool = True, digits=None, root=None, download: bool | None = None,
                       device="cpu", limit: int | None = None) -> tuple[Tensor, Tensor]:
    """All of (a subset of) MNIST as ``(x, y)``: x float (N, 1, 28, 28) in [-1, 1], y long (N,)."""
    ds = _open_mnist(train, root, download, transform=None)
    x, y = ds.data, ds.targets
    if digits is not None:
        keep = _digit_indices(y, digits)
        x, y = x[keep], y[keep]
    if limit is not None:
        x, y = x[:limit], y[:limit]
    x = scale_to_minus_one_one(x.unsqueeze(1).float().div_(255))
    return x.to(device), y.to(device)


class TensorBatches:
    """Shuffled mini-batches from tensors that already sit on the device (the fast path).

    Drop-in for a DataLoader in ``train``: iterating gives ``(x_batch, y_batch)`` tuples, a new
    seeded permutation every epoch, and ``len()`` is the number of full batches.
    """

    def __init__(self, x: Tensor, y: Tensor, batch_size: int = 128, shuffle: bool = True, seed: int = 0):
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x and y must have the same length; got {x.shape[0]} and {y.shape[0]}.")
        if x.shape[0] < batch_size:
            raise ValueError(f"only {x.shape[0]} images for batch_size={batch_size}; use a smaller batch.")
        self.x, self.y, self.batch_size, self.shuffle = x, y, batch_size, shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.x.shape[0] // self.batch_size

    def __iter__(self):
        n = self.x.shape[0]
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        order = order.to(self.x.device)
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield self.x[idx], self.y[idx]
