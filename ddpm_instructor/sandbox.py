"""Run untrusted notebook code (students' submissions) inside a bubblewrap sandbox.

Only the *kernel* is confined: nbgrader itself (which writes the gradebook and the autograded
notebooks) runs normally, and the Jupyter kernel that executes the student's cells is started as

    bwrap --unshare-all (no network) --ro-bind / / ... hidden paths ... --bind SCRATCH CWD -- prlimit ... python -m ipykernel_launcher

``SandboxKernelManager`` is a drop-in ``AsyncKernelManager`` (nbclient's ``kernel_manager_class``):

* the kernel talks to nbgrader over ZeroMQ *ipc* sockets (files in a private temp dir), so it needs
  no network namespace at all;
* the kernel's working directory is a throw-away **copy** of the student's autograded folder, mounted
  at the same path: the student's code can write "into its folder" but nothing it writes (files,
  symlinks) ever reaches the real autograded folder that nbgrader reads and writes;
* everything else is read-only, and the paths in :data:`HIDE` (plus the grading course directory and
  the source notebooks) are replaced by empty tmpfs mounts;
* the course's ``solutions/`` is replaced by the student bundle's copy (``solutions_dir``: the public stages
  only, ``ddpm_instructor.bundle``), so the kernel cannot import the reference of the assignment it is graded on;
  the instructor tooling, the git history, the notebooks and the grading directory are hidden;
* the graded tests' inputs (``DDPM_GRADER_INPUTS``) are mounted read-only;
* ``prlimit`` caps address space, file size and core dumps; per-cell and per-notebook time limits are
  applied by the grader (``ddpm_instructor.execute.GuardedExecute``).

Settings are traits of ``SandboxKernelManager`` (``enabled``, ``hide_inside``, ``solutions_dir``), set by the
course directory's generated nbgrader config and command line.  Machine-level knobs stay environment variables:
``DDPM_SANDBOX_HIDE`` / ``DDPM_SANDBOX_RO`` (os.pathsep separated extra paths to hide / keep readable),
``DDPM_SANDBOX_MEM_MB``, ``DDPM_SANDBOX_FSIZE_MB``.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from traitlets import Bool, List, Unicode

COURSE_ROOT = Path(__file__).resolve().parent.parent

# Hidden from student code by default (replaced by empty tmpfs).  /run holds sockets such as docker's.
HIDE = ["/root", "/home", "/run", "/var/run", "/mnt", "/media", "/srv", "/opt/conda/pkgs", "/var/lib/docker"]

ENV_MODE = "DDPM_SANDBOX"
ENV_HIDE = "DDPM_SANDBOX_HIDE"
ENV_RO = "DDPM_SANDBOX_RO"
ENV_MEM = "DDPM_SANDBOX_MEM_MB"
ENV_FSIZE = "DDPM_SANDBOX_FSIZE_MB"
ENV_TMP = "DDPM_SANDBOX_TMP_MB"

ENV_KEEP = {"PATH", "LANG", "LANGUAGE", "TZ", "TERM", "MPLBACKEND", "PYTHONHASHSEED", "PYTHONUNBUFFERED",
            "PYTHONDONTWRITEBYTECODE", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES",
            "NBGRADER_EXECUTION", "VIRTUAL_ENV", "PYDEVD_DISABLE_FILE_VALIDATION", "PYTHONPATH"}
ENV_KEEP_PREFIXES = ("LC_", "DDPM_PROFILE", "DDPM_DATA_DIR", "DDPM_DOWNLOAD", "DDPM_SEED", "DDPM_GRADER_INPUTS")

DEFAULT_MEM_MB = 8192          # address-space cap of the kernel (PyTorch on CPU needs ~2-3 GB of it)
DEFAULT_FSIZE_MB = 256         # largest file the student code may write
DEFAULT_TMP_MB = 512           # size of the private /tmp (RAM-backed)

__all__ = ["SandboxKernelManager", "bwrap_available", "probe", "sandbox_command"]


def _env_paths(name: str) -> list[str]:
    return [p for p in os.environ.get(name, "").split(os.pathsep) if p]


def _is_under(path: str, parent: str) -> bool:
    path, parent = os.path.normpath(path), os.path.normpath(parent)
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def required_paths() -> list[str]:
    """What the kernel must be able to read: the Python installation, the venv, the course code, MNIST."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable)),
             str(COURSE_ROOT)}
    data = os.environ.get("DDPM_DATA_DIR")
    if data:
        paths.add(data)
    paths.update(_env_paths(ENV_RO))
    return sorted({os.path.realpath(p) for p in paths if p and os.path.exists(p)})


def sandbox_command(inner: list[str], workdir: str, scratch: str, private: str,
                    hide_inside: list[str] | None = None, env: dict | None = None,
                    replace: dict | None = None) -> list[str]:
    """The bwrap argv that runs ``inner`` with ``scratch`` mounted (read-write) at ``workdir``.

    ``private`` is a directory that stays writable (the kernel's connection file and ipc sockets).
    ``hide_inside`` are paths inside the readable set that must still be hidden (the course directory
    with every submission and the gradebook, the source notebooks, ...).  ``replace`` maps a path the kernel
    sees to the folder mounted there read-only (``solutions/`` -> the bundle's copy; an empty tmpfs when the
    folder is ``""``), and mounts the graded tests' inputs read-only at their own path.
    """
    mem = int(os.environ.get(ENV_MEM, DEFAULT_MEM_MB))
    fsize = int(os.environ.get(ENV_FSIZE, DEFAULT_FSIZE_MB))
    tmp_mb = int(os.environ.get(ENV_TMP, DEFAULT_TMP_MB))
    cmd = ["bwrap", "--unshare-all", "--unshare-user-try", "--die-with-parent", "--cap-drop", "ALL",
           "--hostname", "grader",
           "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
           "--size", str(tmp_mb * 1024 * 1024), "--tmpfs", "/tmp"]
    required = required_paths()
    # The venv or the course checkout may live under /tmp (a CI clone, say): the private /tmp above hid them.
    required_in_tmp = [r for r in required if _is_under(r, "/tmp")]
    for r in required_in_tmp:
        cmd += ["--ro-bind", r, r]
    hidden = [p for p in HIDE + _env_paths(ENV_HIDE) if os.path.lexists(p)]
    for h in hidden:
        real = os.path.realpath(h)
        if _is_under(real, "/tmp") or os.path.islink(h):
            continue
        cmd += ["--tmpfs", real]
        for r in required:                      # put back what lives under a hidden path (e.g. ~/.pyenv)
            if _is_under(r, real) and r != real:
                cmd += ["--ro-bind", r, r]
    for h in hide_inside or []:
        real = os.path.realpath(h)
        visible = not _is_under(real, "/tmp") or any(_is_under(real, r) for r in required_in_tmp)
        if os.path.exists(h) and visible:
            cmd += ["--tmpfs", real]
    for where, what in (replace or {}).items():
        if what:
            cmd += ["--ro-bind", os.path.realpath(what), where]
        elif os.path.exists(where):
            cmd += ["--tmpfs", where]
    inputs = (env or {}).get("DDPM_GRADER_INPUTS") or os.environ.get("DDPM_GRADER_INPUTS")
    if inputs and os.path.isdir(inputs):
        cmd += ["--ro-bind", os.path.realpath(inputs), inputs]
    cmd += ["--bind", private, private, "--bind", scratch, workdir, "--chdir", workdir]
    # Only whitelisted environment variables reach student code (the instructor's shell may hold tokens).
    # JPY_PARENT_PID is left out on purpose: it means nothing in the new pid namespace (--die-with-parent
    # does that job).
    cmd += ["--clearenv"]
    keep = {k: v for k, v in os.environ.items() if k in ENV_KEEP or k.startswith(ENV_KEEP_PREFIXES)}
    keep.update(env or {})
    for k, v in sorted(keep.items()):
        cmd += ["--setenv", k, v]
    limits = ["prlimit", f"--as={mem * 1024 * 1024}", f"--fsize={fsize * 1024 * 1024}", "--core=0", "--"]
    return cmd + ["--"] + limits + inner


def bwrap_available() -> str | None:
    """None when bwrap works here, else a sentence saying why not."""
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (apt-get install -y bubblewrap)"
    if shutil.which("prlimit") is None:
        return "prlimit (util-linux) is not installed"
    try:
        r = subprocess.run(["bwrap", "--unshare-all", "--unshare-user-try", "--die-with-parent", "--ro-bind", "/", "/",
                            "--dev", "/dev", "--proc", "/proc", "--", "true"], capture_output=True, text=True, timeout=30)
    except Exception as e:  # pragma: no cover - depends on the host
        return f"bwrap could not be started: {e}"
    if r.returncode != 0:
        return f"bwrap cannot create a sandbox here: {r.stderr.strip()}"
    return None


def selftest() -> str | None:
    """Start Python with ipykernel through the exact sandbox command used for kernels; None when it works."""
    why = bwrap_available()
    if why:
        return why
    with tempfile.TemporaryDirectory(prefix="ddpm-selftest-") as tmp:
        work, scratch = os.path.join(tmp, "work"), os.path.join(tmp, "scratch")
        os.makedirs(work)
        os.makedirs(scratch)
        cmd = sandbox_command([sys.executable, "-c", "import ipykernel, os; os.listdir('.')"], work, scratch, tmp)
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            return "the sandboxed Python did not start within 120 s"
        if r.returncode != 0:
            return f"the sandbox command fails here ({r.stderr.strip()[-500:]})"
    return None


def probe() -> dict:
    """Try to escape from inside the sandbox and report what happened (``instructor doctor``)."""
    code = r"""
import json, os, socket, sys
r = {}
for name, addr in [("internet", ("1.1.1.1", 53)), ("loopback", ("127.0.0.1", 22))]:
    try:
        socket.create_connection(addr, timeout=3); r["network " + name] = "REACHABLE"
    except OSError as e:
        r["network " + name] = f"blocked ({e.__class__.__name__})"
for p in sys.argv[1:]:
    try:
        open(p, "w").write("x")
    except OSError:
        pass
open("own_folder_probe.txt", "w").write("x")
r["secret env visible"] = "DDPM_PROBE_SECRET" in os.environ
r["/root shows"] = sorted(os.listdir("/root")) if os.path.isdir("/root") else []
print(json.dumps(r))
"""
    tag = f"ddpm-sandbox-probe-{os.getpid()}"
    targets = [f"/etc/{tag}", f"/root/{tag}", str(COURSE_ROOT / tag), f"/tmp/{tag}"]
    with tempfile.TemporaryDirectory(prefix="ddpm-probe-") as tmp:
        work = os.path.join(tmp, "work")
        scratch = os.path.join(tmp, "scratch")
        os.makedirs(work)
        os.makedirs(scratch)
        os.environ["DDPM_PROBE_SECRET"] = "x"
        try:
            cmd = sandbox_command([sys.executable, "-c", code, *targets], work, scratch, tmp)
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        finally:
            del os.environ["DDPM_PROBE_SECRET"]
        if r.returncode != 0:
            return {"error": r.stderr.strip()[-2000:]}
        out = json.loads(r.stdout.strip().splitlines()[-1])
        for t in targets:
            escaped = os.path.exists(t)
            out[f"write {t}"] = "ESCAPED" if escaped else "contained"
            if escaped:
                os.remove(t)
        out["write own folder"] = "contained (went to the scratch copy)" if not os.path.exists(
            os.path.join(work, "own_folder_probe.txt")) else "ESCAPED"
        return out


def course_copies() -> list[Path]:
    """Every checkout of the course this Python could import from: this one, and the one an editable install maps
    ``solutions`` to (setuptools' finder keeps a ``MAPPING``).  The kernel must see neither's answers."""
    roots = {COURSE_ROOT}
    for module in list(sys.modules.values()):
        mapping = getattr(module, "MAPPING", None)
        if isinstance(mapping, dict) and isinstance(mapping.get("solutions"), str):
            roots.add(Path(mapping["solutions"]).resolve().parent)
    return sorted(roots)


HIDDEN_IN_COURSE = ["ddpm_instructor", ".git", "notebooks", "workspace", "runs", "grading"]


def _copy_regular_files(src: str, dst: str) -> None:
    """Copy the student's folder into the scratch dir: regular files and folders only, never links."""
    for root, dirs, files in os.walk(src, followlinks=False):
        rel = os.path.relpath(root, src)
        target = os.path.join(dst, rel) if rel != "." else dst
        os.makedirs(target, exist_ok=True)
        for name in files:
            s = os.path.join(root, name)
            if os.path.islink(s) or not os.path.isfile(s):
                continue
            shutil.copyfile(s, os.path.join(target, name))


class SandboxKernelManager(AsyncKernelManager):
    """A kernel manager whose kernels run inside bubblewrap (see the module docstring)."""

    enabled = Bool(True, help="Run kernels in bubblewrap; False only for trusted notebooks.").tag(config=True)
    hide_inside = List(Unicode(), help="Paths the kernel must not see (the grading directory, the sources, the "
                       "instructor tooling).").tag(config=True)
    solutions_dir = Unicode("", help="Mounted over the course's solutions/: the student bundle's copy (public "
                            "stages only).  Empty: solutions/ is hidden entirely.").tag(config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._private = tempfile.mkdtemp(prefix="ddpm-k-", dir="/tmp")   # short: unix socket paths <= 107 chars
        os.chmod(self._private, 0o700)
        self.transport = "ipc"
        self.ip = os.path.join(self._private, "s")
        self.connection_file = os.path.join(self._private, "kernel.json")

    @property
    def sandboxed(self) -> bool:
        return self.enabled and os.environ.get(ENV_MODE, "bwrap") != "off"

    def format_kernel_cmd(self, extra_arguments=None):
        extra_arguments = list(extra_arguments or [])
        inner = [sys.executable, "-m", "ipykernel_launcher", "-f", self.connection_file] + extra_arguments
        if not self.sandboxed:
            return inner
        cwd = (self._launch_args or {}).get("cwd") or os.getcwd()
        cwd = os.path.realpath(cwd)
        scratch = os.path.join(self._private, "work")
        if os.path.exists(scratch):
            shutil.rmtree(scratch, ignore_errors=True)
        _copy_regular_files(cwd, scratch)
        hide_inside = list(self.hide_inside)
        replace = {}
        for root in course_copies():
            replace[str(root / "solutions")] = self.solutions_dir
            hide_inside += [str(root / d) for d in HIDDEN_IN_COURSE]
        env = {"HOME": "/tmp", "MPLCONFIGDIR": "/tmp/.mpl", "XDG_CACHE_HOME": "/tmp/.cache",
               "JUPYTER_RUNTIME_DIR": self._private, "IPYTHONDIR": "/tmp/.ipython"}
        return sandbox_command(inner, cwd, scratch, self._private, hide_inside=hide_inside, env=env, replace=replace)

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        # the kernel's own stdout/stderr (not the notebook outputs) could be flooded: discard them
        kw["stdout"] = subprocess.DEVNULL
        kw["stderr"] = subprocess.DEVNULL
        return await super()._async_launch_kernel(kernel_cmd, **kw)

    async def _async_interrupt_kernel(self):
        # SIGINT to the process group would also stop bwrap (and so kill the kernel): ask the kernel itself
        if self.has_kernel:
            msg = self.session.msg("interrupt_request", content={})
            self._connect_control_socket()
            self.session.send(self._control_socket, msg)

    interrupt_kernel = _async_interrupt_kernel

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            shutil.rmtree(self._private, ignore_errors=True)

    cleanup_resources = _async_cleanup_resources

    def __del__(self):
        try:
            shutil.rmtree(self._private, ignore_errors=True)
        except Exception:
            pass


if __name__ == "__main__":  # python -m ddpm_instructor.sandbox : print the probe
    why = bwrap_available()
    print(why or json.dumps(probe(), indent=2))
