"""The course checkout on a hub machine: closed to every OS user but root and the instructors.

Students on the hub are OS users with a terminal, so whatever the machine lets "others" read, they read: a git clone
is world-readable, and the checkout holds the reference answers (``solutions/``, ``notebooks/source/``, ``.git``), the
grader (``ddpm_instructor/``, ``tests/``) and the default grading folder with every submission (``grading/``).

:func:`close_checkout` (run as root by the hub's set-up, at each start) makes each top-level folder of the checkout
``0750 root:<instructors' OS group>``, except the folders the servers must run from (the course venv, when it lies in
the checkout) and those of :data:`ALWAYS_OPEN`, which hold no answers.
Only those folders' own modes change (their contents keep theirs: a closed folder closes everything below it), git
does not record a folder's mode, and root ignores modes, so ``./course`` for root, CI (root, a fresh clone) and the
instructors' servers (in the group) work as before.  The checkout itself must stay enterable (``o+x``) on the way to
the venv.  Students' servers run the environment of hub/student_env.py instead.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

CLOSED_MODE = 0o750
# no answers in these, and processes of other users read them: hub/ (nbgrader's exchange classes, imported by the
# instructors' and tests' nbgrader), data/ (MNIST, the grading kernel's default data folder), checkpoints/ (shipped
# weights, in every bundle)
ALWAYS_OPEN = ("hub", "data", "checkpoints")


@dataclass(frozen=True)
class Closure:
    closed: tuple[Path, ...]       # folders now 0750 root:<group>
    left_open: tuple[Path, ...]    # folders the servers need (the venv, hub/)


def _under(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def close_checkout(repo: Path, gid: int, keep: list[Path]) -> Closure:
    """Close every top-level folder of ``repo`` to others, save ``hub/`` and those holding a path of ``keep``
    (the course venv); returns what was closed and what was left open."""
    repo = repo.resolve()
    keep = [Path(os.path.realpath(k)) for k in keep]
    closed, left = [], []
    for entry in sorted(repo.iterdir()):
        if entry.is_symlink() or not entry.is_dir():
            continue                      # README.md, pyproject.toml, course: no answers
        if entry.name in ALWAYS_OPEN or any(_under(k, entry) for k in keep):
            left.append(entry)
            continue
        st = entry.stat()
        if st.st_uid != 0 or st.st_gid != gid:
            os.chown(entry, 0, gid)
        if stat.S_IMODE(st.st_mode) != CLOSED_MODE:
            os.chmod(entry, CLOSED_MODE)
        closed.append(entry)
    mode = repo.stat().st_mode
    if not mode & stat.S_IXOTH:
        os.chmod(repo, stat.S_IMODE(mode) | stat.S_IXOTH)
    return Closure(tuple(closed), tuple(left))
