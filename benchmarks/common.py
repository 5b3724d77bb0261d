"""Shared by the benchmark scripts and tests: the MNIST classifier, Fréchet distance, machine description.

The classifier is a separate small CNN (not part of the course) used only to judge samples:
accuracy on conditional samples, share of unconditional samples read as 6, and the Fréchet
distance in its 128-d penultimate feature space.  Train it with ``python benchmarks/train_classifier.py``.
"""
from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
CLASSIFIER_PATH = BENCH_DIR / "mnist_classifier.pt"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


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


def load_classifier(path=CLASSIFIER_PATH, device="cpu") -> MnistClassifier:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path} is missing; train it with: python benchmarks/train_classifier.py")
    model = MnistClassifier()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.to(device).eval()


@torch.inference_mode()
def classify(model: MnistClassifier, x: Tensor, batch: int = 1000) -> tuple[Tensor, Tensor]:
    """(predicted labels, 128-d features) for images in [-1, 1] (clamped first, as a viewer would)."""
    preds, feats = [], []
    for i in range(0, x.shape[0], batch):
        xb = x[i:i + batch].float().clamp(-1, 1)
        f = model.features(xb)
        preds.append(model.head(f).argmax(1))
        feats.append(f)
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


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return (f"{cpu}, {os.cpu_count()} logical cores visible, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads used){gpu}, Python {platform.python_version()}")


def set_data_env() -> None:
    os.environ.setdefault("DDPM_DATA_DIR", str(REPO.parent / "shared" / "data"))
    os.environ.setdefault("DDPM_DOWNLOAD", "0")
