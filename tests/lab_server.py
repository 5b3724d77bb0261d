"""Start `./course lab --no-browser` on a free local port for a test, and stop it (tests/test_lab_launch.py and
tests/test_browser.py).  The server gets its own runtime/config folders and workspace under the test's tmp_path."""
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


def start_lab(tmp_path: Path, token: str, timeout: float = 120, **env_extra):
    """(process, base URL) of a running `./course lab`; raises AssertionError with its log if it does not come up."""
    port = free_port()
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"), JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"),
               DDPM_WORKSPACE=str(tmp_path / "workspace"), **env_extra)
    log = open(tmp_path / "lab.log", "wb")
    proc = subprocess.Popen(
        [str(ROOT / "course"), "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={token}", "--ServerApp.port_retries=0"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5):
                return proc, base
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                stop(proc)
                raise AssertionError("JupyterLab did not come up:\n" + (tmp_path / "lab.log").read_text()[-3000:])
            time.sleep(0.5)


def stop(proc) -> None:
    """Stop the server and everything it started (its process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
