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
import time
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


def free_ports(n: int) -> list[int]:
    import socket
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Hub:
    """``./course hub`` as a real process on 127.0.0.1 (random ports, its state in ``base``), stopped by :meth:`stop`
    with its servers, and the OS users and groups it made removed."""

    def __init__(self, base: Path, env: dict):
        import requests

        self.base = base
        port, api, proxy = free_ports(3)
        self.url = f"http://127.0.0.1:{port}"
        self.os_groups = f"ddpmt{secrets.token_hex(3)}"       # its own OS groups: hubs of parallel tests never share
        self.env = {**os.environ, "DDPM_HUB_OS_GROUPS": self.os_groups, "DDPM_HUB_STATE": str(base / "state"), "DDPM_HUB_EXCHANGE": str(base / "exchange"),
                    "DDPM_HUB_IP": "127.0.0.1", "DDPM_HUB_PORT": str(port), "DDPM_HUB_API_PORT": str(api),
                    "DDPM_HUB_PROXY_API_PORT": str(proxy), **env}
        self.log_path = base / "hub.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(open_python_prefix() + [str(REPO / "course"), "hub"], env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90
        while True:
            try:
                if requests.get(self.url + "/hub/api/", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the hub did not start:\n{self.log_path.read_text()[-4000:]}")
            time.sleep(0.5)

    def log_text(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        import signal
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()
        # the hub's own users (members of its users group: hub/users.py) and its two groups; nothing another test made
        made = f"{self.os_groups}-hub-users"
        try:
            members = grp.getgrnam(made).gr_mem
        except KeyError:
            members = []
        for name in sorted(members):
            for pid in _pids_of(pwd.getpwnam(name).pw_uid):      # a server that outlived the hub
                os.kill(pid, 9)
            subprocess.run(["userdel", "--remove", name], capture_output=True)
        for name in (made, f"{self.os_groups}-instructors"):
            subprocess.run(["groupdel", name], capture_output=True)


def _pids_of(uid: int) -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if p.stat().st_uid == uid:
                    pids.append(int(p.name))
            except OSError:
                pass
    return pids


def server_process(username: str) -> dict | None:
    """The running single-user server of hub user ``username``: {pid, uid, groups (names)}."""
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes()
            if b"jupyterhub-singleuser" not in cmd:
                continue
            environ = (p / "environ").read_bytes().split(b"\0")
            if f"JUPYTERHUB_USER={username}".encode() not in environ:
                continue
            status = dict(line.split(":", 1) for line in (p / "status").read_text().splitlines() if ":" in line)
        except OSError:
            continue
        gids = [int(g) for g in status["Groups"].split()]
        return {"pid": int(p.name), "uid": int(status["Uid"].split()[0]),
                "groups": sorted(grp.getgrgid(g).gr_name for g in gids)}
    return None
