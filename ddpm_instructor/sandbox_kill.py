"""Kill every process of one uid (what a kernel of the fallback mode left running), run by path as root.

    python -I -S sandbox_kill.py <uid> <gid>

Run by ``sandbox._kill_uid`` (never imported): it becomes that uid, so that ``kill(-1)`` reaches that uid's
processes and nobody else's.  Standard library only.
"""
import os
import sys


def main(argv):
    uid, gid = int(argv[1]), int(argv[2])
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    os.kill(-1, 9)


if __name__ == "__main__":
    main(sys.argv)
