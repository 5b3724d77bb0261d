"""`./course lab` really serves the students' workspace/ in JupyterLab on a local port, with the course kernel,
opens the first notebook, ships the settings defaults that turn off the news pop-up, and has nbgrader's Validate but
none of its instructor extensions (front-end plugins off in the page config, server extensions not loaded)."""
import json
import re
import urllib.error
import urllib.request
from pathlib import Path

from lab_server import start_lab, stop

INSTRUCTOR_PLUGINS = {"@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment",
                      "@jupyter/nbgrader:course-list", "@jupyter/nbgrader:assignment-list", "@jupyter/nbgrader:menu"}

ROOT = Path(__file__).resolve().parent.parent


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read().decode()


def _status(url):
    try:
        return _get(url)[0]
    except urllib.error.HTTPError as e:
        return e.code


def test_course_lab_serves_the_workspace(tmp_path):
    token = "course-test-token"
    ws = tmp_path / "workspace"   # not the real workspace/
    proc, base = start_lab(tmp_path, token)
    try:
        status, body = _get(f"{base}/api/contents?token={token}")
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
        # nbgrader: the instructor plugins are off in this server's page config, Validate's is not; the formgrader,
        # course list and assignment list server extensions are not loaded, Validate's is
        page = json.loads(re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                                    lab_page, re.S).group(1))
        assert set(page["disabledExtensions"]) >= INSTRUCTOR_PLUGINS, page["disabledExtensions"]
        assert "@jupyter/nbgrader:validate-assignment" not in page["disabledExtensions"]
        for path in ("formgrader", "formgrader/api/assignments", "courses", "assignments"):
            assert _status(f"{base}/{path}?token={token}") == 404, path
        status, version = _get(f"{base}/nbgrader_version?version=0&token={token}")   # validate_assignment's handler
        assert status == 200, version
        log = (tmp_path / "lab.log").read_text()
        assert "Loading the validate_assignment nbgrader serverextension" in log
        for ext in ("formgrader", "course_list", "assignment_list"):
            assert f"nbgrader.server_extensions.{ext} | extension was successfully" not in log, log[-3000:]
        assert "nbgrader.server_extensions.validate_assignment | extension was successfully loaded" in log
    finally:
        stop(proc)
