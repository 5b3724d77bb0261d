"""`./course lab` really serves the students' workspace/ in JupyterLab on a local port, with the course kernel,
opens the first notebook and ships the settings defaults that turn off the news pop-up."""
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read().decode()


def test_course_lab_serves_the_workspace(tmp_path):
    port, token = _free_port(), "course-test-token"
    ws = tmp_path / "workspace"   # not the real workspace/
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"), JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"),
               DDPM_WORKSPACE=str(ws))
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
        # the root is the workspace, holding a copy of every released assignment, and no instructor sources
        names = {item["name"] for item in json.loads(body)["content"]}
        expected = {p.name for p in (ROOT / "notebooks" / "release").iterdir() if p.is_dir() and not p.name.startswith(".")}
        assert names == expected and names, (names, expected)
        assert not names & {"source", "notebooks", "solutions", "grading"}, names
        first = sorted(p.relative_to(ws).as_posix() for p in ws.glob("*/*.ipynb"))[0]
        assert first == "01_forward_1d/01_forward_diffusion_1d.ipynb", first
        status, nb = _get(f"{base}/api/contents/{first}?token={token}")
        assert status == 200 and json.loads(nb)["type"] == "notebook"
        # `/` goes to the first notebook
        req = urllib.request.Request(f"{base}/?token={token}")
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            opener.open(req, timeout=5)
            raise AssertionError("/ did not redirect")
        except urllib.error.HTTPError as e:
            assert e.code in (301, 302, 303, 307) and e.headers["Location"].split("?")[0].endswith(f"/lab/tree/{first}"), \
                (e.code, e.headers["Location"])
        status, lab_page = _get(f"{base}/lab/tree/{first}?token={token}")
        assert status == 200 and "JupyterLab" in lab_page
        # overrides.json (written by ./course setup) reaches the settings as the default
        status, setting = _get(f"{base}/lab/api/settings/@jupyterlab/apputils-extension:notification?token={token}")
        defaults = {k: v.get("default") for k, v in json.loads(setting)["schema"]["properties"].items()}
        assert defaults["fetchNews"] == "false" and defaults["checkForUpdates"] is False, defaults
        status, specs = _get(f"{base}/api/kernelspecs?token={token}")
        assert "ddpm-course" in json.loads(specs)["kernelspecs"]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
