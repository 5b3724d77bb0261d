"""Shared fixtures for the notebook tests: where the notebooks are, and a way to execute one."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SOURCE = NOTEBOOKS / "source"
RELEASE = NOTEBOOKS / "release"

# The six lessons: assignment folder -> notebook file (nbgrader's course layout, notebooks/ is the course root).
LESSONS = {
    "01_forward_1d": "01_forward_diffusion_1d.ipynb",
    "02_forward_closed_form": "02_forward_closed_form.ipynb",
    "03_unet": "03_unet_time_embedding.ipynb",
    "04_training": "04_training_algorithm1.ipynb",
    "05_sampling": "05_sampling_algorithm2.ipynb",
    "06_conditional": "06_class_conditional.ipynb",
}


def source_path(assignment: str) -> Path:
    return SOURCE / assignment / LESSONS[assignment]


def release_path(assignment: str) -> Path:
    return RELEASE / assignment / LESSONS[assignment]


def execute_notebook(nb, cwd: Path, allow_errors: bool = False, timeout: int = 600):
    """Run ``nb`` (a NotebookNode, modified in place) in a fresh kernel of this interpreter, fast profile."""
    from nbclient import NotebookClient

    env = dict(os.environ)
    for key, value in {"DDPM_PROFILE": "fast", "OMP_NUM_THREADS": "1"}.items():  # as notebooks/conftest.py
        env.setdefault(key, value)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
                            resources={"metadata": {"path": str(cwd)}})
    client.execute(env=env)
    return nb


@pytest.fixture(scope="session")
def lessons():
    return dict(LESSONS)
