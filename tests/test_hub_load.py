"""A class at once on the hub (./course hub): every student logs in, starts a server, fetches and submits through
nbgrader's Assignment List endpoints of their own server, all concurrently; then every submission is collected once.

The class size is DDPM_HUB_LOAD_STUDENTS: 3 by default (CI), 40 by hand:

    DDPM_HUB_LOAD_STUDENTS=40 .venv/bin/python -m pytest -p no:cacheprovider -n 0 -s tests/test_hub_load.py

Bounded: loopback only, one worker per student, every request with a time-out, the whole class in LOAD_BUDGET_S.
The closing note (printed; ``-s`` shows it) gives the hub's p50/p95 response times per kind of request, the time to a
running server, and the memory (RSS) per student server.  Root plays the instructor (releases and collects with
nbgrader's commands and the hub's instructor config), as an instructor's terminal on the hub would.
"""
from __future__ import annotations

import os
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

WHY_NOT = usable() or (None if shutil.which("node") else "needs Node.js (configurable-http-proxy)")
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")
STUDENTS = int(os.environ.get("DDPM_HUB_LOAD_STUDENTS", "3"))
LOAD_BUDGET_S = 120 + 15 * STUDENTS
PASSWORD = "load-test-password"
COURSE = "ddpm-course"
NBGRADER = str(Path(sys.executable).parent / "nbgrader")
REPO = Path(__file__).resolve().parents[1]


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
    while True:
        r = t.request("lab page", s.get, f"{hub.url}/user/{name}/lab", timeout=60)
        if r.status_code == 200 and "jupyter-config-data" in r.text:
            break
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
    return {"name": name, "ready_s": ready, "fetch": fetched.status_code, "submit": submitted.status_code,
            "submit_body": submitted.text[:300]}


def test_a_class_fetches_and_submits_at_once_and_everything_is_collected_once():
    base = Path(tempfile.mkdtemp(prefix="ddpm-hub-load-"))
    os.chmod(base, 0o755)
    tag = os.urandom(2).hex()
    names = [f"ld{tag}-{i:02d}" for i in range(STUDENTS)]
    hub = None
    t = Timings()
    try:
        hub = Hub(base, {"DDPM_HUB_AUTH": "dummy", "DDPM_HUB_DUMMY_PASSWORD": PASSWORD})
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
                f"  time to a running lab   p50={statistics.median(ready):.1f} s  max={ready[-1]:.1f} s",
                f"  memory per server (RSS) median={statistics.median(rss.values()):.0f} MB  "
                f"max={max(rss.values()):.0f} MB"]
        print("\n" + "\n".join(note))
    finally:
        if hub is not None:
            hub.stop()
        shutil.rmtree(base, ignore_errors=True)


def _rss_mb(name: str) -> float:
    proc = server_process(name)
    assert proc is not None, f"{name} has no running server"
    status = Path(f"/proc/{proc['pid']}/status").read_text()
    kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return kb / 1024
