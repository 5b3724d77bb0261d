"""hub/auth.py and ddpm_instructor/lti.py: LTI 1.3 login to the class hub and grades back to the LMS.

A simulated platform (tests/lti_platform.py: its own keys and JWKS, signed id_tokens, a token endpoint and an AGS line
item that records scores) launches a real hub (``./course hub`` with DDPM_HUB_AUTH=lti13) through
jupyterhub-ltiauthenticator's own login and launch endpoints: the hub user is named from the LMS id, the LMS role sets
the instructors group, a forged or replayed launch is refused.  ``./course instructor grades --lti`` then posts the
graded student's score to the line item, and none for the student without a submission unless asked.

The class round trip (Chromium through Playwright, on the same hub): the instructor releases notebook 2 with
``./course instructor release --exchange``; two students launched from the LMS fetch, fill in and submit in the
Assignment List; a third, on her own OS account, fails to read or overwrite their submissions and her forged folder
is not collected; ``collect``, ``autograde`` and ``feedback`` (the course's commands) go through the exchange; the
two students fetch their feedback in the Assignment List; the LMS records exactly their two scores.  About 140 s on
2 busy cores (load 9): the release (~50 s, beside the servers' start) and the autograde (~70 s) are most of it; run
with ``-s`` to see the phases.
"""
from __future__ import annotations

import datetime as dt
import grp
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
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
        "hint-dana": {"sub": "canvas-user-1004", "name": "Dana D", "email": "dana@uni.test", "roles": [LEARNER]},
        "hint-eve": {"sub": "canvas-user-1005", "name": "Eve E", "email": "eve@uni.test", "roles": [LEARNER]},
        "hint-mal": {"sub": "canvas-user-1006", "name": "Mallory M", "email": "mal@uni.test", "roles": [LEARNER]},
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


A = "02_forward_closed_form"        # the small assignment: 4 graded tests, a few seconds to grade
COURSE_ID = "ddpm-course"           # hub/settings.py's default DDPM_HUB_COURSE_ID


def reference_answers(nb) -> nbformat.NotebookNode:
    """The released student version with every blank filled in with the source notebook's reference code."""
    src = nbformat.read(REPO / "notebooks" / "source" / A / f"{A}.ipynb", as_version=4)
    ref = {c.metadata["nbgrader"]["grade_id"]: "\n".join(
        line for line in c.source.split("\n") if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line)
        for c in src.cells if c.metadata.get("nbgrader", {}).get("solution")}
    for c in nb.cells:
        gid = c.metadata.get("nbgrader", {}).get("grade_id")
        if gid in ref:
            c.source = ref[gid]
    return nb


def as_os_user(name: str, argv: list[str]) -> subprocess.CompletedProcess:
    """``argv`` run as the hub-made OS user ``name`` (their groups), where they can run this Python."""
    from hub_machine import open_python_prefix

    pw = pwd.getpwnam(name)
    gids = [g.gr_gid for g in grp.getgrall() if name in g.gr_mem]
    groups = ["--groups", ",".join(map(str, gids))] if gids else ["--clear-groups"]
    return subprocess.run(open_python_prefix() + ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", *groups,
                                                  "--", *argv], capture_output=True, text=True, timeout=60,
                          cwd=pw.pw_dir, env={"PATH": "/usr/bin:/bin", "HOME": pw.pw_dir})


def instructor(course: Path, capsys, *argv: str) -> subprocess.CompletedProcess:
    """``./course instructor --course-dir COURSE ARGV`` through its entry point, in this process."""
    from ddpm_instructor.cli import main

    capsys.readouterr()
    code = main(["--course-dir", str(course), *argv])
    out = capsys.readouterr()
    return subprocess.CompletedProcess(argv, code, out.out, out.err)


def open_assignment_list(page):
    page.get_by_text("Nbgrader", exact=True).click()
    page.get_by_text("Assignment List", exact=True).click()


def put_notebook(page, name: str, path: str, nb) -> int:
    """Save ``nb`` as ``path`` through the student's own server (the Contents API, as the lab saves)."""
    return page.evaluate("""async ([url, body]) => {
        const xsrf = (document.cookie.match(/(?:^|; )_xsrf=([^;]*)/) || [])[1] || "";
        const r = await fetch(url, {method: "PUT", body, headers: {"Content-Type": "application/json",
                                                                    "X-XSRFToken": decodeURIComponent(xsrf)}});
        return r.status; }""", [f"/user/{name}/api/contents/{path}",
                                json.dumps({"type": "notebook", "format": "json", "content": nb})])


def test_a_class_round_trip_on_the_hub_with_the_courses_own_commands(lms, capsys, tmp_path):
    """The instructor releases with ``./course instructor release``; Dana and Eve launch from the LMS, fetch, fill
    in (Dana the reference answers, Eve nothing) and submit in the Assignment List; Mallory cannot read or overwrite
    their submissions, and a folder she files under Eve's name is not collected; the instructor collects, autogrades
    and returns feedback with the course's commands; Dana and Eve fetch their feedback in the Assignment List; the
    LMS receives exactly their two scores."""
    if not os.access(CHROMIUM, os.X_OK):     # .ci/run installs it; under CI=true tests/conftest.py fails a skip
        pytest.skip("no Chromium at /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    platform, hub = lms
    t0, phases = time.monotonic(), []          # printed at the end (-s): where the test's time goes

    def phase(what: str) -> None:
        phases.append(f"{what} {time.monotonic() - t0:.0f} s")

    course, exchange = hub.base / "state" / "course", hub.base / "exchange"
    name = {h: lti_username(platform.issuer, platform.people[h]["sub"]) for h in ("hint-dana", "hint-eve", "hint-mal")}
    dana, eve, mal = name["hint-dana"], name["hint-eve"], name["hint-mal"]
    # the instructor's release runs while the students' servers start
    release = subprocess.Popen([str(REPO / "course"), "instructor", "--course-dir", str(course), "release", A,
                                "--exchange", str(exchange), "--exchange-course", COURSE_ID],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        s_mal, r = launch(platform, hub, "hint-mal", A)      # Mallory's server (her OS user) starts too
        assert r.status_code == 302
        s_mal.get(hub.url + "/hub/spawn", timeout=60)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                pages = {}
                for hint in ("hint-dana", "hint-eve"):
                    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
                    page.set_default_timeout(60_000)
                    page.goto(hub.url + "/hub/lti13/oauth_login?" + urllib.parse.urlencode({
                        "iss": platform.issuer, "login_hint": hint, "target_link_uri": hub.url + "/hub/",
                        "client_id": platform.client_id, "lti_message_hint": A}))
                    pages[name[hint]] = page
                out, _ = release.communicate(timeout=300)
                phase("released")
                assert release.returncode == 0, out[-3000:]
                assert f"into the hub's exchange ({exchange / COURSE_ID / 'outbound' / A})" in out
                fetched = {}
                for who, page in pages.items():
                    page.wait_for_url(f"**/user/{who}/lab**", timeout=180_000)
                    open_assignment_list(page)
                    released = page.locator("#released_assignments_list")
                    expect(released).to_contain_text(A, timeout=60_000)
                    released.get_by_role("button", name="Fetch").click()
                    expect(page.locator("#fetched_assignments_list")).to_contain_text(A, timeout=60_000)
                    home = Path(pwd.getpwnam(who).pw_dir)
                    fetched[who] = nbformat.read(home / A / f"{A}.ipynb", as_version=4)
                phase("both labs open, fetched")
                done = reference_answers(fetched[dana])
                assert put_notebook(pages[dana], dana, f"{A}/{A}.ipynb", done) == 200
                assert put_notebook(pages[eve], eve, f"{A}/{A}.ipynb", fetched[eve]) == 200   # blanks as fetched
                for who, page in pages.items():
                    page.locator("#fetched_assignments_list").get_by_role("button", name="Submit").click()
                    expect(page.locator("#submitted_assignments_list")).to_contain_text(A, timeout=60_000)

                # Mallory, on her own OS account, goes for Dana's and Eve's submissions
                inbound = exchange / COURSE_ID / "inbound"
                subs = {who: next(p for p in inbound.iterdir() if p.name.startswith(f"{who}+{A}+")) for who in pages}
                nb_path = subs[dana] / f"{A}.ipynb"
                attempts = {"list the inbound": ["ls", str(inbound)], "read Dana's notebook": ["cat", str(nb_path)],
                            "overwrite it": ["sh", "-c", f"echo x > '{nb_path}'"],
                            "replace Eve's folder": ["mv", str(subs[eve]), str(inbound / "gone")]}
                succeeded = [what for what, argv in attempts.items() if as_os_user(mal, argv).returncode == 0]
                assert succeeded == []
                answers = Path(pwd.getpwnam(mal).pw_dir) / "answers.ipynb"     # Dana's answers, say she got them
                nbformat.write(done, answers)
                os.chown(answers, pwd.getpwnam(mal).pw_uid, -1)
                forged = inbound / f"{eve}+{A}+2099-01-01 00:00:00.000000 UTC+forgedforged"
                assert as_os_user(mal, ["sh", "-c", f"mkdir '{forged}' && cp '{answers}' '{forged}/{A}.ipynb'"]) \
                    .returncode == 0

                # the instructor: collect (the exchange only), autograde, feedback
                phase("submitted, Mallory refused")
                r = instructor(course, capsys, "collect")
                assert f"+ {dana}/{A}" in r.stdout and f"+ {eve}/{A}" in r.stdout, r.stdout + r.stderr
                assert "names a student who does not own it" in r.stdout and r.returncode == 1
                assert sorted(p.name for p in (course / "submitted").iterdir()) == sorted([dana, eve])
                phase("collected")
                r = instructor(course, capsys, "autograde", A, "--jobs", "2")
                assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
                phase("autograded")
                r = instructor(course, capsys, "feedback", A)
                assert r.returncode == 0, r.stdout + r.stderr
                for who in (dana, eve):
                    assert f"{who}: 1 page(s) returned through the hub's exchange" in r.stdout, r.stdout
                phase("feedback returned")

                # the students see it in the Assignment List and fetch it
                for who, page in pages.items():
                    page.reload()
                    page.wait_for_url(f"**/user/{who}/lab**")
                    open_assignment_list(page)
                    submitted = page.locator("#submitted_assignments_list")
                    expect(submitted).to_contain_text("feedback available to fetch", timeout=60_000)
                    submitted.get_by_role("button", name="Fetch Feedback").click()
                    expect(submitted).to_contain_text("view feedback", timeout=60_000)
                phase("feedback fetched in the Assignment List")
                pages[dana].screenshot(path=str(tmp_path / "assignment_list_feedback.png"))
            finally:
                browser.close()
    finally:
        if release.poll() is None:
            release.kill()
            release.wait()

    points = {}
    from ddpm_instructor.coursedir import CourseDir
    from ddpm_instructor.grades import submission_score
    c = CourseDir(root=course)
    with c.gradebook() as gb:
        for who in (dana, eve):
            points[who] = submission_score(c, A, who, gb)
    auto = sum(p for *_, p in c.points(A))
    for who in (dana, eve):
        page = next(Path(pwd.getpwnam(who).pw_dir).glob(f"{A}/feedback/*/{A}.html"))
        assert page.stat().st_uid == pwd.getpwnam(who).pw_uid
        assert (course / "feedback" / who / A / f"{A}.html").read_bytes() == page.read_bytes()

    # the LMS gets Dana's and Eve's scores, and none for Mallory (nothing collected) or anyone else
    platform.scores.clear()
    r = instructor(course, capsys, "grades", "--lti", "--lti-state", str(hub.base / "state"), "--assignment", A)
    assert r.returncode == 0, r.stdout + r.stderr
    got = {s["userId"]: s["scoreGiven"] for s in platform.scores}
    assert got == {platform.people["hint-dana"]["sub"]: auto, platform.people["hint-eve"]["sub"]: 0}, \
        (got, points, platform.refused)
    phase("scores posted")
    with capsys.disabled():
        print("\nround trip: " + ", ".join(phases))
