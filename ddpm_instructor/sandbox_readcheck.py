"""What the kernel's unprivileged uid can read: the fallback mode's check, run by path before its first kernel.

    python -I -S sandbox_readcheck.py '{"uid": ..., "gid": ..., "protect": [paths], "need": [paths]}'

Run as root by ``sandbox.SandboxKernelManager.check_user_mode`` (never imported); it becomes that uid and prints
one JSON line: ``readable`` (the paths of ``protect`` it could read: must be none) and ``unreadable`` (the paths of
``need`` it could not: must be none).  Standard library only.
"""
import json
import os
import sys


def readable(p):
    try:
        if os.path.isdir(p):
            os.listdir(p)
        else:
            with open(p, "rb") as f:
                f.read(1)
        return True
    except OSError:
        return False


def main(argv):
    a = json.loads(argv[1])
    os.setgroups([])
    os.setresgid(a["gid"], a["gid"], a["gid"])
    os.setresuid(a["uid"], a["uid"], a["uid"])
    print(json.dumps({"readable": [p for p in a["protect"] if readable(p)],
                      "unreadable": [p for p in a["need"] if not readable(p)]}))


if __name__ == "__main__":
    main(sys.argv)
