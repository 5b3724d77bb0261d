"""Start a JupyterLab server for a test on a free local port, and stop it (tests/test_lab_launch.py and
tests/test_browser.py): the student lab (`./course lab`), the instructor lab (`./course instructor lab`), or any
command that ends in `jupyter lab` options (a bundle's `.venv/bin/python tutorial_utils/lab.py`).  Each server gets
its own runtime/config folders (never the tester's ~/.jupyter) and, for the student lab, a workspace under tmp_path."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(argv: list[str], tmp_path: Path, token: str, timeout: float = 120, cwd: Path = ROOT,
                 log: str = "lab.log", **env_extra):
    """(process, base URL) of ``argv`` + the server options (port, local address, token); raises AssertionError with
    its log if it does not come up in ``timeout`` seconds."""
    port = free_port()
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / f"rt-{port}"), JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"),
               **env_extra)
    out = open(tmp_path / log, "wb")
    proc = subprocess.Popen(
        [*argv, "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
         "--ServerApp.port_retries=0"], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5):
                return proc, base
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                stop(proc)
                raise AssertionError(f"JupyterLab ({' '.join(map(str, argv))}) did not come up:\n"
                                     + (tmp_path / log).read_text()[-3000:])
            time.sleep(0.5)


def start_lab(tmp_path: Path, token: str, timeout: float = 120, **env_extra):
    """`./course lab` on a workspace in ``tmp_path/workspace``."""
    return start_server([str(ROOT / "course"), "lab"], tmp_path, token, timeout,
                        DDPM_WORKSPACE=str(tmp_path / "workspace"), **env_extra)


def start_instructor_lab(tmp_path: Path, course_dir: Path, token: str, timeout: float = 120, **env_extra):
    """`./course instructor lab` on the course directory ``course_dir``."""
    return start_server([str(ROOT / "course"), "instructor", "--course-dir", str(course_dir), "lab", "--"],
                        tmp_path, token, timeout, log="instructor_lab.log", **env_extra)


def stop(proc) -> None:
    """Stop the server and everything it started (its process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
