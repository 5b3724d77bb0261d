"""`./course`'s start-up: once set up, `lab` and `test` start without re-checking the install (issue 24: a second
`./course lab` took ~32 s importing every package); a changed pyproject.toml or `./course setup` checks it again.

The venv here is a fake one (DDPM_VENV): its `python` only logs how it was called, so no package is imported.
"""
import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _course_copy(tmp_path: Path) -> tuple[Path, Path, Path]:
    course = tmp_path / "course_copy"
    course.mkdir()
    shutil.copy2(ROOT / "course", course / "course")
    shutil.copy2(ROOT / "pyproject.toml", course / "pyproject.toml")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    log = tmp_path / "calls.log"
    py = venv / "bin" / "python"
    py.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    py.chmod(py.stat().st_mode | stat.S_IXUSR)
    return course, venv, log


def _run(course: Path, venv: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, DDPM_VENV=str(venv))
    return subprocess.run([str(course / "course"), *args], env=env, capture_output=True, text=True, timeout=60)


def test_a_ready_venv_starts_without_the_import_check(tmp_path):
    course, venv, log = _course_copy(tmp_path)
    digest = hashlib.sha256((course / "pyproject.toml").read_bytes()).hexdigest()
    (venv / ".course-ready").write_text(f"{digest}\ntorch 9.9 | cuda: False\n")
    out = _run(course, venv, "test", "-q", "tests/none.py")
    assert out.returncode == 0, out.stderr
    calls = log.read_text().splitlines()
    assert calls == ["-m pytest -q tests/none.py"], calls        # pytest only: no `-c import ...`, no pip
    assert "torch 9.9" in out.stdout, out.stdout


def test_a_changed_project_file_checks_the_install_again(tmp_path):
    course, venv, log = _course_copy(tmp_path)
    (venv / ".course-ready").write_text("an-old-hash\ntorch 9.9 | cuda: False\n")
    out = _run(course, venv, "test", "-q")
    assert out.returncode == 0, out.stderr
    calls = log.read_text().splitlines()
    assert any(c.startswith("-c import solutions") for c in calls), calls     # the import check ran
    assert calls[-1] == "-m pytest -q", calls
    # and the new stamp matches this pyproject.toml, so the next start is quick
    digest = hashlib.sha256((course / "pyproject.toml").read_bytes()).hexdigest()
    assert (venv / ".course-ready").read_text().splitlines()[0] == digest
