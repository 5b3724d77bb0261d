"""The sandbox's own scripts, run by path as the sandbox runs them (ddpm_instructor/sandbox_boot.py,
sandbox_readcheck.py, sandbox_kill.py, sandbox_probe.py), and the editable-install mapping read with
``ast.literal_eval``.  No kernel: each script on its own, in seconds."""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ddpm_instructor import sandbox as sb
from ddpm_instructor.errors import InstructorError

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="these scripts switch to an unprivileged uid: root only")
UID = sb.UID_BASE + sb.SLOTS + 7          # a sandbox-range uid no kernel slot uses


@pytest.fixture
def walkable():
    """A folder every uid can walk to (pytest's tmp_path sits under a 0700 folder), removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="ddpm-scripts-", dir="/var/tmp" if os.access("/var/tmp", os.W_OK) else None))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def boot(tmp_path, uid=None, limits=None, cmd=None):
    src, work = tmp_path / "src", tmp_path / "work"
    a = {"uid": uid, "gid": sb.UID_BASE if uid is not None else None, "work": str(work), "src": str(src),
         "mkdirs": [str(tmp_path / "made")], "limits": limits or {}}
    code = ("import json, os, resource; print(json.dumps({'cwd': os.getcwd(), 'uid': os.getuid(), "
            "'umask': os.umask(0), 'fsize': resource.getrlimit(resource.RLIMIT_FSIZE)[0]}))")
    return subprocess.run(sb._script(sb.BOOT_FILE, json.dumps(a)) + (cmd or [sys.executable, "-c", code]),
                          capture_output=True, text=True, timeout=60, env={})


def test_every_script_runs_by_path_and_the_sandbox_module_holds_no_code_in_strings():
    text = Path(sb.__file__).read_text()
    for name in ("BOOT = r'''", "READ_CHECK = r'''", "PROBE = r'''", "KILL_UID = ", '"-c", BOOT'):
        assert name not in text, name
    assert not re.search(r"(?<!literal_)eval\(", text)
    for path in (sb.BOOT_FILE, sb.READ_CHECK_FILE, sb.KILL_FILE, sb.PROBE_FILE):
        compile(Path(path).read_text(), path, "exec")                    # real Python files
    assert sb._script(sb.KILL_FILE, "1")[1:] == ["-I", "-S", sb.KILL_FILE, "1"]


def test_the_bwrap_command_boots_from_the_file_bound_where_only_the_boot_step_reads(tmp_path):
    km = sb.SandboxKernelManager(mode="bwrap")
    km._mode = "bwrap"
    try:
        argv = km.command(["kernel"], str(tmp_path))
    finally:
        km._release()
    sep = argv.index("--")
    opts, run = argv[:sep], argv[sep + 1:]
    assert ("--ro-bind", sb.BOOT_FILE, sb.BOOT_IN) in set(zip(opts, opts[1:], opts[2:]))
    assert ("--perms", "0700", "--dir", sb.SRC_IN) in set(zip(opts, opts[1:], opts[2:], opts[3:]))
    assert run[:4] == [sys.executable, "-I", "-S", sb.BOOT_IN] and run[-1] == "kernel" and "-c" not in run


def test_boot_copies_the_folder_without_links_sets_limits_and_runs_the_command_in_the_copy(tmp_path):
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "nb.ipynb").write_text("{}")
    (tmp_path / "src" / "sub" / "data.txt").write_text("x")
    secret = tmp_path / "secret.txt"
    secret.write_text("grader only")
    (tmp_path / "src" / "link.txt").symlink_to(secret)
    r = boot(tmp_path, limits={"RLIMIT_FSIZE": 5 * 2 ** 20})
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    work = tmp_path / "work"
    assert got["cwd"] == str(work) and got["umask"] == 0o077 and got["fsize"] == 5 * 2 ** 20
    assert sorted(p.relative_to(work).as_posix() for p in work.rglob("*")) == ["nb.ipynb", "sub", "sub/data.txt"]
    assert (tmp_path / "made").is_dir()


@needs_root
def test_boot_drops_to_the_kernels_uid_and_the_kill_script_ends_what_that_uid_left(walkable):
    tmp_path = walkable
    (tmp_path / "src").mkdir()
    r = boot(tmp_path, uid=UID, cmd=["/bin/sh", "-c", "id -u; pwd; umask"])     # not Python: the uid need not reach it
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(UID), str(tmp_path / "work"), "0077"]
    assert (tmp_path / "work").stat().st_uid == UID
    assert (tmp_path / "work").stat().st_mode & 0o777 == 0o700
    sleeper = subprocess.Popen(sb._script(sb.BOOT_FILE, json.dumps(
        {"uid": UID, "gid": sb.UID_BASE, "work": str(tmp_path / "w2"), "src": "", "mkdirs": [], "limits": {}}))
        + ["/bin/sleep", "60"], env={})
    mine = subprocess.Popen(["/bin/sleep", "60"])                       # the grader's own: must survive
    try:
        for _ in range(100):
            if Path(f"/proc/{sleeper.pid}/status").read_text().count(f"\t{UID}\t") >= 1:
                break
            time.sleep(0.05)
        sb._kill_uid(UID)
        assert sleeper.wait(timeout=10) == -9
        assert mine.poll() is None
    finally:
        mine.kill()
        sleeper.kill()


@needs_root
def test_the_read_check_reports_what_the_uid_can_and_cannot_read(walkable):
    tmp_path = walkable
    closed, open_ = tmp_path / "closed", tmp_path / "open.txt"
    closed.mkdir(mode=0o700)
    open_.write_text("x")
    open_.chmod(0o644)
    r = subprocess.run(sb._script(sb.READ_CHECK_FILE, json.dumps(
        {"uid": UID, "gid": sb.UID_BASE, "protect": [str(closed), str(open_)], "need": [str(closed), str(open_)]})),
        capture_output=True, text=True, timeout=60, env={})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"readable": [str(open_)], "unreadable": [str(closed)]}


def test_the_probe_file_runs_on_its_own(tmp_path):
    (tmp_path / "there").mkdir()
    args = dict(sb.probe_args("NO_SUCH_SECRET", walk=False), hidden=[str(tmp_path / "nothing"), str(tmp_path / "there")])
    r = subprocess.run([sys.executable, sb.PROBE_FILE, json.dumps(args)], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["uid"] == os.geteuid() and got["sees"] == got["reads"] == [str(tmp_path / "there")]
    assert got["secret_env"] is False and got["cwd"] == str(tmp_path)
    assert got["nproc"] == resource.getrlimit(resource.RLIMIT_NPROC)[0]


def test_the_editable_mapping_is_read_as_a_literal_and_anything_else_is_refused(tmp_path):
    finder = tmp_path / "__editable___x_finder.py"
    line = "MAPPING: dict[str, str] = {'solutions': '/somewhere/solutions'}"
    assert sb._editable_mapping(finder, line) == {"solutions": "/somewhere/solutions"}
    for bad in ("MAPPING = {'a': __import__('os').getcwd()}", "MAPPING = {'a': 1}", "MAPPING = {'a': '/x'",
                "MAPPING = dict(a='/x')"):
        with pytest.raises(InstructorError, match=r"cannot read the editable install's package folders in .*"
                                                  r"__editable___x_finder.py"):
            sb._editable_mapping(finder, bad)
