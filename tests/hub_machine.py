"""The hub tests' OS users and a way for them to run this checkout's Python.

A class hub runs each student's server as that student's OS user, so the course's Python must be one every user can
run (an admin installs it under /opt or /srv).  A development machine's Python often is not: pyenv under a 0700 or
0710 /root.  Then the tests run the users' processes (or the whole hub) in a private mount namespace in which that
one closed folder is replaced by an open, empty one holding only the path to the Python, bind-mounted: nothing else
about the machine changes, and nothing outside the namespace sees it.
"""
from __future__ import annotations

import grp
import os
import pwd
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# $1: the closed folder, $2: its child on the way to the Python; then the command
OPEN_FOLDER = ('set -e; keep=$(mktemp -d); mount --bind "$1/$2" "$keep"; mount -t tmpfs -o mode=755 none "$1"; '
               'mkdir "$1/$2"; mount --move "$keep" "$1/$2"; rmdir "$keep"; shift 2; exec "$@"')


def closed_folder() -> tuple[Path, str] | None:
    """(the one folder above this Python or checkout that other users cannot enter, its child on the way), or None."""
    closed = []
    for target in (Path(os.path.realpath(sys.executable)), REPO):
        for child in [target, *target.parents]:
            parent = child.parent
            if parent != child and not parent.stat().st_mode & 0o001 and (parent, child.name) not in closed:
                closed.append((parent, child.name))
    if len(closed) > 1:
        raise RuntimeError(f"more than one closed folder on the way to the Python: {closed}")
    return closed[0] if closed else None


def open_python_prefix() -> list[str]:
    """argv prefix running a command (as root) where every user can run this Python."""
    found = closed_folder()
    if found is None:
        return []
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", OPEN_FOLDER, "sh", str(found[0]), found[1]]


def usable() -> str | None:
    """Why these tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (real OS users)"
    missing = [t for t in ("useradd", "userdel", "groupadd", "setpriv", "unshare") if not shutil.which(t)]
    if missing:
        return f"needs {', '.join(missing)}"
    try:
        closed_folder()
    except RuntimeError as e:
        return str(e)
    probe = subprocess.run(open_python_prefix() + ["true"], capture_output=True, text=True)
    return None if probe.returncode == 0 else f"cannot open the way to the Python: {probe.stderr.strip()}"


class Users:
    """OS users (and groups) made for one test, removed by :meth:`close`."""

    def __init__(self, home_root: Path):
        self.tag = secrets.token_hex(3)
        self.home_root = home_root
        self.names: dict[str, str] = {}
        self.groups: list[str] = []

    def group(self, role: str) -> str:
        name = f"ddpmt-{role[:3]}-{self.tag}"
        subprocess.run(["groupadd", name], check=True)
        self.groups.append(name)
        return name

    def add(self, role: str, groups: tuple[str, ...] = ()) -> str:
        name = f"ddpmt-{role[:5]}-{self.tag}"
        home = self.home_root / role
        home.parent.mkdir(parents=True, exist_ok=True)
        extra = ["-G", ",".join(groups)] if groups else []
        subprocess.run(["useradd", "-m", "-d", str(home), "-s", "/bin/sh", *extra, name], check=True)
        os.chmod(home, 0o700)
        self.names[role] = name
        return name

    def argv(self, role: str, argv: list[str]) -> list[str]:
        """``argv`` run as the user of ``role`` (with their groups) where they can run this Python."""
        pw = pwd.getpwnam(self.names[role])
        gids = [g.gr_gid for g in grp.getgrall() if pw.pw_name in g.gr_mem]
        groups = ["--groups", ",".join(map(str, gids))] if gids else ["--clear-groups"]
        return open_python_prefix() + ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", *groups,
                                       "--", *argv]

    def close(self) -> None:
        for name in self.names.values():
            subprocess.run(["userdel", name], capture_output=True)
        for name in self.groups:
            subprocess.run(["groupdel", name], capture_output=True)
