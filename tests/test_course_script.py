"""`./course`'s start-up: once set up, `lab` and `test` start without re-checking the install (issue 24: a second
`./course lab` took ~32 s importing every package); a changed pyproject.toml or `./course setup` checks it again.

The venv here is a fake one (DDPM_VENV): its `python` only logs how it was called, so no package is imported.
"""
import functools
import hashlib
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

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


# ------------------------------------------------------------------ which PyTorch `./course setup` installs
# Issue 24: the repository route installed PyPI's CUDA build on CPU-only machines (a 6.5 GB venv).  The venv's python
# here logs its calls, says nothing is installed yet (the import check fails, so pip runs: logged, not run) and runs
# the CPU index probe (`python -`) with this interpreter; nvidia-smi and uname are fakes on PATH; the "CPU index" is
# a local HTTP server, or a socket that never answers.
SIZE = re.compile(r"\(about ([\d.]+) GB to download, a venv of about ([\d.]+) GB\)")
H100 = "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-5f1c2a40-7b1e-4c39-9d0e-0a1b2c3d4e5f)"
NO_DRIVER = ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest "
             "NVIDIA driver is installed and running.")


def _exe(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture(scope="module")
def cpu_index(tmp_path_factory):
    """A package index that answers: its torch/ page, served over HTTP on a local port."""
    root = tmp_path_factory.mktemp("cpu_index")
    (root / "torch").mkdir()
    (root / "torch" / "index.html").write_text('<a href="torch-2.14.1+cpu-cp311-cp311-linux_x86_64.whl">torch</a>\n')
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(SimpleHTTPRequestHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture
def silent_index():
    """An index that never answers: the connection is accepted by the kernel, then nothing comes back."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield f"http://127.0.0.1:{s.getsockname()[1]}/"


def _setup(tmp_path: Path, index: str, *, nvidia_smi: str | None = None, uname: str = "Linux", torch: str = "",
           **env_extra) -> tuple[subprocess.CompletedProcess, list[str], float]:
    """`./course setup` on a fresh fake venv: (result, the venv python's calls, wall seconds)."""
    course, venv, log = _course_copy(tmp_path)
    _exe(venv / "bin" / "python", f"""#!/bin/bash
echo "$*" >> {log}
case "$1" in
  -) exec {sys.executable} "$@" ;;
  -c) [[ "$2" == "import solutions"* ]] && exit 1
      [[ "$2" == "import torch"* ]] && echo "torch 2.14.1+cpu | cuda: False" ;;
esac
exit 0
""")
    if torch:
        (venv / "lib" / "python3.11" / "site-packages" / f"torch-{torch}.dist-info").mkdir(parents=True)
    fakes = tmp_path / "fakebin"
    fakes.mkdir()
    _exe(fakes / "uname", f"#!/bin/sh\necho {uname}\n")
    if nvidia_smi is not None:
        _exe(fakes / "nvidia-smi", nvidia_smi)
    # no real nvidia-smi either (a GPU machine's): only the fake decides
    path = [str(fakes)] + [d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "nvidia-smi").exists()]
    env = {k: v for k, v in os.environ.items() if k not in ("DDPM_TORCH", "DDPM_TORCH_INDEX")}
    env.update(DDPM_VENV=str(venv), PATH=os.pathsep.join(path), DDPM_TORCH_INDEX=index, **env_extra)
    t0 = time.monotonic()
    out = subprocess.run([str(course / "course"), "setup"], env=env, capture_output=True, text=True, timeout=60)
    return out, log.read_text().splitlines(), time.monotonic() - t0


def _pip(calls: list[str]) -> list[str]:
    pips = [c.split() for c in calls if c.startswith("-m pip install")]
    assert len(pips) == 1, calls                                     # one pip call
    return pips[0]


def _said_before_pip(out: subprocess.CompletedProcess, marker: str) -> str:
    """The line that says which build, printed before the install starts."""
    lines = out.stdout.splitlines()
    said = [i for i, line in enumerate(lines) if marker in line]
    start = [i for i, line in enumerate(lines) if line.startswith("==> installing the course")]
    assert said and start and said[0] < start[0], out.stdout
    return lines[said[0]]


@pytest.mark.parametrize("nvidia_smi", [None, f"#!/bin/sh\necho '{NO_DRIVER}'\nexit 9\n"],
                         ids=["no-nvidia-smi", "nvidia-smi-fails"])
def test_no_gpu_installs_the_cpu_build_and_says_its_size_first(tmp_path, cpu_index, nvidia_smi):
    out, calls, _ = _setup(tmp_path, cpu_index, nvidia_smi=nvidia_smi)
    assert out.returncode == 0, out.stderr
    pip = _pip(calls)
    assert pip[pip.index("--extra-index-url") + 1] == cpu_index and pip[-2:][0] == "-e", pip
    assert "--index-url" not in pip, pip                            # the configured index stays, for the rest
    line = _said_before_pip(out, "CPU build")
    assert line.startswith("==> no NVIDIA GPU") and cpu_index in line, line
    download, venv = map(float, SIZE.search(line).groups())
    assert download < 1 and venv < 2, line
    assert "note:" not in out.stderr, out.stderr


def test_a_gpu_keeps_the_default_build_and_says_its_size_first(tmp_path, silent_index):
    out, calls, took = _setup(tmp_path, silent_index, nvidia_smi=f"#!/bin/sh\necho '{H100}'\n")
    assert out.returncode == 0, out.stderr
    assert not any(c.startswith("- ") for c in calls), calls       # no probe of the CPU index: not needed
    pip = _pip(calls)
    assert not [a for a in pip if "index-url" in a], pip
    line = _said_before_pip(out, "CUDA build")
    assert "NVIDIA H100 80GB HBM3" in line and "UUID" not in line, line
    download, venv = map(float, SIZE.search(line).groups())
    assert download > 2 and venv > 5, line
    assert took < 4, took


def test_an_unreachable_cpu_index_falls_back_to_the_default_quickly_in_one_line(tmp_path, silent_index):
    out, calls, took = _setup(tmp_path, silent_index)
    assert out.returncode == 0, out.stderr
    assert took < 12, f"the set-up waited {took:.1f} s for an index that never answers"
    pip = _pip(calls)
    assert not [a for a in pip if "index-url" in a], pip
    said = [line for line in out.stdout.splitlines() if silent_index in line]
    assert len(said) == 1, out.stdout
    assert "did not answer within 5 s" in said[0] and "CUDA build" in said[0] and SIZE.search(said[0]), said[0]
    assert "delete" in said[0], said[0]                              # and how to get the CPU build later


@pytest.mark.parametrize("torch_env, gpu, expect_index", [("cpu", True, True), ("cuda", False, False),
                                                          ("default", False, False)])
def test_ddpm_torch_overrides_the_detection(tmp_path, cpu_index, torch_env, gpu, expect_index):
    out, calls, _ = _setup(tmp_path, cpu_index, nvidia_smi=f"#!/bin/sh\necho '{H100}'\n" if gpu else None,
                           DDPM_TORCH=torch_env)
    assert out.returncode == 0, out.stderr
    pip = _pip(calls)
    assert ("--extra-index-url" in pip) == expect_index, pip
    line = _said_before_pip(out, f"DDPM_TORCH={torch_env}")
    assert ("CPU build" if expect_index else "CUDA build") in line and SIZE.search(line), line


def test_ddpm_torch_cpu_with_an_unreachable_index_stops_before_installing(tmp_path, silent_index):
    out, calls, _ = _setup(tmp_path, silent_index, DDPM_TORCH="cpu")
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert not [c for c in calls if c.startswith("-m pip")], calls
    assert "did not answer within 5 s" in out.stderr and "DDPM_TORCH=default" in out.stderr, out.stderr


def test_a_wrong_ddpm_torch_says_the_choices(tmp_path, cpu_index):
    out, calls, _ = _setup(tmp_path, cpu_index, DDPM_TORCH="rocm")
    assert out.returncode == 2 and "use cpu, cuda or default" in out.stderr, (out.stdout, out.stderr)
    assert not [c for c in calls if c.startswith("-m pip")], calls


def test_a_venv_that_has_pytorch_keeps_it(tmp_path, cpu_index):
    out, calls, _ = _setup(tmp_path, cpu_index, torch="2.14.1+cu130")
    assert out.returncode == 0, out.stderr
    assert not [a for a in _pip(calls) if "index-url" in a], calls
    assert "PyTorch 2.14.1+cu130 is already in" in out.stdout, out.stdout


def test_macos_gets_the_default_build_without_asking_nvidia_smi(tmp_path, cpu_index):
    out, calls, _ = _setup(tmp_path, cpu_index, uname="Darwin", nvidia_smi="#!/bin/sh\nexit 99\n")
    assert out.returncode == 0, out.stderr
    assert not [a for a in _pip(calls) if "index-url" in a], calls
    assert "macOS build" in out.stdout, out.stdout
