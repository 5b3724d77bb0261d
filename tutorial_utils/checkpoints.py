"""Pretrained weights shipped with the course: load them, check them, save new ones.

Each shipped model ``<name>`` is two files in ``checkpoints/`` at the top of the course:

* ``<name>.pt``   — the model's ``state_dict`` as plain tensors (loads with ``weights_only=True``);
* ``<name>.json`` — metadata: architecture and its kwargs, training recipe, steps, final loss,
  library versions, device, date, and the sha256 of the ``.pt`` file.

    from tutorial_utils import load_pretrained, pretrained_available
    model = load_pretrained("unet_digit6")            # solutions.Unet(ch=32), eval mode
    model = load_pretrained("unet_cond", model_class=UNet_cond)   # into the notebook's own class

``PRETRAINED`` below is the one table of the shipped models: name -> architecture (class and constructor
kwargs), what it was trained on, and the training recipe's defaults.  It is plain data: students only read
the architecture to load; the instructor's trainer (``python -m ddpm_instructor.train --model <name>``, see
docs/CHECKPOINTS.md) imports the same table for its defaults.  ``solutions`` is imported lazily, only when a
model class is looked up there, so a student bundle without a graded stage still imports this module.
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
# the student's own trained models (notebooks 4 and 6 save them, 5-7 sample from them); git ignores runs/
MY_CHECKPOINT_DIR = COURSE_ROOT / "runs" / "mine"

__all__ = ["CheckpointError", "CHECKPOINT_DIR", "PRETRAINED", "pretrained_available", "load_pretrained",
           "save_checkpoint", "build_model", "file_sha256", "checkpoint_paths", "train_command",
           "MY_CHECKPOINT_DIR", "SANITY_MAX_LOSS", "ModelChoice", "denoising_loss", "load_mine_or_pretrained"]


class CheckpointError(RuntimeError):
    """A pretrained checkpoint is missing, damaged, or does not fit the model it is loaded into."""


# The training recipe both shipped models share; each entry below adds its own data and length.
_RECIPE = {"batch_size": 128, "lr": 2e-3, "warmup": 200, "min_lr_ratio": 0.02, "weight_decay": 0.0,
           "grad_clip": 1.0, "ema": 0.998}

# THE table of shipped models (plain data, no instructor code):
#   class, kwargs  the architecture: a model class (looked up in ``solutions`` unless the caller passes its
#                  own) and its constructor kwargs; the checkpoint's json must record the same
#   data           what it was trained on (written into the json's recipe)
#   description    one line for humans
#   recipe         the defaults of ``python -m ddpm_instructor.train --model <name>`` (each one overridable on
#                  the command line): ``digits`` (None: all), ``labels`` (pass the class label to the model),
#                  ``steps`` and the optimizer/EMA settings, and for a conditional model optionally ``null_class``
#                  and ``p_uncond`` (label dropout); the shipped checkpoints were trained with these
PRETRAINED: dict[str, dict] = {
    "unet_digit6": {
        "class": "Unet", "kwargs": {"ch": 32},
        "data": "MNIST train, digit 6 only",
        "description": "unconditional UNet that draws 6s (notebooks 4 and 5)",
        "recipe": {**_RECIPE, "digits": [6], "labels": False, "steps": 1800},
    },
    "unet_cond": {
        "class": "UNet_cond", "kwargs": {"ch": 32, "n_classes": 11},
        "data": "MNIST train, all digits",
        "description": "class-conditional UNet that draws the digit it is asked for (notebook 6); label 10 is "
                       "the null class ('no label') for classifier-free guidance (notebook 7)",
        # label dropout: each training label becomes null_class with probability p_uncond (Ho & Salimans 2022)
        "recipe": {**_RECIPE, "digits": None, "labels": True, "steps": 8000, "null_class": 10, "p_uncond": 0.1},
    },
    "unet_flow": {
        "class": "UNet_cond", "kwargs": {"ch": 32, "n_classes": 11},
        "data": "MNIST train, all digits",
        "description": "the same class-conditional UNet trained by flow matching: it predicts the velocity "
                       "ε - x_0 of x_t = (1 - t) x_0 + t ε, time input 1000 t (notebook 8); label 10 is the null class",
        # objective "flow": solutions.flow.flow_matching_loss instead of p_losses (t ~ U[0, 1])
        "recipe": {**_RECIPE, "digits": None, "labels": True, "steps": 2000, "null_class": 10, "p_uncond": 0.1,
                   "objective": "flow"},
    },
    "unet_flow_reflow": {
        "class": "UNet_cond", "kwargs": {"ch": 32, "n_classes": 11},
        "data": "(noise, image, label) pairs drawn from unet_flow's guided ODE (reflow)",
        "description": "unet_flow reflowed once (2-rectified flow, Liu et al. 2023) on pairs from its w = 2 guided "
                       "ODE, guidance distilled in: 1 Euler step, 1 network call (w = 1) draws the digit asked for",
        # reflow: pairs (z, x = ODE(z, y), y) from the teacher, then flow matching on the pairs from its weights;
        # no label dropout (the guided pairs already carry the guidance; sample with w = 1)
        "recipe": {**_RECIPE, "digits": None, "labels": True, "steps": 1200, "lr": 1e-3, "warmup": 100,
                   "objective": "flow",
                   "reflow": {"teacher": "unet_flow", "n_pairs": 12000, "sampler": "heun", "sampler_steps": 4,
                              "w": 2.0, "null_class": 10, "seed": 1}},
    },
}


def train_command(name: str) -> str:
    return f"python -m ddpm_instructor.train --model {name}"


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


def _solutions_class(cls_name: str, name: str | None = None) -> type:
    """The model class ``cls_name`` from ``solutions`` (imported here, not at module import)."""
    import solutions

    try:
        cls = getattr(solutions, cls_name)
    except (AttributeError, ImportError):     # a student bundle without that stage raises ImportError
        cls = None
    if cls is None and cls_name in getattr(solutions, "MODULE_OF", {}):
        call = f'load_pretrained("{name}", model_class={cls_name})' if name else f"model_class={cls_name}"
        raise CheckpointError(
            f"solutions has no {cls_name} in this copy of the course (its notebook's answers are not public "
            f"here). Pass the class you wrote in the notebook instead: {call}")
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise CheckpointError(f"architecture {cls_name!r} is not a model class in the solutions package "
                              f"(the course ships {sorted({v['class'] for v in PRETRAINED.values()})}).")
    return cls


def build_model(arch: dict, model_class: type | None = None) -> nn.Module:
    """Instantiate ``{"class": "Unet", "kwargs": {...}}``: ``model_class(**kwargs)`` when given, else the
    class of that name in ``solutions``."""
    kwargs = dict(arch.get("kwargs", {}))
    if model_class is None:
        cls = _solutions_class(str(arch.get("class")))
    else:
        if not (isinstance(model_class, type) and issubclass(model_class, nn.Module)):
            raise CheckpointError(f"model_class must be a torch.nn.Module subclass (the class itself, not an "
                                  f"instance); got {model_class!r}.")
        cls = model_class
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise CheckpointError(f"{cls.__name__}(**{kwargs}) cannot be constructed ({err}); the checkpoint was "
                              f"saved for {arch.get('class')}(**{kwargs}), so the class must accept these "
                              f"arguments.") from err


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


def load_pretrained(name: str, device=None, directory: str | os.PathLike | None = None,
                    model_class: type | None = None) -> nn.Module:
    """The shipped model ``name`` ("unet_digit6" or "unet_cond"), weights loaded, in eval mode.

    The model is ``model_class(**kwargs)`` with the kwargs the checkpoint records, when ``model_class`` is
    given (e.g. the ``UNet_cond`` a student wrote in the notebook), else the class of that name in
    ``solutions``; a student bundle that lacks it raises ``CheckpointError`` asking for ``model_class``.
    The ``.pt`` file is checked against the sha256 in the ``.json`` and loaded with
    ``torch.load(weights_only=True)``.  Raises ``CheckpointError`` (with the fix) when a file is
    missing or damaged or the weights do not fit the class (naming the mismatched keys and shapes).
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
    # the width ch and the input skip may differ: the laptop profile trains your own model narrower and with the
    # input skip (runtime.RunProfile.unet_kwargs)
    own_choice = ("ch", "input_skip")
    other = {k: v for k, v in (arch.get("kwargs") or {}).items() if k not in own_choice}
    if arch.get("class") != shipped["class"] or other != {k: v for k, v in shipped["kwargs"].items()
                                                          if k not in own_choice}:
        raise CheckpointError(
            f"pretrained checkpoint {name!r} was saved for {arch.get('class')}(**{arch.get('kwargs')}) but the "
            f"course expects {shipped['class']}(**{shipped['kwargs']}): a checkpoint from another architecture.\n"
            f"Fix: `git checkout -- checkpoints/`, or retrain: {train_command(name)}")
    if model_class is None:
        model_class = _solutions_class(shipped["class"], name)
        own = False
    else:
        own = True
    model = build_model(arch, model_class)
    problems = _describe_mismatch(model.state_dict(), state)
    if problems and own:
        raise CheckpointError(
            f"pretrained checkpoint {name!r}: its weights (saved from {shipped['class']}(**{shipped['kwargs']})) do "
            f"not fit your {model_class.__name__}(**{shipped['kwargs']}): a layer is missing, extra, or has "
            f"another size:\n{problems}\n"
            f"Fix: compare those layers of your class with the notebook's description of {shipped['class']}, "
            f"or load without model_class to use the reference {shipped['class']}.")
    if problems:
        raise CheckpointError(
            f"pretrained checkpoint {name!r}: the weights in {pt} do not fit "
            f"{shipped['class']}(**{shipped['kwargs']}) — a checkpoint from another architecture "
            f"(e.g. a different width ch or the other model class):\n{problems}\n"
            f"Fix: `git checkout -- checkpoints/`, or retrain: {train_command(name)}")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"pretrained checkpoint {name!r}: the weights cannot be loaded into "
                              f"{model_class.__name__}: {err}") from err
    if device is not None:
        model.to(device)
    return model.eval()


def _versions() -> dict:
    import numpy
    import torchvision

    return {"torch": torch.__version__, "torchvision": torchvision.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


def _check_kwargs(model: nn.Module, kwargs: dict) -> dict:
    """``kwargs`` as a JSON-safe dict, after checking that ``type(model)(**kwargs)`` has ``model``'s weights."""
    if not isinstance(kwargs, dict):
        raise TypeError(f"kwargs must be a dict of constructor arguments; got {type(kwargs).__name__}.")
    try:
        kwargs = json.loads(json.dumps(kwargs))
    except (TypeError, ValueError) as err:
        raise TypeError(f"the constructor kwargs {kwargs!r} must be JSON data (numbers, strings, lists, "
                        f"dicts): {err}") from err
    cls = type(model)
    try:
        with torch.random.fork_rng(devices=[]):        # building the probe must not move the caller's RNG
            probe = cls(**kwargs)
    except TypeError as err:
        raise CheckpointError(f"{cls.__name__}(**{kwargs}) cannot be constructed ({err}): pass the kwargs "
                              f"the model was built with.") from err
    problems = _describe_mismatch(probe.state_dict(), model.state_dict())
    if problems:
        raise CheckpointError(f"{cls.__name__}(**{kwargs}) does not have the weights of the model being saved; "
                              f"pass the kwargs it was built with:\n{problems}")
    return kwargs


def save_checkpoint(model: nn.Module, name: str, metadata: dict | None = None,
                    directory: str | os.PathLike | None = None, *, kwargs: dict) -> tuple[Path, Path]:
    """Write ``<dir>/<name>.pt`` (fp32 CPU state_dict, contiguous plain tensors) and ``<dir>/<name>.json``.

    ``kwargs`` are the constructor arguments the model was built with (``Unet(**kwargs)``); the json records
    ``"architecture": {"class": type(model).__name__, "kwargs": kwargs}`` from them, after checking that
    ``type(model)(**kwargs)`` has exactly the model's weight names and shapes.  ``metadata`` is merged into
    the json (recipe, steps, final_loss, device, ...); versions, date and the sha256 of the .pt are filled in
    here.  Returns the two paths.
    """
    if metadata and "architecture" in metadata:
        raise ValueError("pass the constructor arguments as kwargs=..., not an 'architecture' entry in metadata.")
    kwargs = _check_kwargs(model, kwargs)
    pt, meta_path = checkpoint_paths(name, directory)
    pt.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype)
             .contiguous().clone() for k, v in model.state_dict().items()}
    tmp = pt.with_suffix(".pt.tmp")
    torch.save(state, tmp)
    os.replace(tmp, pt)
    meta = {"name": name,
            "architecture": {"class": type(model).__name__, "kwargs": kwargs},
            "n_parameters": sum(p.numel() for p in model.parameters())}
    meta.update(metadata or {})
    meta.setdefault("versions", _versions())
    meta.setdefault("date", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    meta["sha256"] = file_sha256(pt)
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=False) + "\n")
    return pt, meta_path


# ----------------------------------------------------------------------------- your own model, or the shipped one
# A model passes the quick sanity check when its noise-prediction error on 128 MNIST *test* images, averaged over
# t = 100, 300, 500, 700 (fixed noise), is below this.  Measured with denoising_loss: the shipped unet_digit6
# 0.027, unet_cond 0.024; 20 steps of training (the smoke profile) 0.11-0.13; an untrained UNet about 1.
SANITY_MAX_LOSS = 0.05
SANITY_TIMESTEPS = (100, 300, 500, 700)


@torch.no_grad()
def denoising_loss(model: nn.Module, name: str, device=None, n: int = 128) -> float:
    """Mean ‖ε - ε_θ(x_t, t[, y])‖² of ``model`` on the first ``n`` test images the model ``name`` is for
    (the 6s, or all digits with their labels), at ``SANITY_TIMESTEPS``, with fixed noise (seed 0)."""
    from solutions.diffusion import q_sample
    from .data import load_mnist_tensors

    spec = PRETRAINED[name]
    device = device if device is not None else next(model.parameters()).device
    x, y = load_mnist_tensors(train=False, digits=spec["recipe"]["digits"], limit=n, device=device)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0)).to(device)
    was_training = model.training
    model.eval()
    total = 0.0
    for tv in SANITY_TIMESTEPS:
        t = torch.full((x.shape[0],), tv, device=device, dtype=torch.long)
        x_t = q_sample(x, t, noise)
        pred = model(x_t, t, y) if spec["recipe"]["labels"] else model(x_t, t)
        total += float(((pred.float() - noise) ** 2).mean())
    model.train(was_training)
    return total / len(SANITY_TIMESTEPS)


class ModelChoice:
    """Which weights a notebook samples from, and why: ``.model``, ``.source`` ("yours" or "shipped"),
    ``.reason`` (one sentence), ``.test_loss`` (the sanity-check figure of your weights, if they loaded)."""

    def __init__(self, model: nn.Module, source: str, reason: str, test_loss: float | None = None):
        self.model, self.source, self.reason, self.test_loss = model, source, reason, test_loss

    def __repr__(self) -> str:
        return f"using {'your' if self.source == 'yours' else 'the shipped'} model: {self.reason}"


def load_mine_or_pretrained(name: str, device=None, model_class: type | None = None,
                            directory: str | os.PathLike | None = None,
                            max_loss: float = SANITY_MAX_LOSS) -> ModelChoice:
    """Your own trained ``name`` (``runs/mine/<name>.pt``, saved by notebook 4 or 6) when it loads and passes
    the quick sanity check (``denoising_loss`` below ``max_loss``); otherwise the shipped checkpoint.  The
    returned ``ModelChoice`` says which, and why, so the notebook can print it."""
    mine_dir = Path(directory) if directory is not None else MY_CHECKPOINT_DIR
    why_not = None
    if not pretrained_available(name, mine_dir):
        why_not = f"{checkpoint_paths(name, mine_dir)[0]} does not exist (train it in notebook {_NOTEBOOK_OF[name]})"
    else:
        try:
            mine = load_pretrained(name, device=device, directory=mine_dir, model_class=model_class)
        except CheckpointError as err:
            why_not = f"your file does not load ({str(err).splitlines()[0]})"
        else:
            loss = denoising_loss(mine, name, device)
            if loss == loss and loss < max_loss:          # (NaN fails)
                return ModelChoice(mine, "yours", f"{checkpoint_paths(name, mine_dir)[0].name} passed the sanity "
                                   f"check (test noise-prediction error {loss:.3f} < {max_loss})", loss)
            why_not = (f"your weights' test noise-prediction error is {loss:.3f}, not below {max_loss}: too little "
                       f"training to draw digits (the smoke profile trains 20 steps)")
    shipped = load_pretrained(name, device=device, model_class=model_class)
    return ModelChoice(shipped, "shipped", f"{name} from checkpoints/, because {why_not}")


_NOTEBOOK_OF = {"unet_digit6": 4, "unet_cond": 6, "unet_flow": 8}
