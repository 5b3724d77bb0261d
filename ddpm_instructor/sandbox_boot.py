"""The sandbox's boot step: the first process inside the sandbox, run by path before the kernel.

    python -I -S sandbox_boot.py '<json>' <kernel command...>

Run by ``sandbox.SandboxKernelManager`` (never imported): inside bubblewrap as root with the capabilities it needs
for this step, or on the host as root in the unprivileged-uid mode.  The JSON says ``uid``/``gid`` (None: stay who we
are), ``work`` (the student's working folder), ``src`` (the folder to copy into it, or ""), ``mkdirs`` and
``limits`` (rlimit name -> value).  In that order it makes the working folder (0700 and the kernel's own when there
is a uid), copies the student's folder into it (regular files only, never following a link), sets the rlimits,
drops to the uid (no groups; then a user namespace of its own in which no further one can be made), and replaces
itself by the kernel command with umask 077 in the working folder.  Standard library only: ``-S`` loads no site.
"""
import json
import os
import resource
import sys


def own(path, uid, gid):
    if uid is not None:
        os.chown(path, uid, gid, follow_symlinks=False)


def copy(src, dst, uid, gid):
    """Copy the regular files of ``src`` into ``dst`` (made as needed), owned by the kernel's uid; links, devices
    and files that cannot be read are left out."""
    for root, dirs, files in os.walk(src):
        rel = os.path.relpath(root, src)
        t = dst if rel == "." else os.path.join(dst, rel)
        os.makedirs(t, exist_ok=True)
        own(t, uid, gid)
        for n in files:
            s, d = os.path.join(root, n), os.path.join(t, n)
            if os.path.islink(s) or not os.path.isfile(s):
                continue
            try:
                with open(s, "rb") as fi, open(d, "wb") as fo:
                    while True:
                        b = fi.read(1 << 20)
                        if not b:
                            break
                        fo.write(b)
                own(d, uid, gid)
            except OSError:
                pass


def drop_to(uid, gid):
    """Become ``uid``/``gid`` for good, then enter a user namespace of one's own where no further one can be made."""
    import ctypes                          # before the switch: the uid need not read the standard library's folders
    libc = ctypes.CDLL(None, use_errno=True)
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if libc.unshare(0x10000000) == 0:      # CLONE_NEWUSER
        libc.prctl(4, 1)                   # PR_SET_DUMPABLE: /proc/self is ours again after the switch
        for f, text in (("/proc/self/uid_map", f"{uid} {uid} 1"), ("/proc/self/setgroups", "deny"),
                        ("/proc/self/gid_map", f"{gid} {gid} 1"), ("/proc/sys/user/max_user_namespaces", "0")):
            with open(f, "w") as fo:
                fo.write(text)


def main(argv):
    a, cmd = json.loads(argv[1]), argv[2:]
    uid, gid = a["uid"], a["gid"]
    os.makedirs(a["work"], exist_ok=True)
    own(a["work"], uid, gid)
    if uid is not None:
        os.chmod(a["work"], 0o700)
    for d in a["mkdirs"]:
        os.makedirs(d, exist_ok=True)
        own(d, uid, gid)
    if a["src"]:
        copy(a["src"], a["work"], uid, gid)
    for name, v in a["limits"].items():
        resource.setrlimit(getattr(resource, name), (v, v))
    if uid is not None:
        drop_to(uid, gid)
    os.umask(0o077)
    os.chdir(a["work"])
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main(sys.argv)
