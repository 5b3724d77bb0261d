"""hub/exchange.py: nbgrader's exchange as the class hub sets it up, tried by a hostile student with real OS users.

An instructor (in the instructors' OS group) releases through nbgrader's own commands; Alice fetches and submits;
Bob (another OS user, not in the group) tries to list, read, overwrite, rename and delete Alice's submission and
feedback, and to file a submission of his own under Alice's name; the instructor collects exactly Alice's one
submission and releases feedback that Alice (only) fetches.  Needs root (useradd); users and folders are removed.
"""
from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hub.exchange import prepare_exchange  # noqa: E402
from hub.labs import ExchangeConfig, write_config_dirs  # noqa: E402

from hub_machine import Users, usable  # noqa: E402

WHY_NOT = usable()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")
NBGRADER = [str(Path(sys.executable).parent / "nbgrader")]
COURSE = "ddpm-course"


class Class:
    """The OS users and folders of one test class: an instructor (in the instructors' group), Alice and Bob."""

    def __init__(self):
        self.base = Path(tempfile.mkdtemp(prefix="ddpm-hub-exchange-"))
        os.chmod(self.base, 0o755)
        self.os = Users(self.base / "home")
        try:
            self.group = self.os.group("instructors")
            self.users = {"instructor": self.os.add("instructor", (self.group,)), "alice": self.os.add("alice"),
                          "bob": self.os.add("bob")}
            self.course_root = self.base / "course"
            self.course_root.mkdir()
            self.layout = prepare_exchange(self.base / "exchange", COURSE, self.group)
            self.config_dirs = write_config_dirs(self.base / "etc",
                                                 ExchangeConfig(COURSE, self.layout.root, self.course_root))
        except BaseException:
            self.close()
            raise

    def home(self, role: str) -> Path:
        return Path(pwd.getpwnam(self.users[role]).pw_dir)

    def run(self, role: str, argv: list[str], cwd: Path | None = None, env: dict | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
        pw = pwd.getpwnam(self.users[role])
        cfg = self.config_dirs["instructor" if role == "instructor" else "student"]
        full_env = {"HOME": pw.pw_dir, "USER": pw.pw_name, "LOGNAME": pw.pw_name,
                    "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
                    "JUPYTER_CONFIG_PATH": str(cfg), "PYTHONPATH": str(REPO), **(env or {})}
        proc = subprocess.run(self.os.argv(role, argv), cwd=cwd or pw.pw_dir, env=full_env, capture_output=True,
                              text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"{role}: {argv} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def close(self):
        self.os.close()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def klass():
    k = Class()
    try:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("answer = None")])
        release = k.course_root / "release" / "ps1"
        release.mkdir(parents=True)
        nbformat.write(nb, release / "hello.ipynb")
        subprocess.run(["chown", "-R", f"{k.users['instructor']}:{k.group}", str(k.course_root)], check=True)
        os.chmod(k.course_root, 0o2770)
        k.run("instructor", NBGRADER + ["release_assignment", "ps1"], cwd=k.course_root)
        k.run("alice", NBGRADER + ["fetch_assignment", "ps1"])
        mine = k.home("alice") / "ps1" / "hello.ipynb"
        done = nbformat.read(mine, as_version=4)
        done.cells[0].source = "answer = 42  # alice"
        nbformat.write(done, mine)
        k.run("alice", NBGRADER + ["submit", "ps1"])
        yield k
    finally:
        k.close()


def alice_submission(k: Class) -> Path:
    found = [p for p in k.layout.inbound.iterdir() if p.name.startswith(k.users["alice"] + "+ps1+")]
    assert len(found) == 1, found
    return found[0]


def test_the_set_up_and_a_submission_have_the_documented_owners_and_modes(klass):
    k = klass
    gid = grp.getgrnam(k.group).gr_gid
    assert oct(k.layout.root.stat().st_mode & 0o7777) == oct(0o1777)
    assert (oct(k.layout.inbound.stat().st_mode & 0o7777), k.layout.inbound.stat().st_gid) == (oct(0o3773), gid)
    sub = alice_submission(k)
    st = sub.stat()
    assert (st.st_uid, st.st_gid, oct(st.st_mode & 0o777)) == (pwd.getpwnam(k.users["alice"]).pw_uid, gid, "0o750")
    for f in sub.iterdir():
        assert (f.stat().st_gid, oct(f.stat().st_mode & 0o777)) == (gid, "0o640"), f
    assert not [p for p in k.layout.inbound.iterdir() if p.name.startswith(".staging")]


def test_another_student_cannot_list_read_overwrite_or_remove_a_submission(klass):
    k = klass
    sub = alice_submission(k)
    attempts = {
        "list the inbound": ["ls", str(k.layout.inbound)],
        "list the submission": ["ls", str(sub)],
        "read the notebook": ["cat", str(sub / "hello.ipynb")],
        "read the secret": ["cat", str(sub / "submission_secret.txt")],
        "overwrite the notebook": ["sh", "-c", f"echo x > '{sub / 'hello.ipynb'}'"],
        "add a file": ["sh", "-c", f"echo x > '{sub / 'extra.ipynb'}'"],
        "rename it": ["mv", str(sub), str(k.layout.inbound / "mine")],
        "delete it": ["rm", "-rf", str(sub)],
        "rename the course": ["mv", str(k.layout.course), str(k.layout.root / "old")],
        "list the feedback": ["ls", str(k.layout.feedback)],
    }
    succeeded = [what for what, argv in attempts.items() if k.run("bob", argv, check=False).returncode == 0]
    assert succeeded == []
    assert "answer = 42  # alice" in (sub / "hello.ipynb").read_text()


def test_collect_takes_each_students_own_submission_once_and_ignores_a_forged_one(klass):
    k = klass
    # nbgrader names a submission after the OS user (not $USER), so Bob makes the folder himself, newer than Alice's
    forged = k.layout.inbound / f"{k.users['alice']}+ps1+2099-01-01 00:00:00.000000 UTC+forgedforged"
    k.run("bob", ["mkdir", str(forged)])
    k.run("bob", ["sh", "-c", f"echo '{{\"cells\": []}}' > '{forged / 'hello.ipynb'}' && "
                              f"echo '2099-01-01 00:00:00.000000 UTC' > '{forged / 'timestamp.txt'}'"])
    names = sorted(p.name.split("+")[0] for p in k.layout.inbound.iterdir() if not p.name.startswith("."))
    assert names == [k.users["alice"], k.users["alice"]]
    collected = k.run("instructor", NBGRADER + ["collect", "ps1", "--update"], cwd=k.course_root)
    assert "does not own it" in collected.stderr
    got = k.course_root / "submitted" / k.users["alice"] / "ps1" / "hello.ipynb"
    assert "answer = 42  # alice" in got.read_text()
    assert sorted(p.name for p in (k.course_root / "submitted").iterdir()) == [k.users["alice"]]


def test_feedback_reaches_its_student_only(klass):
    k = klass
    submitted = k.course_root / "submitted" / k.users["alice"] / "ps1"
    if not submitted.is_dir():
        k.run("instructor", NBGRADER + ["collect", "ps1"], cwd=k.course_root)
    feedback = k.course_root / "feedback" / k.users["alice"] / "ps1"
    k.run("instructor", ["mkdir", "-p", str(feedback)], cwd=k.course_root)
    for name in ("timestamp.txt", "submission_secret.txt"):
        k.run("instructor", ["cp", str(submitted / name), str(feedback / name)], cwd=k.course_root)
    k.run("instructor", ["sh", "-c", f"echo '<p>well done alice</p>' > '{feedback / 'hello.html'}'"])
    k.run("instructor", NBGRADER + ["release_feedback", "ps1"], cwd=k.course_root)
    released = list(k.layout.feedback.iterdir())
    assert len(released) == 1
    k.run("alice", NBGRADER + ["fetch_feedback", "ps1"])
    fetched = list((k.home("alice") / "ps1" / "feedback").glob("*/hello.html"))
    assert len(fetched) == 1 and "well done alice" in fetched[0].read_text()
    assert k.run("bob", ["ls", str(k.layout.feedback)], check=False).returncode != 0
    # Bob asking as Alice finds his own forged submission in his cache, whose secret names no released feedback
    k.run("bob", NBGRADER + ["fetch_feedback", "ps1"], env={"USER": k.users["alice"], "LOGNAME": k.users["alice"]},
          check=False)
    assert not list((k.home("bob") / "ps1").glob("feedback/*/hello.html"))


def test_collect_records_the_last_change_it_sees_not_a_time_the_student_wrote(klass):
    """Alice submits again into a folder she names herself as of 2001, with a timestamp.txt that says 2001: the
    collected submission's time is the last change the collector sees in it (ctime: she can move it later, never
    earlier), and the log says the claimed time was not used."""
    k = klass
    backdated = k.layout.inbound / f"{k.users['alice']}+ps1+2001-01-01 00:00:00.000000 UTC+backdatedback"
    k.run("alice", ["mkdir", str(backdated)])
    k.run("alice", ["sh", "-c", f"echo '{{\"cells\": []}}' > '{backdated / 'hello.ipynb'}' && "
                                f"echo '2001-01-01 00:00:00.000000 UTC' > '{backdated / 'timestamp.txt'}'"])
    made = max(p.stat().st_ctime for p in [backdated, *backdated.iterdir()])
    collected = k.run("instructor", NBGRADER + ["collect", "ps1", "--update"], cwd=k.course_root)
    stamp = (k.course_root / "submitted" / k.users["alice"] / "ps1" / "timestamp.txt").read_text()
    from nbgrader.utils import parse_utc
    import datetime as dt
    got = parse_utc(stamp).replace(tzinfo=dt.timezone.utc).timestamp()
    assert got >= made - 1e-3 and not stamp.startswith("2001"), stamp
    assert "the student's own word, not used" in collected.stderr, collected.stderr
