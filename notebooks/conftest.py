"""pytest collects notebooks/source with nbval (see pyproject.toml and notebooks/README.md)."""
import os

import pytest

# The student versions in release/ contain blanks and fail by design; tests/test_student_versions.py runs them.
collect_ignore = ["release"]

# Environment of the nbval kernels (only theirs: set while a notebook cell is being set up, when nbval starts
# the notebook's kernel, and put back afterwards).  Explicit settings in the environment win.
#   DDPM_PROFILE=smoke  the stored outputs are those of the smoke profile (CI and grading);
#   OMP_NUM_THREADS=1  on a busy 2-core machine two PyTorch threads per process fight the other processes for
#                      the cores and a sampling step gets several times slower.
KERNEL_ENV = {"DDPM_PROFILE": "smoke", "OMP_NUM_THREADS": "1"}
_saved = {}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if item.path.suffix == ".ipynb":
        for key, value in KERNEL_ENV.items():
            if key not in os.environ:
                _saved[key] = None
                os.environ[key] = value


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item):
    for key in list(_saved):
        os.environ.pop(key, None)
        del _saved[key]
