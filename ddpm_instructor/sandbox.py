"""Run untrusted notebook code (students' submissions) in a kernel that sees an allow-list.

Only the *kernel* is confined: nbgrader itself (which writes the gradebook and the autograded notebooks) runs
normally.  ``SandboxKernelManager`` is a drop-in ``AsyncKernelManager`` (nbclient's ``kernel_manager_class``) with
four modes (trait ``mode``):

``bwrap`` (what ``auto`` picks where bubblewrap can create namespaces)
    The kernel's root is an empty tmpfs holding only what the notebook needs, read-only: ``/usr`` and the other
    system folders, the ``/etc`` files the dynamic loader reads, the Python installation and the venv (their
    editable-install finders and the ``.pth`` files that point anywhere else masked, and no copy of the course's
    packages), the assignment's student bundle at ``/sandbox/bundle`` (on ``PYTHONPATH``: its ``tutorial_utils``,
    public ``solutions``, checkpoints and judge weights), MNIST at ``/sandbox/data`` and the graded tests' inputs
    folder at ``/sandbox/inputs``, which holds one test's inputs only while its graded cell runs
    (``graded_inputs``, used by ``execute.GuardedExecute``) and is empty otherwise.  Nothing else of the host: no checkout (``tests/``, ``benchmarks/``, ``docs/``), no
    grading directory, no other copy of the course, no host ``/tmp`` or home.  The writable places are sized
    tmpfs mounts: ``/tmp`` (``tmp_mb``), ``/dev/shm`` (``shm_mb``) and the working copy of the student's folder
    at ``/home/student/<assignment>`` (``work_mb``; the copy is made inside, so nothing the kernel writes reaches
    the real folder).  No network, own pid/ipc/uts namespaces.  bubblewrap starts from an empty environment and
    the kernel gets only the variables listed in ``kernel_env``.  When the grader is root the kernel runs as an
    unprivileged uid of its own (``UID_BASE`` + a slot held for the kernel's lifetime), so ``RLIMIT_NPROC``
    (``nproc``, counted per uid and never enforced for root) really bounds it; the folder of its ZeroMQ sockets is
    handed back to root once they exist, before any cell runs.
``user`` (what ``auto`` picks where bubblewrap cannot create namespaces, e.g. Docker's default seccomp profile)
    The kernel runs as that unprivileged uid on the host's filesystem, in a 0700 folder it owns holding the working
    copy, a copy of the bundle and the inputs folder (root's, filled one graded cell at a time), with the same
    rlimits.  Before the first kernel the grader checks, as
    that uid, that it cannot read the checkout, the grading directory or ``protect``; it refuses with an
    ``InstructorError`` that says what to ``chmod`` otherwise.  Every notebook graded so carries a note saying so.
``off``
    The kernel runs unconfined, as the grader (``--no-sandbox``: trusted notebooks only); a note says so.

``rlimits`` (address space ``mem_mb``, file size ``fsize_mb``, processes ``nproc``, no core dumps) apply in every
confined mode.  All settings are traits, set by the course directory's generated nbgrader config and command line
(``ddpm_instructor.coursedir``).  ``doctor()`` runs the exact kernel command with a probe instead of the kernel and
reports what it could reach (``./course instructor doctor``).
"""
from __future__ import annotations

import ast
import contextlib
import fcntl
import functools
import json
import os
import re
import shutil
import site
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from traitlets import Enum, Integer, List, Unicode, default

from .errors import InstructorError

COURSE_ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
BOOT_FILE, READ_CHECK_FILE, KILL_FILE, PROBE_FILE = (str(HERE / f"sandbox_{n}.py") for n in ("boot", "readcheck",
                                                                                                "kill", "probe"))
MODES = ("auto", "bwrap", "user", "off")
BUNDLE_IN, INPUTS_IN, DATA_IN, SRC_IN = "/sandbox/bundle", "/sandbox/inputs", "/sandbox/data", "/sandbox/.src"
BOOT_IN = SRC_IN + "/boot.py"          # the boot step, in the 0700 folder only it reads (root, before the switch)
HOME_IN = "/home/student"
SYSTEM = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"]
ETC = ["/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/fonts"]
COURSE_PACKAGES = {"solutions", "ddpm_instructor", "tutorial_utils", "tests", "benchmarks", "notebooks"}
UID_BASE = 1_999_000           # kernels run as UID_BASE + 1 + slot, group UID_BASE; no file on the host is theirs
SLOTS = 512
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")     # a grade id that names a file in the inputs folder
ROOT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_SETUID", "CAP_SETGID"]   # the boot step's, then none
NOTES = {
    "user": "Your code ran as an unprivileged user with no filesystem sandbox (bubblewrap cannot create namespaces "
            "on this grading machine); that user cannot read the grader's files.",
    "off": "Your code ran without any sandbox, as the grader's own user (the instructor turned the sandbox off).",
}

__all__ = ["SandboxKernelManager", "bwrap_available", "doctor", "resolve_mode", "selftest", "NOTES"]


def _under(path: str, parent: str) -> bool:
    path, parent = os.path.normpath(path), os.path.normpath(parent)
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _outermost(paths) -> list[str]:
    paths = sorted({os.path.realpath(p) for p in paths if p and os.path.exists(p)})
    return [p for p in paths if not any(q != p and _under(p, q) for q in paths)]


# ------------------------------------------------------------------ what the kernel may read
def site_dirs() -> list[str]:
    return [p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages") and os.path.isdir(p)]


def python_roots() -> list[str]:
    """The Python installation and the venv (outermost folders, system folders left out: they are bound anyway)."""
    roots = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))] + site_dirs()
    return [r for r in _outermost(roots) if not any(_under(r, s) for s in SYSTEM)]


def _pth_points_elsewhere(path: str, visible: list[str]) -> bool:
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return True
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("import ", "import\t")):
            if "__editable__" in line:
                return True
            continue
        target = os.path.realpath(os.path.join(os.path.dirname(path), line))
        if not any(_under(target, v) for v in visible):
            return True
    return False


def masked_paths(visible: list[str]) -> list[str]:
    """Inside the visible Python: editable-install finders and ``.pth`` files that point into a checkout, any copy of
    the course's packages, and the base installation's site-packages when the venv does not use them."""
    out = []
    for d in site_dirs():
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name)
            if name.startswith("__editable__") or name.endswith(".egg-link") or name in COURSE_PACKAGES:
                out.append(p)
            elif name.endswith(".pth") and _pth_points_elsewhere(p, visible):
                out.append(p)
    used = {os.path.realpath(p) for p in site_dirs()}
    for d in site.getsitepackages([sys.base_prefix]):
        if os.path.isdir(d) and os.path.realpath(d) not in used and any(_under(d, v) for v in visible):
            out.append(d)
    return out


def course_copies() -> list[Path]:
    """Checkouts of the course this Python knows: this one, and the one an editable install maps packages to."""
    roots = {COURSE_ROOT}
    for d in site_dirs():
        for p in Path(d).glob("__editable__*finder.py"):
            for line in p.read_text(errors="replace").splitlines():
                if line.startswith("MAPPING") and "{" in line:
                    roots |= {Path(v).resolve().parent for v in _editable_mapping(p, line).values()}
    return sorted(roots)


def _editable_mapping(finder: Path, line: str) -> dict:
    """The package -> folder dict literal that setuptools writes on the ``MAPPING`` line of an editable install's
    finder.  Anything else is refused: an unread mapping would leave that checkout visible to the kernel."""
    try:
        mapping = ast.literal_eval(line.split("=", 1)[1].strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
        mapping, why = None, f"{type(e).__name__}: {e}"
    else:
        why = "not a dict of package names to folders"
    if not (isinstance(mapping, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items())):
        raise InstructorError(f"cannot read the editable install's package folders in {finder} ({why}): the sandbox "
                              "could not hide that checkout from the kernel. Reinstall the course (pip install -e .) "
                              "or remove that file.")
    return mapping


# ------------------------------------------------------------------ the scripts run by path (sandbox_*.py)
def _script(path: str, *args: str) -> list[str]:
    """The argv that runs one of the sandbox's own scripts: isolated (``-I``: no environment, no user site, not its
    own folder on the path) and without site (``-S``): the standard library only."""
    return [sys.executable, "-I", "-S", path, *args]


def _as_root() -> bool:
    return os.geteuid() == 0


def _kill_uid(uid: int) -> None:
    """Kill every process of ``uid`` (what a user-mode kernel left running)."""
    subprocess.run(_script(KILL_FILE, str(uid), str(UID_BASE)), env={},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)


class _Slot:
    """A uid of our own for one kernel, held (flock) for the kernel manager's lifetime."""

    def __init__(self):
        d = os.path.join(tempfile.gettempdir(), "ddpm-sandbox-slots")
        os.makedirs(d, mode=0o700, exist_ok=True)
        for i in range(SLOTS):
            fd = os.open(os.path.join(d, str(i)), os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            self.fd, self.uid = fd, UID_BASE + 1 + i
            return
        raise InstructorError(f"all {SLOTS} sandbox uids are in use: too many kernels at once.")

    def release(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


# ------------------------------------------------------------------ which mode works here
def _system_args() -> list[str]:
    args = ["--perms", "0755", "--dir", "/etc"]
    for p in SYSTEM:
        if os.path.islink(p):
            args += ["--symlink", os.readlink(p), p]
        elif os.path.isdir(p):
            args += ["--ro-bind", p, p]
    for p in ETC:
        if os.path.exists(p):
            args += ["--ro-bind", p, p]
    return args


def _namespaces() -> list[str]:
    ns = ["--new-session", "--die-with-parent", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
          "--unshare-cgroup-try", "--hostname", "grader"]
    if _as_root():         # the boot step switches to the kernel's uid: it keeps only what that needs
        ns += ["--cap-drop", "ALL"] + [x for c in ROOT_CAPS for x in ("--cap-add", c)]
    else:
        ns += ["--unshare-user"]
    return ns


@functools.lru_cache(maxsize=8)
def _bwrap_problem(bwrap: str | None) -> str | None:
    if bwrap is None:
        return "bubblewrap is not installed (apt-get install -y bubblewrap)"
    try:
        r = subprocess.run([bwrap, *_namespaces(), *_system_args(), "--proc", "/proc", "--dev", "/dev", "--",
                            "/usr/bin/env", "true"], capture_output=True, text=True, timeout=30, env={})
    except Exception as e:  # pragma: no cover - depends on the host
        return f"bubblewrap could not be started: {e}"
    if r.returncode != 0:
        return f"bubblewrap cannot create namespaces here ({r.stderr.strip()[-300:]})"
    return None


def bwrap_available(bwrap: str | None = None) -> str | None:
    """None when bubblewrap can build the kernel's sandbox here, else a sentence saying why not."""
    return _bwrap_problem(bwrap or shutil.which("bwrap"))


def resolve_mode(mode: str = "auto", bwrap: str | None = None) -> str:
    """The mode in force: ``auto`` is ``bwrap`` where bubblewrap works, else ``user`` where the grader is root."""
    if mode not in MODES:
        raise InstructorError(f"sandbox mode {mode!r}: use one of {', '.join(MODES)}.")
    why = bwrap_available(bwrap) if mode in ("auto", "bwrap") else None
    if mode == "bwrap" and why:
        raise InstructorError(f"sandbox mode bwrap: {why}. Install bubblewrap, allow user namespaces, or use the "
                              "fallback (mode user, run as root).")
    if mode == "auto" and not why:
        return "bwrap"
    if mode in ("auto", "user") and not _as_root():
        raise InstructorError(f"cannot sandbox student code: {why or 'mode user'}; the fallback (an unprivileged "
                              "uid for the kernel) needs the grader to run as root. Install bubblewrap, or grade as "
                              "root, or, for trusted notebooks only, pass --no-sandbox.")
    return "user" if mode == "auto" else mode


def selftest(mode: str = "auto") -> str | None:
    """None when student code can be confined here in ``mode``, else why not."""
    try:
        resolve_mode(mode)
    except InstructorError as e:
        return str(e)
    return None


# ------------------------------------------------------------------ the kernel manager
def _parents(args: list[str], made: set[str], binds: list[str], dst: str) -> None:
    """Create (0755) the folders above ``dst`` that neither a bind mount nor an earlier step made."""
    todo, p = [], os.path.dirname(dst)
    while p not in ("/", "") and p not in made and not any(_under(p, b) for b in binds):
        todo.append(p)
        p = os.path.dirname(p)
    for d in reversed(todo):
        args += ["--perms", "0755", "--dir", d]
        made.add(d)


def _copy_tree(src: str, dst: str) -> None:
    """A copy the kernel's uid can read whatever the source's modes: folders 0755, files 0644 (root's)."""
    if src and os.path.isdir(src):
        shutil.copytree(src, dst, symlinks=False, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True,
                        copy_function=shutil.copyfile)
        for root, _, files in os.walk(dst):
            os.chmod(root, 0o755)
            for n in files:
                os.chmod(os.path.join(root, n), 0o644)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


class SandboxKernelManager(AsyncKernelManager):
    """A kernel manager whose kernels see only an allow-list (see the module docstring)."""

    mode = Enum(list(MODES), "auto", help="auto | bwrap | user | off (see ddpm_instructor.sandbox).").tag(config=True)
    mem_mb = Integer(8192, help="Address-space limit of each kernel process, MB (PyTorch on CPU needs 2-3 GB)."
                     ).tag(config=True)
    fsize_mb = Integer(256, help="Largest file the kernel may write, MB.").tag(config=True)
    tmp_mb = Integer(512, help="Size of the kernel's private /tmp (RAM-backed), MB.").tag(config=True)
    shm_mb = Integer(64, help="Size of the kernel's /dev/shm, MB.").tag(config=True)
    work_mb = Integer(512, help="Size of the working copy of the student's folder, MB.").tag(config=True)
    nproc = Integer(256, help="Processes and threads the kernel may have at once (RLIMIT_NPROC).").tag(config=True)
    bundle_dir = Unicode("", help="The assignment's student bundle (<course>/bundles/<assignment>): read-only at "
                         f"{BUNDLE_IN}, on the kernel's PYTHONPATH.").tag(config=True)
    inputs_dir = Unicode("", help=f"The graded tests' inputs (the grader's, never shown to the kernel): each test's "
                         f"file is copied into the kernel's inputs folder ({INPUTS_IN}, in DDPM_GRADER_INPUTS) only "
                         "while its graded cell runs.").tag(config=True)
    data_dir = Unicode(help=f"MNIST (a folder holding MNIST/raw): read-only at {DATA_IN}, in DDPM_DATA_DIR."
                       ).tag(config=True)
    extra_ro = List(Unicode(), help="More host paths the kernel may read (bound read-only at the same path)."
                    ).tag(config=True)
    protect = List(Unicode(), help="Paths the kernel must never read (the grading directory, the sources); in user "
                   "mode the grader refuses to start a kernel that could.").tag(config=True)
    kernel_env = List(Unicode(), ["DDPM_PROFILE", "DDPM_SEED", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "LANG", "TZ",
                                  "PYTHONHASHSEED", "NBGRADER_EXECUTION"],
                      help="The only variables of the grader's environment the kernel gets.").tag(config=True)
    bwrap = Unicode("", help="The bubblewrap executable (default: bwrap on PATH).").tag(config=True)

    @default("data_dir")
    def _data_dir_default(self):
        return os.environ.get("DDPM_DATA_DIR", "")      # tutorial_utils' own setting, not the sandbox's

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._private = tempfile.mkdtemp(prefix="ddpm-k-", dir="/tmp")   # short: unix socket paths <= 107 chars
        self._socks = os.path.join(self._private, "k")
        os.makedirs(self._socks, mode=0o700)
        self.transport = "ipc"
        self.ip = os.path.join(self._socks, "s")
        self.connection_file = os.path.join(self._socks, "kernel.json")
        self._kernel_file = os.path.join(self._socks, "kernel-copy.json")   # the kernel's own copy, its uid's
        self._slot: _Slot | None = None
        self._mode: str | None = None
        self._launch_env: dict = {}
        self._stage: str | None = None          # the kernel's inputs folder: empty but while a graded cell runs
        self._stage_fd: int | None = None

    # ---------------------------------------------------------------- what is in force
    @property
    def in_force(self) -> str:
        if self._mode is None:
            self._mode = resolve_mode(self.mode, self.bwrap or None)
        return self._mode

    @property
    def note(self) -> str | None:
        """What the grader notes of a notebook graded with this kernel must say (None: confined by bubblewrap)."""
        return NOTES.get(self.in_force)

    @property
    def uid(self) -> int | None:
        if not _as_root() or self.in_force == "off":
            return None
        if self._slot is None:
            self._slot = _Slot()
        return self._slot.uid

    def limits(self) -> dict:
        mb = 1024 * 1024
        return {"RLIMIT_AS": self.mem_mb * mb, "RLIMIT_FSIZE": self.fsize_mb * mb, "RLIMIT_CORE": 0,
                "RLIMIT_NPROC": self.nproc}

    def _env(self, tmp: str, bundle: str, inputs: str, data: str) -> dict:
        env = {k: os.environ[k] for k in self.kernel_env if k in os.environ}
        env.setdefault("LANG", "C.UTF-8")
        env.update(PATH=f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin", HOME=tmp, TMPDIR=tmp,
                   USER="student", LOGNAME="student", MPLBACKEND="Agg", MPLCONFIGDIR=f"{tmp}/.mpl",
                   XDG_CACHE_HOME=f"{tmp}/.cache", IPYTHONDIR=f"{tmp}/.ipython", JUPYTER_RUNTIME_DIR=self._socks,
                   PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1", DDPM_DOWNLOAD="0")
        for key, value in (("PYTHONPATH", bundle), ("DDPM_GRADER_INPUTS", inputs), ("DDPM_DATA_DIR", data)):
            if value:
                env[key] = value
        return env

    # ---------------------------------------------------------------- the command
    def format_kernel_cmd(self, extra_arguments=None):
        conn = self._kernel_file if self.in_force != "off" else self.connection_file
        inner = [sys.executable, "-m", "ipykernel_launcher", "-f", conn] + list(extra_arguments or [])
        cwd = os.path.realpath((self._launch_args or {}).get("cwd") or os.getcwd())
        return self.command(inner, cwd)

    def command(self, inner: list[str], cwd: str) -> list[str]:
        """The argv that runs ``inner`` as the kernel runs (``cwd``: the student's folder, copied); sets the
        environment it is launched with."""
        mode = self.in_force
        if mode == "off":
            self._launch_env = dict(os.environ)
            extra = {"PYTHONPATH": os.pathsep.join(p for p in (self.bundle_dir, os.environ.get("PYTHONPATH")) if p),
                     "DDPM_GRADER_INPUTS": self._make_stage()}
            self._launch_env.update({k: v for k, v in extra.items() if v})
            return inner
        boot = {"uid": self.uid, "gid": UID_BASE if self.uid is not None else None, "limits": self.limits(),
                "mkdirs": []}
        if mode == "user":
            argv, boot_file = self._user_argv(boot, cwd), BOOT_FILE
        else:
            argv, boot_file = self._bwrap_argv(boot, cwd), BOOT_IN
        return argv + _script(boot_file, json.dumps(boot)) + inner

    def _bwrap_argv(self, boot: dict, cwd: str) -> list[str]:
        """bubblewrap over an empty root: the allow-list, read-only, and the sized tmpfs mounts."""
        mb, p = 1024 * 1024, self._private
        args = [self.bwrap or shutil.which("bwrap") or "bwrap", *_namespaces(), *_system_args(),
                "--dev", "/dev", "--proc", "/proc",
                "--perms", "1777", "--size", str(self.tmp_mb * mb), "--tmpfs", "/tmp",
                "--perms", "1777", "--size", str(self.shm_mb * mb), "--tmpfs", "/dev/shm"]
        binds = [a for a in SYSTEM if os.path.isdir(a) and not os.path.islink(a)] + ["/dev", "/proc"]
        made = {"/etc", "/tmp", "/dev/shm"}
        visible = _outermost(python_roots() + list(self.extra_ro))
        for r in visible:
            _parents(args, made, binds, r)
            args += ["--ro-bind", r, r]
            binds.append(r)
        empty_dir, empty_file = os.path.join(p, "empty"), os.path.join(p, "empty.txt")
        os.makedirs(empty_dir, mode=0o555, exist_ok=True)
        Path(empty_file).touch(mode=0o444)
        for m in masked_paths(visible):
            args += ["--ro-bind", empty_dir if os.path.isdir(m) else empty_file, m]
        etc = os.path.join(p, "etc")
        os.makedirs(etc, exist_ok=True)
        uid, gid = boot["uid"] if boot["uid"] is not None else os.getuid(), boot["gid"] or os.getgid()
        Path(etc, "passwd").write_text(f"student:x:{uid}:{gid}:student:/tmp:/usr/sbin/nologin\n")
        Path(etc, "group").write_text(f"student:x:{gid}:\n")
        args += ["--ro-bind", f"{etc}/passwd", "/etc/passwd", "--ro-bind", f"{etc}/group", "/etc/group"]
        for src, dst in ((self.bundle_dir, BUNDLE_IN), (self._make_stage(), INPUTS_IN), (self.data_dir, DATA_IN)):
            if src and os.path.isdir(src):
                _parents(args, made, binds, dst)
                args += ["--ro-bind", os.path.realpath(src), dst]
        work = f"{HOME_IN}/{os.path.basename(cwd) or 'work'}"
        _parents(args, made, binds, SRC_IN)
        args += ["--perms", "0700", "--dir", SRC_IN, "--ro-bind", cwd, SRC_IN + "/f", "--ro-bind", BOOT_FILE, BOOT_IN]
        made.add(SRC_IN)
        _parents(args, made, binds, work)
        args += ["--perms", "0755", "--size", str(self.work_mb * mb), "--tmpfs", work]
        _parents(args, made, binds, self._socks)
        args += ["--bind", self._socks, self._socks, "--chdir", "/", "--clearenv"]
        env = self._env("/tmp", BUNDLE_IN if self.bundle_dir else "", INPUTS_IN if self.inputs_dir else "",
                        DATA_IN if self.data_dir else "")
        for k, v in sorted(env.items()):
            args += ["--setenv", k, v]
        boot.update(src=SRC_IN + "/f", work=work)
        self._launch_env = {}          # bubblewrap itself (pid 1 inside) starts from an empty environment
        return args + ["--"]

    def _user_argv(self, boot: dict, cwd: str) -> list[str]:
        """The fallback: no namespaces; the kernel's uid owns a 0700 folder with copies of what it may read."""
        uid, p = boot["uid"], self._private
        self.check_user_mode(uid)
        _kill_uid(uid)
        bundle, tmp = os.path.join(p, "bundle"), os.path.join(p, "tmp")
        _copy_tree(self.bundle_dir, bundle)
        inputs = self._make_stage()
        boot.update(src=cwd, work=os.path.join(p, "work"), mkdirs=[tmp])
        self._launch_env = self._env(tmp, bundle if self.bundle_dir else "", inputs if self.inputs_dir else "",
                                     self.data_dir)
        return []

    # ---------------------------------------------------------------- the graded tests' inputs, one cell at a time
    def _make_stage(self) -> str:
        """The folder the kernel knows as ``DDPM_GRADER_INPUTS`` ("" without ``inputs_dir``): the grader's, 0755,
        inside this kernel's private folder, and empty but while a graded cell runs (``graded_inputs``).  It is
        written through a descriptor opened here, so that a kernel that renames the folder (in the ``user`` mode its
        uid owns the private folder) only loses its inputs; it can never make the grader write elsewhere."""
        if not self.inputs_dir:
            return ""
        if self._stage is None:
            self._stage = os.path.join(self._private, "inputs")
            os.mkdir(self._stage, 0o755)
            os.chmod(self._stage, 0o755)
            self._stage_fd = os.open(self._stage, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        return self._stage

    @contextlib.contextmanager
    def graded_inputs(self, grade_id: str):
        """``with km.graded_inputs(gid):`` the kernel's inputs folder holds ``<gid>.pt`` (copied from ``inputs_dir``)
        and nothing else; on leaving it is empty again.  Nothing happens for a test without inputs there."""
        src = os.path.join(self.inputs_dir, f"{grade_id}.pt") if self.inputs_dir else ""
        if self._stage_fd is None or not _PLAIN_NAME.fullmatch(grade_id or "") or not os.path.isfile(src):
            yield
            return
        self._empty_stage()
        name = f"{grade_id}.pt"
        with open(src, "rb") as f:
            data = f.read()
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=self._stage_fd)
        try:
            os.fchmod(fd, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            yield
        finally:
            self._empty_stage()

    def _empty_stage(self) -> None:
        if self._stage_fd is None:
            return
        for name in os.listdir(self._stage_fd):
            try:
                os.unlink(name, dir_fd=self._stage_fd)
            except FileNotFoundError:
                pass

    # ---------------------------------------------------------------- the fallback's own check
    _checked: set = set()

    def protected_paths(self) -> list[str]:
        """What the kernel must not read: every checkout of the course (all but the folders the kernel needs, such as
        a venv inside it), and ``protect``."""
        need = python_roots() + [self.data_dir] + list(self.extra_ro)
        out = []
        for root in course_copies():
            if root.is_dir():
                out.append(str(root))
                out += [str(e) for e in sorted(root.iterdir()) if not any(n and _under(n, str(e)) for n in need)]
        return out + [p for p in self.protect if os.path.exists(p)]

    def needed_paths(self) -> list[str]:
        import ipykernel
        return [p for p in (os.path.realpath(sys.executable), os.__file__, ipykernel.__file__, self.data_dir) if p]

    def check_user_mode(self, uid: int) -> None:
        """Refuse (InstructorError) when the kernel's uid could read the grader's files or cannot read its own."""
        protect, need = self.protected_paths(), self.needed_paths()
        key = (tuple(protect), tuple(need))
        if key in SandboxKernelManager._checked:
            return
        r = subprocess.run(_script(READ_CHECK_FILE, json.dumps({"uid": uid, "gid": UID_BASE, "protect": protect,
                                                                 "need": need})),
                           env={}, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise InstructorError(f"sandbox mode user: could not test what uid {uid} can read ({r.stderr[-300:]}).")
        res = json.loads(r.stdout)
        if res["readable"]:
            raise InstructorError(
                f"sandbox mode user: the kernel's unprivileged uid ({uid}) could read the grader's files: "
                f"{', '.join(res['readable'])}. Make them unreadable to other users (chmod -R o-rwx on each; keep the "
                "venv outside the checkout, or leave only it readable), or install bubblewrap.")
        if res["unreadable"]:
            raise InstructorError(
                f"sandbox mode user: the kernel's unprivileged uid ({uid}) cannot read what the notebook needs: "
                f"{', '.join(res['unreadable'])}. Make them readable to other users (chmod -R o+rX, and o+x on the "
                "folders above them).")
        SandboxKernelManager._checked.add(key)

    # ---------------------------------------------------------------- launching and stopping
    def _hand_over(self) -> None:
        """Before the launch: the kernel's uid gets what it must write (its sockets' folder) and read."""
        uid = self.uid
        if self.in_force != "off" and os.path.exists(self.connection_file):
            shutil.copyfile(self.connection_file, self._kernel_file)    # jupyter_client may rewrite its own later
            os.chmod(self._kernel_file, 0o400)
            if uid is not None:
                os.chown(self._kernel_file, uid, UID_BASE)
        if uid is None:
            return
        os.chown(self._socks, uid, UID_BASE)
        if self.in_force == "user":
            os.chown(self._private, uid, UID_BASE)
            os.chmod(self._private, 0o700)

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        # the kernel's own stdout/stderr (not the notebook outputs) could be flooded: discard them
        kw["stdout"] = kw["stderr"] = subprocess.DEVNULL
        kw["env"] = self._launch_env
        if self.in_force != "off":
            kw["cwd"] = "/"
        self._hand_over()
        return await super()._async_launch_kernel(kernel_cmd, **kw)

    async def _async_post_start_kernel(self, **kw):
        if self.in_force != "off":
            await self._lock_sockets()
        await super()._async_post_start_kernel(**kw)

    async def _lock_sockets(self, timeout: float = 120) -> None:
        """Once the kernel has made its five sockets (before any cell runs), their folder, the only writable bind of a
        host folder, goes back to root: the kernel can use the sockets but never write a file there."""
        import asyncio
        names = [f"{self.ip}-{port}" for port in (self.shell_port, self.iopub_port, self.stdin_port,
                                                   self.control_port, self.hb_port)]
        t0 = time.monotonic()
        while not all(os.path.exists(n) for n in names) and time.monotonic() - t0 < timeout:
            if not await self._async_is_alive():
                break
            await asyncio.sleep(0.02)
        self._lock_now()

    def _lock_now(self) -> None:
        if self.in_force == "bwrap" and self.uid is not None:
            os.chown(self._socks, 0, 0)
            os.chmod(self._socks, 0o755)

    async def _async_interrupt_kernel(self):
        # SIGINT to the process group would also stop bwrap (and so kill the kernel): ask the kernel itself
        if self.has_kernel:
            msg = self.session.msg("interrupt_request", content={})
            self._connect_control_socket()
            self.session.send(self._control_socket, msg)

    interrupt_kernel = _async_interrupt_kernel

    def _release(self) -> None:
        if self._stage_fd is not None:
            os.close(self._stage_fd)
            self._stage_fd = None
        if self._slot is not None:
            if self._mode == "user":
                _kill_uid(self._slot.uid)
            self._slot.release()
            self._slot = None
        shutil.rmtree(self._private, ignore_errors=True)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            self._release()

    cleanup_resources = _async_cleanup_resources

    def __del__(self):
        try:
            self._release()
        except Exception:
            pass


# ------------------------------------------------------------------ what the kernel can reach (doctor, tests)
# The probe is sandbox_probe.py (PROBE_FILE): doctor runs it with the kernel's own command.

def probe_args(secret: str, fill: int = 0, forks: int = 0, walk: bool = True, hidden=()) -> dict:
    """What the probe looks for: the checkouts' tests/ and benchmarks/, the grader's /tmp and home, ``hidden``."""
    seen = [str(r / d) for r in course_copies() for d in ("tests", "benchmarks", "docs", "ddpm_instructor")]
    return {"secret": secret, "fill": fill, "forks": forks, "walk": walk, "hidden": seen + list(hidden),
            "home": os.path.expanduser("~")}


def home_leaks(listing: list[str]) -> list[str]:
    """What a kernel's listing of the grader's home shows beyond the folders that lead to the Python it runs."""
    home = os.path.realpath(os.path.expanduser("~"))
    lead = {Path(r).relative_to(home).parts[0] for r in python_roots() if _under(r, home) and r != home}
    return sorted(set(listing) - lead)


def doctor(mode: str = "auto", config=None, fill: bool = True) -> tuple[str, list[Check]]:
    """Which mode is in force here and what a kernel in it could reach: each check made, with its result."""
    why = bwrap_available()
    checks = [Check("bubblewrap can create namespaces here", why is None, why or "")]
    try:
        mode = resolve_mode(mode)
    except InstructorError as e:
        return "none", checks + [Check("a sandbox mode can be used", False, str(e))]
    if mode == "off":
        return mode, checks + [Check("student code is confined", False, NOTES["off"])]
    km = SandboxKernelManager(config=config) if config is not None else SandboxKernelManager()
    km.mode = mode
    secret = f"DDPM_DOCTOR_SECRET_{os.getpid()}"
    os.environ[secret] = secret
    try:
        return mode, checks + _probe_checks(km, secret, fill)
    finally:
        del os.environ[secret]
        km._release()


def _probe_checks(km: SandboxKernelManager, secret: str, fill: bool) -> list[Check]:
    mb = 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="ddpm-doctor-") as folder:     # in the grader's /tmp: must not show
        args = probe_args(secret, fill=(max(km.tmp_mb, km.work_mb, km.shm_mb) + 8) * mb if fill else 0,
                          forks=km.nproc + 8, walk=km.in_force == "bwrap", hidden=[folder])
        shutil.copyfile(PROBE_FILE, os.path.join(folder, "sandbox_probe.py"))    # copied in with the folder
        try:
            argv = km.command([sys.executable, "sandbox_probe.py", json.dumps(args)], folder)
        except InstructorError as e:
            return [Check(f"the {km.in_force} sandbox can start", False, str(e))]
        km._hand_over()
        km._lock_now()
        r = subprocess.run(argv, env=km._launch_env, cwd="/", capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        return [Check(f"the {km.in_force} sandbox can start", False, r.stderr.strip()[-800:])]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    out = [Check("the kernel runs as an unprivileged uid", got["uid"] != 0, f"uid {got['uid']}"),
           Check("it cannot read the checkout's tests/, benchmarks/, docs/, tooling or the grader's /tmp",
                 not got["reads"], ", ".join(got["reads"]) or f"{len(args['hidden'])} paths tried"),
           Check("the grader's home shows nothing but the way to the Python", km.in_force == "user" or not
                 home_leaks(got["home"]), ", ".join(home_leaks(got["home"]))),
           Check("/proc/1/environ and its environment hold nothing of the grader's", not (got["secret_pid1"] or
                 got["secret_env"]), "a variable exported in the grader's environment was looked for"),
           Check("it has no network", not got["network"], "")]
    if km.in_force == "user":
        out[2:2] = [Check(f"uid {got['uid']} cannot read the grader's files", True,
                          f"{len(km.protected_paths())} paths tried as that uid")]
    for d, w in got["writable"].items():
        filled = f", a writer stopped at {w['filled'] / mb:.0f} MB" if w["filled"] is not None else ""
        out.append(Check(f"writable: {d} ({w['size'] / mb:.0f} MB{filled})", w["size"] <= 2 * max(
            km.tmp_mb, km.work_mb, km.shm_mb) * mb or km.in_force == "user", "" if km.in_force == "bwrap" else
            "on the host's disk: bounded per file by fsize_mb only"))
    out.append(Check(f"processes: a fork loop stopped at {got['forks']} (nproc {got['nproc']})",
                     got["forks"] is not None and got["forks"] < km.nproc, ""))
    return out
