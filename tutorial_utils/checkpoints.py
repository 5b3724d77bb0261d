"""Pretrained weights shipped with the course: load them, check them, save new ones.

Each shipped model ``<name>`` is two files in ``checkpoints/`` at the top of the course:

* ``<name>.pt``   — the model's ``state_dict`` as plain tensors (loads with ``weights_only=True``);
* ``<name>.json`` — metadata: architecture and its kwargs, training recipe, steps, final loss,
  library versions, device, date, and the sha256 of the ``.pt`` file.

    from tutorial_utils import load_pretrained, pretrained_available
    model = load_pretrained("unet_digit6")            # solutions.Unet(ch=32), eval mode

Recreate a checkpoint with ``python -m tutorial_utils.train --model <name>`` (see docs/CHECKPOINTS.md).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
from pathlib import Path

import torch
from torch import nn

COURSE_ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT_DIR = COURSE_ROOT / "checkpoints"

__all__ = ["CheckpointError", "CHECKPOINT_DIR", "PRETRAINED", "pretrained_available", "load_pretrained",
           "save_checkpoint", "build_model", "file_sha256", "checkpoint_paths", "train_command"]


class CheckpointError(RuntimeError):
    """A pretrained checkpoint is missing, damaged, or does not fit the model it is loaded into."""


# name -> (architecture class name in ``solutions``, constructor kwargs, what it was trained on)
PRETRAINED: dict[str, dict] = {
    "unet_digit6": {"class": "Unet", "kwargs": {"ch": 32}, "data": "MNIST train, digit 6 only"},
    "unet_cond": {"class": "UNet_cond", "kwargs": {"ch": 32, "n_classes": 10}, "data": "MNIST train, all digits"},
}


def train_command(name: str) -> str:
    return f"python -m tutorial_utils.train --model {name}"


def checkpoint_paths(name: str, directory: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """(``<dir>/<name>.pt``, ``<dir>/<name>.json``)."""
    d = Path(directory) if directory is not None else CHECKPOINT_DIR
    return d / f"{name}.pt", d / f"{name}.json"


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_model(arch: dict) -> nn.Module:
    """Instantiate ``{"class": "Unet", "kwargs": {...}}`` from the ``solutions`` package."""
    import solutions

    cls_name = arch.get("class")
    cls = getattr(solutions, str(cls_name), None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise CheckpointError(f"architecture {cls_name!r} is not a model class in the solutions package "
                              f"(expected one of 'Unet', 'UNet_cond').")
    return cls(**arch.get("kwargs", {}))


def _check_name(name: str) -> None:
    if name not in PRETRAINED:
        raise CheckpointError(f"no pretrained model called {name!r}; the course ships {sorted(PRETRAINED)}.")


def pretrained_available(name: str, directory: str | os.PathLike | None = None) -> bool:
    """True when both ``<name>.pt`` and ``<name>.json`` exist (their integrity is checked on load)."""
    pt, meta = checkpoint_paths(name, directory)
    return pt.is_file() and meta.is_file()


def _read_metadata(name: str, meta_path: Path) -> dict:
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"the metadata file {meta_path} of checkpoint {name!r} cannot be read "
                              f"({type(err).__name__}: {err}). Restore it with `git checkout -- {meta_path.name}` "
                              f"in {meta_path.parent}, or retrain: {train_command(name)}") from err
    for key in ("architecture", "sha256"):
        if key not in meta:
            raise CheckpointError(f"the metadata file {meta_path} has no {key!r} entry; it was not written by "
                                  f"tutorial_utils.checkpoints.save_checkpoint. Retrain: {train_command(name)}")
    return meta


def _describe_mismatch(expected: dict, found: dict) -> str:
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [(k, tuple(expected[k].shape), tuple(found[k].shape)) for k in expected
              if k in found and tuple(expected[k].shape) != tuple(found[k].shape)]
    lines = []
    if missing:
        lines.append(f"  missing keys ({len(missing)}): {', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}")
    if unexpected:
        lines.append(f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected[:6])}"
                     f"{' ...' if len(unexpected) > 6 else ''}")
    for k, e, f in shapes[:6]:
        lines.append(f"  {k}: expected shape {e}, found {f}")
    if len(shapes) > 6:
        lines.append(f"  ... and {len(shapes) - 6} more shape mismatches")
    return "\n".join(lines)


def load_pretrained(name: str, device=None, directory: str | os.PathLike | None = None) -> nn.Module:
    """The shipped model ``name`` ("unet_digit6" or "unet_cond"), weights loaded, in eval mode.

    The ``.pt`` file is checked against the sha256 in the ``.json`` and loaded with
    ``torch.load(weights_only=True)``.  Raises ``CheckpointError`` (with the fix) when a file is
    missing or damaged or the weights do not fit the architecture.
    """
    _check_name(name)
    pt, meta_path = checkpoint_paths(name, directory)
    for path in (pt, meta_path):
        if not path.is_file():
            raise CheckpointError(
                f"pretrained checkpoint {name!r}: the file {path} does not exist.\n"
                f"Fix: if you cloned the course, restore it with `git checkout -- checkpoints/` "
                f"(checkpoints are committed to the repository); or create it by training "
                f"(minutes to an hour on a CPU): {train_command(name)}")
    meta = _read_metadata(name, meta_path)
    digest = file_sha256(pt)
    if digest != meta["sha256"]:
        raise CheckpointError(
            f"pretrained checkpoint {name!r}: {pt} is corrupt or was replaced: its sha256 is {digest[:16]}..., "
            f"but {meta_path.name} records {str(meta['sha256'])[:16]}... (truncated download, a git-lfs "
            f"pointer, or an edited file).\nFix: restore both files with `git checkout -- checkpoints/`, "
            f"or retrain (which rewrites both): {train_command(name)}")
    try:
        state = torch.load(pt, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"pretrained checkpoint {name!r}: {pt} cannot be read by torch.load "
                              f"({type(err).__name__}: {err}); the file is corrupt or truncated.\n"
                              f"Fix: `git checkout -- checkpoints/`, or retrain: {train_command(name)}") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"pretrained checkpoint {name!r}: {pt} does not hold a state_dict of tensors. "
                              f"Retrain: {train_command(name)}")
    arch = meta["architecture"]
    shipped = PRETRAINED[name]
    if arch.get("class") != shipped["class"] or arch.get("kwargs") != shipped["kwargs"]:
        raise CheckpointError(
            f"pretrained checkpoint {name!r} was saved for {arch.get('class')}(**{arch.get('kwargs')}) but the "
            f"course expects {shipped['class']}(**{shipped['kwargs']}): a checkpoint from another architecture.\n"
            f"Fix: `git checkout -- checkpoints/`, or retrain: {train_command(name)}")
    model = build_model(shipped)
    expected = model.state_dict()
    problems = _describe_mismatch(expected, state)
    if problems:
        raise CheckpointError(
            f"pretrained checkpoint {name!r}: the weights in {pt} do not fit "
            f"{shipped['class']}(**{shipped['kwargs']}) — a checkpoint from another architecture "
            f"(e.g. a different width ch or the other model class):\n{problems}\n"
            f"Fix: `git checkout -- checkpoints/`, or retrain: {train_command(name)}")
    model.load_state_dict(state)
    if device is not None:
        model.to(device)
    return model.eval()


def _versions() -> dict:
    import numpy
    import torchvision

    return {"torch": torch.__version__, "torchvision": torchvision.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


def _infer_kwargs(model: nn.Module) -> dict:
    """Constructor kwargs of a course UNet, read off its layers (ch, and n_classes for UNet_cond)."""
    kwargs = {}
    if hasattr(model, "init_conv"):
        kwargs["ch"] = model.init_conv.out_channels
    if hasattr(model, "class_emb"):
        kwargs["n_classes"] = model.class_emb.num_embeddings
    return kwargs


def save_checkpoint(model: nn.Module, name: str, metadata: dict | None = None,
                    directory: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """Write ``<dir>/<name>.pt`` (fp32 CPU state_dict, contiguous plain tensors) and ``<dir>/<name>.json``.

    ``metadata`` is merged into the json (recipe, steps, final_loss, device, ...); architecture (class
    and ``ch``/``n_classes`` read off the model; pass ``"architecture"`` in ``metadata`` for other
    models), versions, date and the sha256 of the .pt are filled in here.  Returns the two paths.
    """
    pt, meta_path = checkpoint_paths(name, directory)
    pt.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype)
             .contiguous().clone() for k, v in model.state_dict().items()}
    tmp = pt.with_suffix(".pt.tmp")
    torch.save(state, tmp)
    os.replace(tmp, pt)
    meta = {"name": name,
            "architecture": {"class": type(model).__name__, "kwargs": _infer_kwargs(model)},
            "n_parameters": sum(p.numel() for p in model.parameters())}
    meta.update(metadata or {})
    meta.setdefault("versions", _versions())
    meta.setdefault("date", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    meta["sha256"] = file_sha256(pt)
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=False) + "\n")
    return pt, meta_path
