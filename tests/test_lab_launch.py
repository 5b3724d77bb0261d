"""`./course lab` really serves the course in JupyterLab on a local port, with the course kernel."""
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read().decode()


def test_course_lab_serves_the_notebooks(tmp_path):
    port, token = _free_port(), "course-test-token"
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"), JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"))
    proc = subprocess.Popen(
        [str(ROOT / "course"), "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={token}", "--ServerApp.port_retries=0"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while True:
            try:
                status, body = _get(f"{base}/api/contents?token={token}")
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise AssertionError("JupyterLab did not come up:\n" + proc.stdout.read().decode()[-3000:])
                time.sleep(1)
        assert status == 200
        names = {item["name"] for item in json.loads(body)["content"]}
        expected = {p.name for p in (ROOT / "notebooks").iterdir() if not p.name.startswith(".")}
        assert names == expected and names, (names, expected)
        status, lab_page = _get(f"{base}/lab?token={token}")
        assert status == 200 and "JupyterLab" in lab_page
        status, specs = _get(f"{base}/api/kernelspecs?token={token}")
        assert "ddpm-course" in json.loads(specs)["kernelspecs"]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
