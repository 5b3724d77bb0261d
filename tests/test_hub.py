"""./course hub (hub/jupyterhub_config.py, hub/spawn.py, hub/users.py, hub/labs.py): a real JupyterHub on 127.0.0.1.

A student and an instructor log in (the shared-password test login) and their servers start: each as its own OS user
(the instructor also in the instructors' OS group), the student with the student lab plus the Assignment List and no
Formgrader, the instructor with the Formgrader.  A hub username naming an account of the machine (``daemon``) gets no
server; the students' homes are closed to each other.  Needs root; the hub, its servers, users and groups are removed.
"""
from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hub_machine import Hub, server_process, usable  # noqa: E402

WHY_NOT = usable() or (None if shutil.which("node") else "needs Node.js (configurable-http-proxy)")
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")
PASSWORD = "test-only-password"
PAGE_CONFIG = re.compile(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', re.S)


@pytest.fixture(scope="module")
def hub():
    base = Path(tempfile.mkdtemp(prefix="ddpm-hub-"))
    os.chmod(base, 0o755)
    tag = os.urandom(3).hex()
    names = {"student": f"st-{tag}", "instructor": f"pr-{tag}"}
    h = None
    try:
        h = Hub(base, {"DDPM_HUB_AUTH": "dummy", "DDPM_HUB_DUMMY_PASSWORD": PASSWORD,
                       "DDPM_HUB_INSTRUCTORS": names["instructor"]})
        h.names = names
        yield h
    finally:
        if h is not None:
            h.stop()
        shutil.rmtree(base, ignore_errors=True)


def login(hub, name: str, ok: bool = True):
    import requests

    s = requests.Session()
    s.get(hub.url + "/hub/login", timeout=30)
    r = s.post(hub.url + "/hub/login?next=/hub/spawn", timeout=60,
               data={"username": name, "password": PASSWORD, "_xsrf": s.cookies.get("_xsrf")})
    if ok:
        assert r.status_code == 200, (r.status_code, r.text[:500])
    return s


def open_lab(hub, session, name: str, timeout: float = 150) -> dict:
    """Wait for ``name``'s server and open its lab; returns the lab's page config."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = session.get(f"{hub.url}/user/{name}/lab", timeout=60)
        m = PAGE_CONFIG.search(r.text) if r.status_code == 200 else None
        if m:
            return json.loads(m.group(1))
        if "failed" in r.text.lower() and "spawn" in r.text.lower():
            break
        time.sleep(1)
    raise AssertionError(f"{name}'s lab did not open:\n{hub.log_text()[-3000:]}")


@pytest.fixture(scope="module")
def student(hub):
    s = login(hub, hub.names["student"])
    return s, open_lab(hub, s, hub.names["student"])


@pytest.fixture(scope="module")
def instructor(hub):
    s = login(hub, hub.names["instructor"])
    return s, open_lab(hub, s, hub.names["instructor"])


def test_a_students_server_runs_as_their_own_os_user_with_the_student_lab(hub, student):
    session, page = student
    name = hub.names["student"]
    proc = server_process(name)
    assert proc is not None and proc["uid"] == pwd.getpwnam(name).pw_uid != 0
    assert f"{hub.os_groups}-instructors" not in proc["groups"]
    disabled = set(page["disabledExtensions"])
    assert {"@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment"} <= disabled
    assert "@jupyter/nbgrader:assignment-list" not in disabled
    assert session.get(f"{hub.url}/user/{name}/formgrader", timeout=30).status_code == 404
    listed = session.get(f"{hub.url}/user/{name}/assignments", params={"course_id": "ddpm-course"}, timeout=60)
    assert listed.status_code == 200 and listed.json()["success"], listed.text[:500]
    assert oct(os.stat(pwd.getpwnam(name).pw_dir).st_mode & 0o777) == "0o700"


def test_an_instructors_server_has_the_formgrader_and_the_instructors_group(hub, instructor):
    session, page = instructor
    name = hub.names["instructor"]
    proc = server_process(name)
    assert proc is not None and proc["uid"] == pwd.getpwnam(name).pw_uid
    assert f"{hub.os_groups}-instructors" in proc["groups"]
    assert "@jupyter/nbgrader:formgrader" not in page["disabledExtensions"]
    assert session.get(f"{hub.url}/user/{name}/formgrader", timeout=60).status_code == 200


def test_a_username_naming_a_machine_account_gets_no_server(hub):
    login(hub, "daemon", ok=False)      # the login's redirect to the spawn fails
    deadline = time.monotonic() + 30
    while "did not make" not in hub.log_text() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "an account of this machine that the hub did not make" in hub.log_text()
    assert server_process("daemon") is None
