"""OS users for the class hub: each student's server runs as that student's own OS user.

The hub (root) makes a user the first time it starts their server: ``useradd`` with a 0700 home, in the group
``<prefix>-hub-users`` (hub/settings.py).  It never runs a server as an account it did not make: a hub username that names an existing
account outside that group (``root``, a service account, the admin's own) is refused, so signing up as ``root`` gets
an error, not a root server.  Instructors are also in ``<prefix>-instructors``, the group that reads the exchange's
submissions and shares the course folder; a user no longer an instructor leaves it.
"""
from __future__ import annotations

import grp
import os
import pwd
import re
import subprocess
import sys
from pathlib import Path

USERNAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")


class UserError(RuntimeError):
    """The hub cannot run a server for this name as an OS user."""


def ensure_group(name: str) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        subprocess.run(["groupadd", "--system", name], check=True, capture_output=True)
        return grp.getgrnam(name).gr_gid


def ensure_user(name: str, users_group: str, home_root: Path = Path("/home")) -> pwd.struct_passwd:
    """The OS user ``name``, made if missing; refuses an account the hub did not make."""
    if not USERNAME.fullmatch(name):
        raise UserError(f"{name!r} cannot be an OS username: lower-case letters, digits, '-' and '_', "
                        "starting with a letter, at most 32 characters")
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        ensure_group(users_group)
        home = home_root / name
        subprocess.run(["useradd", "--create-home", "--home-dir", str(home), "--shell", "/bin/bash",
                        "--groups", users_group, name], check=True, capture_output=True)
        os.chmod(home, 0o700)
        return pwd.getpwnam(name)
    if pw.pw_uid == 0 or name not in grp.getgrnam(users_group).gr_mem:
        raise UserError(f"{name!r} is an account of this machine that the hub did not make; the hub starts servers "
                        f"only as users it made (group {users_group}): choose another username")
    return pw


def set_member(name: str, group: str, member: bool) -> None:
    """Add ``name`` to ``group`` or take them out (it takes effect at their next server start)."""
    now = name in grp.getgrnam(group).gr_mem
    if member and not now:
        subprocess.run(["usermod", "--append", "--groups", group, name], check=True, capture_output=True)
    elif now and not member:
        subprocess.run(["gpasswd", "--delete", name, group], check=True, capture_output=True)


def unreachable_python(python: str = sys.executable) -> list[Path]:
    """Folders above ``python`` (its real location) that other users cannot enter: each student's server runs this
    Python as the student, so the list must be empty (install the course under /opt or /srv, not in /root)."""
    real = Path(os.path.realpath(python))
    return [p for p in real.parents if not os.stat(p).st_mode & 0o001]
