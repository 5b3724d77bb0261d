"""The hub's trial login (DDPM_HUB_AUTH=native, NativeAuthenticator), on a real ``./course hub`` on 127.0.0.1.

An admin (DDPM_HUB_ADMINS) signs up and logs in at once; a student signs up and cannot log in until the admin
approves them at /hub/authorize.  (JupyterHub 6 broke this login, a 500 at every login: the hub extra keeps
JupyterHub 5.)  Needs root; no server is started; the hub is stopped afterwards.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hub_machine import Hub, usable  # noqa: E402

WHY_NOT = usable() or (None if shutil.which("node") else "needs Node.js (configurable-http-proxy)")
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")


@pytest.fixture(scope="module")
def hub():
    base = Path(tempfile.mkdtemp(prefix="ddpm-hub-native-"))
    os.chmod(base, 0o755)
    tag = os.urandom(3).hex()
    h = None
    try:
        h = Hub(base, {"DDPM_HUB_AUTH": "native", "DDPM_HUB_ADMINS": f"ad-{tag}"})
        h.names = {"admin": f"ad-{tag}", "student": f"na-{tag}"}
        yield h
    finally:
        if h is not None:
            h.stop()
        shutil.rmtree(base, ignore_errors=True)


def _session(hub, path: str):
    import requests

    s = requests.Session()
    assert s.get(hub.url + path, timeout=30).status_code == 200
    return s


def sign_up(hub, name: str, password: str) -> int:
    s = _session(hub, "/hub/signup")
    return s.post(hub.url + "/hub/signup", timeout=30, data={
        "username": name, "signup_password": password, "signup_password_confirmation": password,
        "_xsrf": s.cookies.get("_xsrf")}).status_code


def log_in(hub, name: str, password: str):
    """(session, where the hub sends them: /hub/spawn when logged in, None when refused)."""
    s = _session(hub, "/hub/login")
    r = s.post(hub.url + "/hub/login", allow_redirects=False, timeout=30,
               data={"username": name, "password": password, "_xsrf": s.cookies.get("_xsrf")})
    assert r.status_code in (200, 302), (r.status_code, r.text[:300])
    return s, r.headers.get("Location") if r.status_code == 302 else None


def test_a_student_logs_in_only_once_an_admin_approves_them(hub):
    admin, student = hub.names["admin"], hub.names["student"]
    assert sign_up(hub, admin, "admin-password-1") == 200
    assert sign_up(hub, student, "student-password-1") == 200
    assert log_in(hub, student, "student-password-1")[1] is None           # not approved yet
    s, where = log_in(hub, admin, "admin-password-1")
    assert where == "/hub/spawn"
    page = s.get(hub.url + "/hub/authorize", timeout=30)
    assert page.status_code == 200 and student in page.text
    assert s.get(f"{hub.url}/hub/authorize/{student}", timeout=30).status_code == 200
    assert log_in(hub, student, "student-password-1")[1] == "/hub/spawn"
    assert log_in(hub, student, "wrong-password-1")[1] is None
