"""Shared fixture for the notebook tests: execute a notebook in a fresh kernel of this interpreter."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# The suite runs on two pytest-xdist workers (pyproject.toml) sharing the machine's cores with the kernels and
# graders they start: one PyTorch thread per process (this worker, and through the environment every kernel, judge
# and sandboxed grading kernel it starts: the sandbox passes OMP_NUM_THREADS through), so that no process spins
# waiting for a core another one holds.  An OMP_NUM_THREADS already set wins.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def execute_notebook(nb, cwd: Path, allow_errors: bool = False, timeout: int = 600):
    """Run ``nb`` (a NotebookNode, changed in place) in the smoke profile, one PyTorch thread (as nbval's kernels)."""
    from nbclient import NotebookClient

    env = {"DDPM_PROFILE": "smoke", "OMP_NUM_THREADS": "1", **os.environ}   # see notebooks/conftest.py
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
                            resources={"metadata": {"path": str(cwd)}})
    client.execute(env=env)
    return nb


@pytest.fixture(scope="session")
def run_notebook():
    return execute_notebook


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI (``CI=true``, as ``.ci/run`` runs) a skipped test is a failure: CI installs everything the suite
    needs (bubblewrap, Chromium, the shipped checkpoints are in the repository), so a skip there means something is
    missing, and a skip must never read as a pass."""
    outcome = yield
    rep = outcome.get_result()
    if os.environ.get("CI", "").lower() == "true" and rep.skipped and not hasattr(rep, "wasxfail"):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = f"skipped under CI=true, where every test must run: {reason}"


# The hub tests start `./course hub`, whose set-up closes the checkout's top-level folders to students
# (hub/checkout.py: 0750 root:<the hub's instructors' group>, a group the tests delete afterwards).  The run gives
# the maintainer's checkout back as it found it: the owners and modes of those folders are noted once, before any
# worker starts (the controller, or the only process with -n 0), and put back when the whole run ends.
_REPO = Path(__file__).resolve().parent.parent
_FOLDER_MODES_KEY = pytest.StashKey[dict]()


def _top_level_folders() -> dict:
    return {p: (p.stat().st_uid, p.stat().st_gid, p.stat().st_mode & 0o7777) for p in sorted(_REPO.iterdir())
            if p.is_dir() and not p.is_symlink()}


def pytest_configure(config):
    if not hasattr(config, "workerinput"):
        config.stash[_FOLDER_MODES_KEY] = _top_level_folders()


def pytest_unconfigure(config):
    noted = config.stash.get(_FOLDER_MODES_KEY, None)
    for path, (uid, gid, mode) in (noted or {}).items():
        try:
            st = path.stat()
            if (st.st_uid, st.st_gid) != (uid, gid) and os.geteuid() == 0:
                os.chown(path, uid, gid)
            if st.st_mode & 0o7777 != mode:
                os.chmod(path, mode)
        except OSError:
            pass                    # a folder a test removed: nothing to give back
