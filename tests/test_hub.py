"""./course hub (hub/jupyterhub_config.py, hub/spawn.py, hub/users.py, hub/labs.py): a real JupyterHub on 127.0.0.1.

A student and an instructor log in (the shared-password test login) and their servers start: each as its own OS user
(the instructor also in the instructors' OS group), the student with the student lab plus the Assignment List and no
Formgrader, the instructor with the Formgrader.  A hub username naming an account of the machine (``daemon``) gets no
server; the students' homes are closed to each other.  Needs root; the hub, its servers, users and groups are removed.

A class at once (the load test): every student logs in, starts a server, fetches and submits through the Assignment
List's endpoints of their own server, all concurrently; every submission is then collected once.  Its size is
DDPM_HUB_LOAD_STUDENTS, 3 by default (CI), 40 by hand:

    DDPM_HUB_LOAD_STUDENTS=40 .venv/bin/python -m pytest -p no:cacheprovider -n 0 -s tests/test_hub.py -k at_once

bounded (loopback, every request with a time-out, the class within LOAD_BUDGET_S); its closing note (printed, ``-s``
shows it) gives the hub's p50/p95 per kind of request, the time to a running lab and the memory (RSS) per server.
Root plays the instructor there (nbgrader's release and collect with the hub's instructor config).
"""
from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hub_machine import Hub, server_process, usable  # noqa: E402
from tutorial_utils import validate_dialog  # noqa: E402

WHY_NOT = usable() or (None if shutil.which("node") else "needs Node.js (configurable-http-proxy)")
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")
PASSWORD = "test-only-password"
STUDENTS = int(os.environ.get("DDPM_HUB_LOAD_STUDENTS", "3"))
LOAD_BUDGET_S = 120 + 15 * STUDENTS
COURSE = "ddpm-course"
NBGRADER = str(Path(sys.executable).parent / "nbgrader")
REPO = Path(__file__).resolve().parents[1]
PAGE_CONFIG = re.compile(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', re.S)


@pytest.fixture(scope="module")
def hub():
    base = Path(tempfile.mkdtemp(prefix="ddpm-hub-"))
    os.chmod(base, 0o755)
    tag = os.urandom(3).hex()
    names = {"student": f"st-{tag}", "instructor": f"pr-{tag}", "tag": tag}
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


def _nbgrader_entry(page: dict) -> str:
    """The remoteEntry file of nbgrader's lab extension that this lab page loads."""
    [ext] = [e for e in page["federated_extensions"] if e["name"] == validate_dialog.EXTENSION]
    return Path(ext["load"]).name


def _remote_entry(labextensions: Path) -> str:
    [entry] = (labextensions / validate_dialog.EXTENSION / "static").glob("remoteEntry.*.js")
    return entry.name


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
    # Validate's dialog says what it checked, as in ./course lab: nbgrader's lab extension is the student lab's copy
    assert _nbgrader_entry(page) == _remote_entry(validate_dialog.student_labextensions(sys.prefix)), page
    entry = session.get(f"{hub.url}/user/{name}/lab/extensions/{validate_dialog.EXTENSION}/static/"
                        f"{_nbgrader_entry(page)}", timeout=60)
    assert entry.status_code == 200, entry.status_code
    # the hub's database (users, tokens, password hashes) is out of the students' reach
    db = hub.base / "state" / "hub" / "jupyterhub.sqlite"
    assert db.is_file() and oct(db.parent.stat().st_mode & 0o777) == "0o700" and db.parent.stat().st_uid == 0


def test_an_instructors_server_has_the_formgrader_and_the_instructors_group(hub, instructor):
    session, page = instructor
    name = hub.names["instructor"]
    proc = server_process(name)
    assert proc is not None and proc["uid"] == pwd.getpwnam(name).pw_uid
    assert f"{hub.os_groups}-instructors" in proc["groups"]
    assert "@jupyter/nbgrader:formgrader" not in page["disabledExtensions"]
    assert _nbgrader_entry(page) == _remote_entry(validate_dialog.installed_extension(sys.prefix).parent.parent)
    assert session.get(f"{hub.url}/user/{name}/formgrader", timeout=60).status_code == 200


def run_in_kernel(hub, session, name: str, code: str, kernel: str = "ddpm-course", timeout: float = 120) -> str:
    """``code`` in a new kernel of ``name``'s server, started and driven as the lab does (the Jupyter REST API and
    the kernel's websocket, with the user's cookies); returns what it printed, or raises with its error."""
    import uuid

    import websocket

    base = f"{hub.url}/user/{name}"
    xsrf = session.cookies.get("_xsrf", path=f"/user/{name}/") or session.cookies.get("_xsrf", "")
    r = session.post(f"{base}/api/kernels", json={"name": kernel}, headers={"X-XSRFToken": xsrf}, timeout=60)
    assert r.status_code == 201, (r.status_code, r.text[:500])
    kid = r.json()["id"]
    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    ws = websocket.create_connection(f"{base.replace('http', 'ws', 1)}/api/kernels/{kid}/channels",
                                     header=[f"Cookie: {cookie}", f"X-XSRFToken: {xsrf}"], timeout=timeout)
    try:
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({"header": {"msg_id": msg_id, "username": name, "session": uuid.uuid4().hex,
                                       "msg_type": "execute_request", "version": "5.3"},
                            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                            "content": {"code": code, "silent": False, "store_history": False,
                                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}))
        out, error, deadline = [], None, time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "stream":
                out.append(msg["content"]["text"])
            elif kind == "error":
                error = f"{msg['content']['ename']}: {msg['content']['evalue']}"
            elif kind == "execute_reply":
                break
        else:
            raise AssertionError(f"no reply from {name}'s kernel in {timeout} s")
    finally:
        ws.close()
        session.delete(f"{base}/api/kernels/{kid}", headers={"X-XSRFToken": xsrf}, timeout=60)
    assert error is None, f"{name}'s kernel raised {error}; it printed {''.join(out)[-2000:]}"
    return "".join(out)


# What a student's kernel tries (printed as one JSON object): imports, reads of the checkout, and a self-check.
REACH = """
import importlib, json, os, sys
r = {"uid": os.getuid(), "python": sys.executable}
for m in ("ddpm_instructor", "solutions.diffusion", "solutions.sampling"):
    try:
        importlib.import_module(m); r[m] = "imported"
    except ImportError as e:
        r[m] = type(e).__name__
try:
    from solutions import q_sample; r["q_sample"] = "imported"
except ImportError as e:
    r["q_sample"] = str(e)
for p in PATHS:
    try:
        open(p, "rb").read(1); r[p] = "read"
    except OSError as e:
        r[p] = type(e).__name__
import solutions, tutorial_utils, torch
from solutions import extract, Unet                       # the ungraded modules every bundle carries
from tutorial_utils.checks import check_linear_beta_schedule
check_linear_beta_schedule(lambda timesteps, beta_start=1e-4, beta_end=0.02:
                           torch.linspace(beta_start, beta_end, timesteps), quiet=True)
r["self-check"] = "passed"
r["solutions"], r["tutorial_utils"] = solutions.__file__, tutorial_utils.__file__
print(json.dumps(r))
"""


def test_a_students_kernel_reaches_no_answer_and_no_grader_but_its_self_checks_work(hub, student):
    session, _ = student
    name = hub.names["student"]
    source = sorted((REPO / "notebooks" / "source").glob("02_*/*.ipynb"))[0]
    paths = [str(REPO / "solutions" / "diffusion.py"), str(source), str(REPO / ".git" / "HEAD"),
             str(REPO / "ddpm_instructor" / "autograde.py"), str(REPO / "tests" / "test_hub.py")]
    got = json.loads(run_in_kernel(hub, session, name, f"PATHS = {paths!r}\n" + REACH).strip().splitlines()[-1])
    student_env = hub.base / "state" / "student"
    assert got["uid"] == pwd.getpwnam(name).pw_uid and got["python"].startswith(str(student_env)), got
    assert got["ddpm_instructor"] == "ModuleNotFoundError", got
    assert got["solutions.diffusion"] == got["solutions.sampling"] == "ModuleNotFoundError", got
    assert "not public" in got["q_sample"] and "02_forward_closed_form" in got["q_sample"], got
    assert {p: got[p] for p in paths} == {p: "PermissionError" for p in paths}, got
    assert got["self-check"] == "passed"
    assert got["solutions"].startswith(str(student_env / "course")), got
    assert got["tutorial_utils"].startswith(str(student_env / "course")), got


def test_the_checkout_is_closed_to_students_but_root_and_the_venv_still_work(hub, student):
    import grp

    gid = grp.getgrnam(f"{hub.os_groups}-instructors").gr_gid
    for name in ("solutions", "notebooks", "ddpm_instructor", "tests", ".git"):
        st = (REPO / name).stat()
        assert (oct(st.st_mode & 0o777), st.st_uid, st.st_gid) == ("0o750", 0, gid), name
    venv = Path(sys.prefix)
    if REPO in venv.parents:                       # the venv in the checkout stays open: the servers run from it
        assert (REPO / venv.relative_to(REPO).parts[0]).stat().st_mode & 0o005 == 0o005
    assert (REPO / "solutions" / "diffusion.py").read_bytes()            # root still reads it


def test_a_username_naming_a_machine_account_gets_no_server(hub):
    login(hub, "daemon", ok=False)      # the login's redirect to the spawn fails
    deadline = time.monotonic() + 30
    while "did not make" not in hub.log_text() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "an account of this machine that the hub did not make" in hub.log_text()
    assert server_process("daemon") is None


# ---------------------------------------------------------------- a class at once (the load test)
class Timings:
    def __init__(self):
        self.by_kind: dict[str, list[float]] = {}

    def request(self, kind: str, fn, *args, **kwargs):
        t = time.perf_counter()
        r = fn(*args, **kwargs)
        self.by_kind.setdefault(kind, []).append(time.perf_counter() - t)
        return r

    def note(self) -> list[str]:
        lines = []
        for kind, xs in sorted(self.by_kind.items()):
            xs = sorted(xs)
            p95 = xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]
            lines.append(f"  {kind:<22} n={len(xs):<3} p50={statistics.median(xs) * 1000:7.0f} ms  "
                         f"p95={p95 * 1000:7.0f} ms")
        return lines


def instructor_nbgrader(hub, *args: str) -> subprocess.CompletedProcess:
    state = hub.base / "state"
    env = {**os.environ, "JUPYTER_CONFIG_PATH": str(state / "etc" / "instructor"), "PYTHONPATH": str(REPO),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([NBGRADER, *args], cwd=state / "course", env=env, capture_output=True, text=True,
                          timeout=180)


def student_round(hub, name: str, t: Timings) -> dict:
    """One student: log in, wait for their server, fetch, submit (the Assignment List's own requests)."""
    import requests

    s = requests.Session()
    start = time.perf_counter()
    t.request("hub login page", s.get, hub.url + "/hub/login", timeout=60)
    t.request("hub login + spawn", s.post, hub.url + "/hub/login?next=/hub/spawn", timeout=120,
              data={"username": name, "password": PASSWORD, "_xsrf": s.cookies.get("_xsrf")})
    deadline = time.monotonic() + LOAD_BUDGET_S
    restarts = 0
    while True:
        r = t.request("lab page", s.get, f"{hub.url}/user/{name}/lab", timeout=60)
        if r.status_code == 200 and "jupyter-config-data" in r.text:
            break
        if r.status_code == 424 and restarts < 2:
            # the hub stopped the server (e.g. the proxy did not take its route in time): the student presses Start
            restarts += 1
            t.request("hub spawn (again)", s.get, f"{hub.url}/hub/spawn", timeout=120)
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}'s server did not start in {LOAD_BUDGET_S} s")
        time.sleep(1)
    ready = time.perf_counter() - start
    xsrf = {"X-XSRFToken": s.cookies.get("_xsrf", path=f"/user/{name}/") or s.cookies.get("_xsrf", "")}
    data = {"course_id": COURSE, "assignment_id": "ps1"}
    fetched = t.request("assignment fetch", s.post, f"{hub.url}/user/{name}/assignments/fetch", data=data,
                        headers=xsrf, timeout=120)
    submitted = t.request("assignment submit", s.post, f"{hub.url}/user/{name}/assignments/submit", data=data,
                          headers=xsrf, timeout=120)
    return {"name": name, "ready_s": ready, "restarts": restarts, "fetch": fetched.status_code, "submit": submitted.status_code,
            "submit_body": submitted.text[:300]}


def test_a_class_fetches_and_submits_at_once_and_everything_is_collected_once(hub):
    base = hub.base
    names = [f"ld{hub.names['tag']}-{i:02d}" for i in range(STUDENTS)]
    t = Timings()
    release = base / "state" / "course" / "release" / "ps1"
    release.mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("answer = None")]),
                   release / "hello.ipynb")
    r = instructor_nbgrader(hub, "release_assignment", "ps1")
    assert r.returncode == 0, r.stderr[-2000:]

    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=STUDENTS) as pool:
        results = list(pool.map(lambda n: student_round(hub, n, t), names))
    class_s = time.monotonic() - began
    rss = {n: _rss_mb(n) for n in names}

    assert [(x["name"], x["fetch"], x["submit"]) for x in results] == [(n, 200, 200) for n in names], results
    inbound = base / "exchange" / COURSE / "inbound"
    owners = sorted(p.name.split("+")[0] for p in inbound.iterdir() if not p.name.startswith("."))
    assert owners == names                                    # one submission each, none lost
    r = instructor_nbgrader(hub, "collect", "ps1")
    assert r.returncode == 0, r.stderr[-2000:]
    collected = sorted(p.name for p in (base / "state" / "course" / "submitted").iterdir())
    assert collected == names
    assert r.stderr.count("Collecting submission:") == STUDENTS
    assert class_s < LOAD_BUDGET_S

    ready = sorted(x["ready_s"] for x in results)
    note = [f"hub load: {STUDENTS} students, the whole class in {class_s:.0f} s (budget {LOAD_BUDGET_S} s)",
            *t.note(),
            f"  time to a running lab   p50={statistics.median(ready):.1f} s  max={ready[-1]:.1f} s  "
            f"(servers started again by their student: {sum(x['restarts'] for x in results)})",
            f"  memory per server (RSS) median={statistics.median(rss.values()):.0f} MB  "
            f"max={max(rss.values()):.0f} MB"]
    print("\n" + "\n".join(note))


def _rss_mb(name: str) -> float:
    proc = server_process(name)
    assert proc is not None, f"{name} has no running server"
    status = Path(f"/proc/{proc['pid']}/status").read_text()
    kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return kb / 1024
