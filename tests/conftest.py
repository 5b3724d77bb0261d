"""Shared fixture for the notebook tests: execute a notebook in a fresh kernel of this interpreter."""
from __future__ import annotations

import os
from pathlib import Path

import pytest


def execute_notebook(nb, cwd: Path, allow_errors: bool = False, timeout: int = 600):
    """Run ``nb`` (a NotebookNode, changed in place) in the fast profile, one PyTorch thread (as nbval's kernels)."""
    from nbclient import NotebookClient

    env = {"DDPM_PROFILE": "fast", "OMP_NUM_THREADS": "1", **os.environ}   # see notebooks/conftest.py
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
                            resources={"metadata": {"path": str(cwd)}})
    client.execute(env=env)
    return nb


@pytest.fixture(scope="session")
def run_notebook():
    return execute_notebook
