"""hub/auth.py and ddpm_instructor/lti.py: LTI 1.3 login to the class hub and grades back to the LMS.

A simulated platform (tests/lti_platform.py: its own keys and JWKS, signed id_tokens, a token endpoint and an AGS line
item that records scores) launches a real hub (``./course hub`` with DDPM_HUB_AUTH=lti13) through
jupyterhub-ltiauthenticator's own login and launch endpoints: the hub user is named from the LMS id, the LMS role sets
the instructors group, a forged or replayed launch is refused.  ``./course instructor grades --lti`` then posts the
graded student's score to the line item, and none for the student without a submission unless asked.  In Chromium
(Playwright), a student launched from the LMS lands in their lab and fetches and submits in the Assignment List.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path

import jwt
import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from hub.auth import lti_username  # noqa: E402
from hub_machine import Hub, usable  # noqa: E402
from lti_platform import INSTRUCTOR, LEARNER, Platform  # noqa: E402

WHY_NOT = usable() or (None if shutil.which("node") else "needs Node.js (configurable-http-proxy)")
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")
FORM = re.compile(r'<form method="post" action="([^"]+)">(.*?)</form>', re.S)
INPUT = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


@pytest.fixture(scope="module")
def lms():
    platform = Platform()
    platform.people = {
        "hint-alice": {"sub": "canvas-user-1001", "name": "Alice A", "email": "alice@uni.test", "roles": [LEARNER]},
        "hint-bob": {"sub": "canvas-user-1002", "name": "Bob B", "email": "bob@uni.test", "roles": [LEARNER]},
        "hint-carol": {"sub": "canvas-user-1003", "name": "Carol C", "email": "carol@uni.test", "roles": [LEARNER]},
        "hint-prof": {"sub": "canvas-user-9", "name": "Prof P", "email": "prof@uni.test", "roles": [INSTRUCTOR]},
    }
    base = Path(tempfile.mkdtemp(prefix="ddpm-hub-lti-"))
    os.chmod(base, 0o755)
    hub = None
    try:
        hub = Hub(base, {"DDPM_HUB_AUTH": "lti13", "DDPM_LTI_ISSUER": platform.issuer,
                         "DDPM_LTI_CLIENT_ID": platform.client_id, "DDPM_LTI_AUTHORIZE_URL": platform.authorize_url,
                         "DDPM_LTI_JWKS_URL": platform.jwks_url, "DDPM_LTI_TOKEN_URL": platform.token_url})
        # the admin registers the tool's public key in the LMS
        platform.tool_jwks = json.loads((base / "state" / "lti" / "tool_jwks.json").read_text())
        yield platform, hub
    finally:
        if hub is not None:
            hub.stop()
        platform.close()
        shutil.rmtree(base, ignore_errors=True)


def start_launch(platform, hub, hint: str, assignment: str = "ps1"):
    """The LMS starts a launch: the hub's login endpoint redirects to the platform, whose page holds the id_token
    form; returns (browser session, form action, form fields)."""
    import requests

    s = requests.Session()
    r = s.get(hub.url + "/hub/lti13/oauth_login", timeout=30, params={
        "iss": platform.issuer, "login_hint": hint, "target_link_uri": hub.url + "/hub/",
        "client_id": platform.client_id, "lti_message_hint": assignment, "lti_deployment_id": "1"})
    assert r.status_code == 200 and r.url.startswith(platform.authorize_url), (r.status_code, r.url, r.text[:300])
    action, inputs = FORM.search(r.text).groups()
    return s, action, dict(INPUT.findall(inputs))


def launch(platform, hub, hint: str, assignment: str = "ps1"):
    s, action, fields = start_launch(platform, hub, hint, assignment)
    r = s.post(action, data=fields, allow_redirects=False, timeout=30)
    return s, r


def hub_user(hub, session) -> dict:
    r = session.get(hub.url + "/hub/api/user", headers={"X-XSRFToken": session.cookies.get("_xsrf", "")},
                    timeout=30)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    return r.json()


def test_a_launch_names_the_user_by_the_lms_id_and_maps_the_role(lms):
    platform, hub = lms
    for hint, group in (("hint-alice", []), ("hint-prof", ["instructors"])):
        s, r = launch(platform, hub, hint)
        assert r.status_code == 302, (r.status_code, r.text[:300])
        me = hub_user(hub, s)
        assert me["name"] == lti_username(platform.issuer, platform.people[hint]["sub"])
        assert me["groups"] == group
    book = json.loads((hub.base / "state" / "lti" / "launches.json").read_text())
    alice = lti_username(platform.issuer, "canvas-user-1001")
    assert book["users"][alice] == {"sub": "canvas-user-1001", "role": "student", "name": "Alice A",
                                    "email": "alice@uni.test"}
    assert book["lineitems"]["ps1"]["url"] == platform.lineitem("ps1")
    assert book["platform"] == {"issuer": platform.issuer, "client_id": platform.client_id,
                                "token_url": platform.token_url}


def test_a_forged_or_replayed_launch_logs_no_one_in(lms):
    platform, hub = lms
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    s, action, fields = start_launch(platform, hub, "hint-bob")
    nonce = jwt.decode(fields["id_token"], options={"verify_signature": False})["nonce"]
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    # Bob makes himself an instructor in a token signed by his own key (same kid, same nonce)
    forged = platform.id_token("hint-bob", nonce, key=other,
                               **{"https://purl.imsglobal.org/spec/lti/claim/roles": [INSTRUCTOR]})
    r = s.post(action, data={**fields, "id_token": forged}, allow_redirects=False, timeout=30)
    assert r.status_code in (400, 401), r.status_code
    assert s.get(hub.url + "/hub/api/user", timeout=30).status_code == 403       # not logged in
    # a genuine launch posted again from another browser (no state or nonce cookie) is refused too
    s2, action2, fields2 = start_launch(platform, hub, "hint-bob")
    import requests
    r = requests.post(action2, data=fields2, allow_redirects=False, timeout=30)
    assert r.status_code == 400


def make_gradebook(course: Path, graded: str, missing: str, monkeypatch) -> None:
    """ps1 (one 10-point test cell); ``graded`` autograded at 7, ``missing`` with no submission."""
    from nbgrader.api import Gradebook

    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")   # its alembic
    course.mkdir(parents=True)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        gb.add_assignment("ps1")
        gb.add_notebook("hello", "ps1")
        gb.add_grade_cell("q1", "hello", "ps1", max_score=10, cell_type="code")
        for student in (graded, missing):
            gb.add_student(student)
        gb.add_submission("ps1", graded, timestamp=dt.datetime(2026, 12, 1, 12, 0))
        grade = gb.find_grade("q1", "hello", "ps1", graded)
        grade.auto_score = 7
        gb.db.commit()
    (course / "autograded" / graded / "ps1").mkdir(parents=True)


def grades_lti(hub, course: Path, capsys, *extra: str) -> subprocess.CompletedProcess:
    """``./course instructor grades --lti ...`` (its entry point, in this process: the CLI's start-up is seconds)."""
    from ddpm_instructor.cli import main

    capsys.readouterr()
    code = main(["--course-dir", str(course), "grades", "--lti", "--lti-state", str(hub.base / "state"), *extra])
    out = capsys.readouterr()
    return subprocess.CompletedProcess([], code, out.out, out.err)


def test_grades_go_back_to_the_lms_line_item_and_no_submission_gets_no_score(lms, monkeypatch, capsys):
    platform, hub = lms
    for hint in ("hint-alice", "hint-bob"):
        assert launch(platform, hub, hint)[1].status_code == 302
    alice = lti_username(platform.issuer, "canvas-user-1001")
    bob = lti_username(platform.issuer, "canvas-user-1002")
    course = hub.base / "grading"
    make_gradebook(course, graded=alice, missing=bob, monkeypatch=monkeypatch)
    platform.scores.clear()
    r = grades_lti(hub, course, capsys)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(platform.scores) == 1, (platform.scores, platform.refused)
    score = platform.scores[0]
    assert dt.datetime.fromisoformat(score.pop("timestamp").replace("Z", "+00:00")).tzinfo is not None
    assert score == {"lineitem": "/lineitems/ps1", "query": "type=ddpm", "userId": "canvas-user-1001",
                     "scoreGiven": 7.0, "scoreMaximum": 10.0, "activityProgress": "Completed",
                     "gradingProgress": "FullyGraded"}
    assert f"{bob}" in r.stdout and "no submission: no score sent" in r.stdout
    # the instructor asks for zeros
    platform.scores.clear()
    r = grades_lti(hub, course, capsys, "--lti-zero-missing")
    assert r.returncode == 0, r.stdout + r.stderr
    by_user = {s["userId"]: s for s in platform.scores}
    assert by_user["canvas-user-1002"]["scoreGiven"] == 0 and by_user["canvas-user-1001"]["scoreGiven"] == 7.0
    assert "canvas-user-9" not in by_user          # the instructor gets no score


def test_grade_passback_with_an_unregistered_key_is_refused_with_a_clear_error(lms, tmp_path, monkeypatch, capsys):
    platform, hub = lms
    alice = lti_username(platform.issuer, "canvas-user-1001")
    course = tmp_path / "grading"
    make_gradebook(course, graded=alice, missing=lti_username(platform.issuer, "canvas-user-1002"),
                   monkeypatch=monkeypatch)
    registered = platform.tool_jwks
    platform.tool_jwks = {"keys": []}
    platform.scores.clear()
    try:
        r = grades_lti(hub, course, capsys)
    finally:
        platform.tool_jwks = registered
    assert r.returncode == 2 and platform.scores == []
    assert "error:" in r.stderr and "/token answered 401" in r.stderr


# ---------------------------------------------------------------- in a browser
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def release_as_instructor(hub, assignment: str) -> None:
    """What an instructor's terminal on the hub runs (root plays the instructor): nbgrader's release."""
    state = hub.base / "state"
    release = state / "course" / "release" / assignment
    release.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("answer = None")]),
                   release / "hello.ipynb")
    env = {**os.environ, "JUPYTER_CONFIG_PATH": str(state / "etc" / "instructor"), "PYTHONPATH": str(REPO),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    r = subprocess.run([str(Path(sys.executable).parent / "nbgrader"), "release_assignment", assignment],
                       cwd=state / "course", env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]


def test_a_student_launched_from_the_lms_fetches_and_submits_in_the_assignment_list(lms, tmp_path):
    if not os.access(CHROMIUM, os.X_OK):     # .ci/run installs it; under CI=true tests/conftest.py fails a skip
        pytest.skip("no Chromium at /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    platform, hub = lms
    release_as_instructor(hub, "ps1")
    name = lti_username(platform.issuer, "canvas-user-1003")
    launch_url = hub.url + "/hub/lti13/oauth_login?" + urllib.parse.urlencode({
        "iss": platform.issuer, "login_hint": "hint-carol", "target_link_uri": hub.url + "/hub/",
        "client_id": platform.client_id, "lti_message_hint": "ps1"})
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(60_000)
            page.goto(launch_url)                   # the LMS's launch: login, the platform's form, the callback
            page.wait_for_url(f"**/user/{name}/lab**", timeout=180_000)
            page.get_by_text("Nbgrader", exact=True).click()
            page.get_by_text("Assignment List", exact=True).click()
            released = page.locator("#released_assignments_list")
            expect(released).to_contain_text("ps1", timeout=60_000)
            released.get_by_role("button", name="Fetch").click()
            fetched = page.locator("#fetched_assignments_list")
            expect(fetched).to_contain_text("ps1", timeout=60_000)
            fetched.get_by_role("button", name="Submit").click()
            expect(page.locator("#submitted_assignments_list")).to_contain_text("ps1", timeout=60_000)
            page.screenshot(path=str(tmp_path / "assignment_list_submitted.png"))
        finally:
            browser.close()
    inbound = hub.base / "exchange" / "ddpm-course" / "inbound"
    mine = [p for p in inbound.iterdir() if p.name.startswith(name + "+ps1+")]
    assert len(mine) == 1 and mine[0].stat().st_uid == pwd.getpwnam(name).pw_uid
    assert (Path(pwd.getpwnam(name).pw_dir) / "ps1" / "hello.ipynb").is_file()
