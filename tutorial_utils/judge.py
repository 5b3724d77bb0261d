"""Judge generated digits with the course's MNIST classifier (notebooks and benchmarks share it).

    from tutorial_utils.judge import judge_samples
    report = judge_samples(samples, labels)          # samples in [-1, 1], (N, 1, 28, 28); labels: what was asked
    report["accuracy"], report["per_class_accuracy"], report["frechet_distance"], report["frechet_floor"]

The judge is a separate small CNN (not part of the course, 99.55 % MNIST test accuracy), trained by
``benchmarks/train_classifier.py`` into ``checkpoints/mnist_classifier.pt`` (beside the course's own checkpoints;
``checkpoints/mnist_classifier.json`` records its test accuracy, recipe and sha256).  It gives

* **accuracy**: the share of samples it reads as the digit that was asked for (overall and per class);
* **Fréchet distance** (as in FID, Heusel et al. 2017) between Gaussians fitted to the samples' and the MNIST
  test images' 128-d penultimate features:  ‖μ1-μ2‖² + Tr(Σ1 + Σ2 - 2 (Σ1 Σ2)^½);
* its **floor**: the same distance for as many real *training* images (same classes) — the distance is biased
  upward for small samples, so compare with the floor, not with 0.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

COURSE_ROOT = Path(__file__).resolve().parent.parent
CLASSIFIER_PATH = COURSE_ROOT / "checkpoints" / "mnist_classifier.pt"

__all__ = ["CLASSIFIER_PATH", "MnistClassifier", "load_classifier", "classify", "frechet_distance", "judge_samples",
           "share_interval", "format_share"]


class MnistClassifier(nn.Module):
    """Images in [-1, 1], (B, 1, 28, 28) -> 10 logits.  ``features`` gives the 128-d penultimate layer."""

    def __init__(self):
        super().__init__()
        def block(i, o):
            return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*block(1, 16), *block(16, 32), nn.MaxPool2d(2),      # 14x14
                                  *block(32, 32), *block(32, 64), nn.MaxPool2d(2),     # 7x7
                                  nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(inplace=True))
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(128, 10)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.drop(self.body(x)))


def load_classifier(path: str | os.PathLike | None = None, device="cpu") -> MnistClassifier:
    """The trained judge, in eval mode (``weights_only`` load)."""
    path = Path(path) if path is not None else CLASSIFIER_PATH
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; train it with: python benchmarks/train_classifier.py")
    model = MnistClassifier()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.to(device).eval()


@torch.inference_mode()
def classify(model: MnistClassifier, x: Tensor, batch: int = 1000) -> tuple[Tensor, Tensor]:
    """(predicted labels, 128-d features) for images in [-1, 1] (clamped first, as a viewer would)."""
    device = next(model.parameters()).device
    preds, feats = [], []
    for i in range(0, x.shape[0], batch):
        xb = x[i:i + batch].to(device).float().clamp(-1, 1)
        f = model.features(xb)
        preds.append(model.head(f).argmax(1).cpu())
        feats.append(f.cpu())
    return torch.cat(preds), torch.cat(feats)


def frechet_distance(f1: Tensor, f2: Tensor) -> float:
    """‖μ1-μ2‖² + Tr(Σ1 + Σ2 - 2 (Σ1 Σ2)^½) between Gaussians fitted to two feature sets (as in FID)."""
    a, b = f1.double().cpu().numpy(), f2.double().cpu().numpy()
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # Tr((Σ1 Σ2)^½) = Σ sqrt(eigenvalues of Σ1^½ Σ2 Σ1^½), a symmetric PSD matrix (no scipy needed)
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root1 @ s2 @ root1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


_REFERENCE: dict = {}          # (classifier id) -> features of MNIST test and train, computed once


def _reference(clf: MnistClassifier):
    key = id(clf)
    if key not in _REFERENCE:
        from .data import load_mnist_tensors

        x_test, y_test = load_mnist_tensors(train=False)
        x_train, y_train = load_mnist_tensors(train=True)
        _REFERENCE.clear()
        _REFERENCE[key] = (classify(clf, x_test)[1], y_test, x_train, y_train)
    return _REFERENCE[key]


def judge_samples(samples: Tensor, labels: Tensor | None = None, classifier: MnistClassifier | None = None,
                  seed: int = 0) -> dict:
    """How good are these digits?  ``samples`` in [-1, 1], shape (N, 1, 28, 28); ``labels`` the digits asked for
    (None for an unconditional model).  Returns a dict:

    * ``accuracy``: share read as their label (None without labels); ``per_class_accuracy``: {digit: share};
    * ``predicted_counts``: how many samples the judge reads as each digit 0-9;
    * ``frechet_distance``: to the MNIST test images (those of the asked-for classes, or all of them);
    * ``frechet_floor``: the same for N real training images with the same classes (a seeded draw).
    """
    clf = classifier if classifier is not None else load_classifier()
    samples = samples.detach().cpu()
    pred, f_samp = classify(clf, samples)
    f_test, y_test, x_train, y_train = _reference(clf)
    g = torch.Generator().manual_seed(seed)
    if labels is None:
        ref = f_test
        real_idx = torch.randperm(x_train.shape[0], generator=g)[:samples.shape[0]]
    else:
        labels = torch.as_tensor(labels).cpu().long()
        if labels.shape != (samples.shape[0],):
            raise ValueError(f"labels must hold one digit per sample, shape ({samples.shape[0]},); "
                             f"got {tuple(labels.shape)}.")
        classes = labels.unique()
        ref = f_test[torch.isin(y_test, classes)]
        real_idx = torch.cat([(y_train == c).nonzero().flatten()[
            torch.randperm(int((y_train == c).sum()), generator=g)[:int((labels == c).sum())]] for c in classes])
    _, f_real = classify(clf, x_train[real_idx])
    out = {"n_samples": int(samples.shape[0]),
           "accuracy": None if labels is None else float((pred == labels).float().mean()),
           "per_class_accuracy": None if labels is None else
           {int(c): float((pred[labels == c] == c).float().mean()) for c in labels.unique()},
           "predicted_counts": torch.bincount(pred, minlength=10).tolist(),
           "frechet_distance": frechet_distance(f_samp, ref),
           "frechet_floor": frechet_distance(f_real, ref)}
    return out


def share_interval(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The 95 % Wilson score interval (Wilson 1927) of a share k / n: (low, high), both in [0, 1].

    Unlike k/n ± z·sqrt(p(1-p)/n) it never leaves [0, 1] and is not empty at k = 0 or k = n: 0 of 20 right gives
    (0, 0.16), not (0, 0).  ``z`` = 1.96 for 95 %."""
    if isinstance(k, bool) or isinstance(n, bool) or int(k) != k or int(n) != n:
        raise ValueError(f"share_interval needs whole counts; got k={k!r}, n={n!r}.")
    k, n = int(k), int(n)
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"share_interval needs 0 <= k <= n and n >= 1; got k={k}, n={n}.")
    p, z2 = k / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return (0.0 if k == 0 else centre - half), (1.0 if k == n else centre + half)


def format_share(k: int, n: int) -> str:
    """'k/n = p % (95 % interval lo-hi %)': a judged share as the notebooks print it."""
    lo, hi = share_interval(k, n)
    return f"{k}/{n} = {100 * k / n:.0f} % (95 % interval {100 * lo:.0f}-{100 * hi:.0f} %)"
