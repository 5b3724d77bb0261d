"""Shared by the benchmark scripts and tests: the MNIST classifier, Fréchet distance (both re-exported from
``tutorial_utils.judge``), machine description.

The classifier is a separate small CNN (not part of the course) used only to judge samples:
accuracy on conditional samples, share of unconditional samples read as 6, and the Fréchet
distance in its 128-d penultimate feature space.  Train it with ``python benchmarks/train_classifier.py``.
"""
from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import torch

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


# The judge (classifier, classify, Fréchet distance) lives in tutorial_utils.judge, shared with the notebooks.
from tutorial_utils.judge import (CLASSIFIER_PATH, MnistClassifier, classify, frechet_distance,  # noqa: E402,F401
                                  judge_samples, load_classifier)


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
