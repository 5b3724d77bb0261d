"""What a kernel in the sandbox can reach: ``./course instructor doctor``'s probe, run by path in the kernel's place.

    python sandbox_probe.py '<json from sandbox.probe_args>'

``sandbox.doctor`` puts this file in the student's folder and runs it with the exact command that starts a kernel
(the boot step copies it into the working folder); tests/test_sandbox.py runs its ``probe`` inside a live kernel.
It prints one JSON line: who it runs as, which hidden paths it can see or read, whether the grader's secret is in
its environment or pid 1's, whether it has a network, each writable mount's size and how much a writer could put
there, and how many processes a fork loop reached.  Standard library only.
"""
import json
import os
import resource
import socket
import sys
import time



def _writable_dirs(walk):
    if not walk:
        return [d for d in (os.environ.get("TMPDIR"), "/tmp", "/var/tmp", "/dev/shm", os.getcwd()) if d and os.access(d, os.W_OK)]
    found = {}
    for root, dirs, files in os.walk("/"):
        if root.startswith(("/proc", "/sys")):
            dirs[:] = []
            continue
        try:
            if os.statvfs(root).f_flag & os.ST_RDONLY:
                dirs[:] = []
                continue
            if os.access(root, os.W_OK):
                found.setdefault(os.stat(root).st_dev, root)
        except OSError:
            dirs[:] = []
    return sorted(found.values())


def _fill(d, limit):
    """Write files of 1 MB chunks into d (a new file when one reaches the file-size limit) until a write fails."""
    chunk, total, paths = b"x" * (1 << 20), 0, []
    while total < limit:
        path = os.path.join(d, f".fill-{os.getpid()}-{len(paths)}")
        paths.append(path)
        n = 0
        try:
            with open(path, "wb", buffering=0) as f:
                while total + n < limit:
                    n += f.write(chunk)
        except OSError:
            pass
        try:
            n = os.path.getsize(path)
        except OSError:
            n = 0
        total += n
        if n < len(chunk):
            break
    for path in paths:
        try:
            os.remove(path)
        except OSError:
            pass
    return total


def _forks(limit):
    kids = []
    try:
        while len(kids) < limit:
            pid = os.fork()
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            kids.append(pid)
    except OSError:
        pass
    for pid in kids:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    return len(kids)


def probe(a):
    r = {"uid": os.getuid(), "cwd": os.getcwd(), "sees": [p for p in a["hidden"] if os.path.exists(p)]}
    try:
        r["home"] = sorted(os.listdir(a["home"]))
    except OSError:
        r["home"] = []
    r["reads"] = []
    for p in a["hidden"]:
        try:
            os.listdir(p) if os.path.isdir(p) else open(p, "rb").read(1)
            r["reads"].append(p)
        except OSError:
            pass
    try:
        first = open("/proc/1/environ", "rb").read().decode(errors="replace")
    except OSError:
        first = ""
    r["secret_pid1"] = a["secret"] in first
    r["secret_env"] = any(a["secret"] in k or a["secret"] in v for k, v in os.environ.items())
    try:
        socket.create_connection(("1.1.1.1", 53), timeout=2).close()
        r["network"] = True
    except OSError:
        r["network"] = False
    r["writable"] = {}
    for d in _writable_dirs(a["walk"]):
        st = os.statvfs(d)
        r["writable"][d] = {"size": st.f_blocks * st.f_frsize, "filled": _fill(d, a["fill"]) if a["fill"] else None}
    r["nproc"] = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    r["forks"] = _forks(a["forks"]) if a["forks"] else None
    return r


if __name__ == "__main__":
    print(json.dumps(probe(json.loads(sys.argv[1]))))
