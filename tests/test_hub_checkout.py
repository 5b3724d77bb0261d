"""hub/checkout.py: the hub's set-up closes the checkout's folders to every OS user but root and the instructors,
leaving open only the venv the servers run and the folders without answers (a scratch checkout, no hub)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from hub.checkout import ALWAYS_OPEN, close_checkout  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="gives folders to the instructors' group: needs root")


def test_every_folder_but_the_venv_and_the_answerless_ones_is_closed(tmp_path):
    repo = tmp_path / "checkout"
    for name in ("solutions", "notebooks/source", ".git", "tests", "grading", "ddpm_instructor", ".venv/bin",
                 *ALWAYS_OPEN):
        (repo / name).mkdir(parents=True)
    (repo / "solutions" / "diffusion.py").write_text("answer = 42\n")
    (repo / "README.md").write_text("readme\n")
    os.chmod(repo, 0o750)                             # not enterable by others: the venv would be out of reach
    gid = 4242
    got = close_checkout(repo, gid, keep=[repo / ".venv"])
    closed = {p.name for p in got.closed}
    assert closed == {"solutions", "notebooks", ".git", "tests", "grading", "ddpm_instructor"}
    assert {p.name for p in got.left_open} == {".venv", *ALWAYS_OPEN}
    for name in closed:
        st = (repo / name).stat()
        assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o750, 0, gid), name
    assert (repo / ".venv").stat().st_mode & 0o777 == 0o755
    assert repo.stat().st_mode & 0o001                # others may pass through to the venv
    assert (repo / "solutions" / "diffusion.py").stat().st_mode & 0o777 == 0o644   # contents keep their modes
    assert close_checkout(repo, gid, keep=[repo / ".venv"]) == got                  # again: nothing changes
