"""The kernel's sandbox, tried from inside real kernels: what a hostile notebook can read, write and start.

One bubblewrap kernel (module fixture, small limits) answers most checks; one kernel in the fallback mode (an
unprivileged uid, no namespaces) and one Gradescope run (``grade_one``, notebook 2, in the fallback mode) the rest.
Expected values come from the limits set here, never from the sandbox's own report.

Runtime: about 1-2 minutes on 2 busy CPU cores (two kernels and one graded submission).
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from contextlib import contextmanager, nullcontext
from pathlib import Path

import nbformat
import pytest
from jupyter_client import BlockingKernelClient
from jupyter_core.utils import run_sync
from traitlets.config import Config

from ddpm_instructor import sandbox as sb
from ddpm_instructor.errors import InstructorError

REPO = Path(__file__).resolve().parent.parent
SECRET = "DDPM_TEST_SANDBOX_SECRET"
MB = 1024 * 1024
LIMITS = dict(tmp_mb=16, shm_mb=8, work_mb=24, fsize_mb=64, nproc=48)
BWRAP_PROBLEM = sb.bwrap_available()
ROOT = os.geteuid() == 0


class Kernel:
    """A kernel started through ``SandboxKernelManager``, as nbgrader starts it; ``run`` returns (stdout, error)."""

    def __init__(self, folder: Path, **traits):
        c = Config()
        for k, v in traits.items():
            setattr(c.SandboxKernelManager, k, v)
        self.km = sb.SandboxKernelManager(config=c)
        run_sync(self.km.start_kernel)(cwd=str(folder))
        self.kc = BlockingKernelClient()
        self.kc.load_connection_info(self.km.get_connection_info())
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)

    def run(self, code: str, timeout: float = 120) -> tuple[str, str | None]:
        out, err = [], []

        def hook(msg):
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                err.append(f"{msg['content']['ename']}: {msg['content']['evalue']}")
        self.kc.execute_interactive(code, output_hook=hook, timeout=timeout)
        return "".join(out), (err[0] if err else None)

    def json(self, code: str):
        out, err = self.run(code)
        assert err is None, err
        return json.loads(out.strip().splitlines()[-1])

    def close(self):
        self.kc.stop_channels()
        run_sync(self.km.shutdown_kernel)(now=True)
        run_sync(self.km.cleanup_resources)()


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    """The student's folder, a fake bundle and inputs, and what must stay invisible: a second copy of the course
    outside /tmp, a marker in the grader's /tmp, a grading directory."""
    tmp = tmp_path_factory.mktemp("sandbox")
    student = tmp / "autograded" / "s1" / "02_x"
    student.mkdir(parents=True)
    (student / "02_x.ipynb").write_text("{}")
    bundle = tmp / "bundle"
    (bundle / "tutorial_utils").mkdir(parents=True)
    (bundle / "tutorial_utils" / "__init__.py").write_text("WHERE = 'bundle'\n")
    (bundle / "solutions").mkdir()
    (bundle / "solutions" / "__init__.py").write_text("")
    inputs = tmp / "inputs"
    inputs.mkdir()
    (inputs / "test_x.pt").write_bytes(b"inputs")
    copies = []
    for base in ("/opt", "/var/tmp"):
        if os.access(base, os.W_OK):
            copy = Path(tempfile.mkdtemp(prefix="ddpm-copy-", dir=base))
            shutil.copytree(REPO / "solutions", copy / "solutions", ignore=shutil.ignore_patterns("__pycache__"))
            shutil.copytree(REPO / "tests", copy / "tests", ignore=shutil.ignore_patterns("__pycache__"))
            copies.append(copy)
    marker = Path(tempfile.mkdtemp(prefix="ddpm-host-tmp-", dir="/tmp"))
    yield dict(tmp=tmp, student=student, bundle=bundle, inputs=inputs, copies=copies, marker=marker)
    for p in copies + [marker]:
        shutil.rmtree(p, ignore_errors=True)


@pytest.fixture(scope="module")
def kernel(places):
    if BWRAP_PROBLEM:
        pytest.skip(f"no bubblewrap here: {BWRAP_PROBLEM}")
    os.environ[SECRET] = "hunter2"                  # exported in the grader's environment before the kernel starts
    try:
        k = Kernel(places["student"], mode="bwrap", bundle_dir=str(places["bundle"]),
                   inputs_dir=str(places["inputs"]), **LIMITS)
    finally:
        del os.environ[SECRET]
    yield k
    private = k.km._private
    k.close()
    assert not os.path.exists(private), "the kernel's private folder is left behind"


def _probe(k: Kernel, **args) -> dict:
    a = sb.probe_args(SECRET, **args)
    probe = Path(sb.PROBE_FILE).read_text()
    return k.json(f"exec({probe!r}, g := {{'__name__': 'probe'}}); import json; print(json.dumps(g['probe']({a!r})))")


# ------------------------------------------------------------------ reading
def test_exec_of_code_from_the_checkouts_tests_fails(kernel):
    for f in ("tests/test_diffusion_math.py", "tests/test_instructor.py", "benchmarks/RESULTS.md"):
        assert (REPO / f).is_file(), f                       # there on the host: the attack would work unconfined
        out, err = kernel.run(f"exec(open({str(REPO / f)!r}).read())")
        assert err and err.startswith("FileNotFoundError"), (f, out, err)
    listing = kernel.json(f"import os, json; print(json.dumps(os.listdir({str(REPO)!r})))")
    assert set(listing) <= {".venv"}, listing                # only the way to the venv, when it lives in the checkout


def test_no_other_copy_of_the_course_no_host_tmp_no_home(kernel, places):
    hidden = [str(c / "solutions" / "diffusion.py") for c in places["copies"]] + [str(places["marker"]),
                                                                                  str(places["tmp"])]
    assert places["copies"] and all(os.path.exists(p) for p in hidden)
    got = _probe(kernel, hidden=hidden)
    assert got["sees"] == [] and got["reads"] == [], got
    assert sb.home_leaks(got["home"]) == [], got["home"]
    tmp = kernel.json("import os, json; print(json.dumps(sorted(os.listdir('/tmp'))))")
    assert not any(n.startswith(("ddpm-host-tmp-", "pytest-")) for n in tmp), tmp


def test_imports_come_from_the_bundle_and_no_editable_finder_is_left(kernel, places):
    code = ("import json, os, sys, tutorial_utils, importlib.util as u\n"
            "D = os.environ['DDPM_GRADER_INPUTS']\n"
            "print(json.dumps([tutorial_utils.WHERE, tutorial_utils.__file__, "
            "[m for m in sys.modules if 'editable' in m], u.find_spec('ddpm_instructor') is None, D, "
            "{n: open(os.path.join(D, n), 'rb').read().decode() for n in os.listdir(D)}]))")
    got = kernel.json(code)
    assert got[0] == "bundle" and got[1] == f"{sb.BUNDLE_IN}/tutorial_utils/__init__.py", got
    assert got[2] == [] and got[3] is True, got       # the venv's finder that maps packages into a checkout is masked
    assert got[4] == sb.INPUTS_IN and got[5] == {}, got          # the inputs folder: empty outside a graded cell
    with kernel.km.graded_inputs("test_x"):
        assert kernel.json(code)[5] == {"test_x.pt": "inputs"}
    assert kernel.json(code)[5] == {}


# ------------------------------------------------------------------ writing, processes, environment
def test_a_writer_stops_at_each_mounts_size_and_the_host_is_untouched(kernel, places):
    before = sorted(p.name for p in places["student"].iterdir())
    got = _probe(kernel, fill=64 * MB)
    want = {"/tmp": LIMITS["tmp_mb"], "/dev/shm": LIMITS["shm_mb"], f"{sb.HOME_IN}/02_x": LIMITS["work_mb"]}
    assert set(got["writable"]) == set(want), got["writable"]      # nothing else can be written, anywhere
    for d, size_mb in want.items():
        w = got["writable"][d]
        assert w["size"] == size_mb * MB, (d, w)
        assert size_mb * MB - 2 * MB <= w["filled"] <= size_mb * MB, (d, w)   # stopped at the size, not before
    assert sorted(p.name for p in places["student"].iterdir()) == before   # the real folder never saw a write
    host = sum(f.stat().st_size for f in Path(kernel.km._private).rglob("*") if f.is_file())
    assert host < MB, host                                                 # nor did the only host bind (sockets)
    out, err = kernel.run(f"open({kernel.km._socks + '/x'!r}, 'w')")
    assert err and err.startswith("PermissionError"), err


def test_the_grader_environment_is_not_inside(kernel):
    got = kernel.json("import os, json\n"
                      "try:\n    first = open('/proc/1/environ', 'rb').read().decode()\nexcept OSError as e:\n"
                      "    first = type(e).__name__\n"
                      "print(json.dumps([first, dict(os.environ), open('/proc/1/cmdline', 'rb').read().decode()]))")
    first, env, cmdline = got
    assert "hunter2" not in first and SECRET not in first, first
    assert SECRET not in env and "hunter2" not in json.dumps(env), env
    assert "hunter2" not in cmdline and SECRET not in cmdline
    passed = set(sb.SandboxKernelManager.class_traits()["kernel_env"].make_dynamic_default())
    own = {"DDPM_DOWNLOAD", "PYTHONDONTWRITEBYTECODE", "PYTHONNOUSERSITE", "MPLBACKEND", "LANG"}   # set to constants
    leaked = sorted(k for k, v in env.items() if os.environ.get(k) == v and k not in passed | own)
    assert leaked == [], leaked                # nothing of the grader's environment but the notebook settings
    assert env["HOME"] == "/tmp" and env["PYTHONPATH"] == sb.BUNDLE_IN


def test_a_fork_bomb_stops_at_the_process_cap(kernel):
    got = _probe(kernel, forks=1000)
    assert got["uid"] >= sb.UID_BASE, got["uid"]           # not root: RLIMIT_NPROC is enforced
    assert got["nproc"] == LIMITS["nproc"]
    assert 0 < got["forks"] < LIMITS["nproc"], got["forks"]   # threads of the kernel count too
    out, err = kernel.run("import subprocess; r = subprocess.run(['unshare', '-Ur', 'true'], capture_output=True, "
                          "text=True); print(r.returncode, r.stderr)")
    assert err is None and not out.startswith("0 "), out   # no user namespace of its own (an unsized tmpfs)


# ------------------------------------------------------------------ the fallback: an unprivileged uid
def _acl(path: str, perm: int) -> None:
    """A POSIX ACL entry giving the sandbox uids' group ``perm`` on ``path`` (what ``setfacl -m g:...`` writes)."""
    m = os.stat(path).st_mode
    u, g, o, none = (m >> 6) & 7, (m >> 3) & 7, m & 7, 0xFFFFFFFF
    entries = [(1, u, none), (4, g, none), (8, perm, sb.UID_BASE), (0x10, g | perm, none), (0x20, o, none)]
    data = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)
    os.setxattr(path, "system.posix_acl_access", data, follow_symlinks=False)


@contextmanager
def sandbox_acls(perms: dict):
    """POSIX ACL entries for the sandbox uids' group (path -> permission bits) while the block runs, then removed."""
    done = []
    try:
        for path, perm in perms.items():
            _acl(path, perm)
            done.append(path)
        yield
    finally:
        for p in done:
            os.removexattr(p, "system.posix_acl_access")
        sb.SandboxKernelManager._checked.clear()


def _walk_to(path) -> dict:
    """Traverse permission on each folder above ``path`` that other users cannot traverse."""
    return {str(p): 1 for p in list(Path(path).parents)[:-1] if not os.stat(p).st_mode & 0o001}


def grader_files_closed():
    """What an instructor does for the fallback (chmod o-rwx the checkout, keep the venv readable), for the sandbox
    uids only: the checkout's entries unreadable, the way to the Python traversable."""
    roots = sb.python_roots()
    perms = {}
    for r in roots:
        perms.update(_walk_to(r))
    for entry in [REPO] + sorted(REPO.iterdir()):
        if entry == REPO or not any(sb._under(r, str(entry)) for r in roots):
            perms[str(entry)] = 1 if entry == REPO else 0     # the checkout: traversable only; its entries: nothing
    return sandbox_acls(perms)


def grader_files_open():
    """The premise of the refusal below wherever the clone lives (``mktemp -d`` makes a 0700 folder): the sandbox
    uids' group may walk to the checkout and list it and tests/, as other users can in a checkout left open."""
    return sandbox_acls({**_walk_to(REPO), str(REPO): 5, str(REPO / "tests"): 5})


needs_root = pytest.mark.skipif(not ROOT, reason="the fallback switches to an unprivileged uid: the grader must be root")


@needs_root
def test_fallback_refuses_while_the_checkout_is_readable(places):
    sb.SandboxKernelManager._checked.clear()
    km = sb.SandboxKernelManager(config=Config({"SandboxKernelManager": {"mode": "user"}}))
    try:
        with grader_files_open(), \
                pytest.raises(InstructorError, match=r"could read the grader's files: .*tests.*chmod -R o-rwx"):
            km.command(["true"], str(places["student"]))
    finally:
        km._release()


@needs_root
def test_fallback_kernel_is_unprivileged_and_cannot_read_tests(places):
    with grader_files_closed():
        k = Kernel(places["student"], mode="user", bundle_dir=str(places["bundle"]), **LIMITS)
        try:
            assert k.km.in_force == "user" and k.km.note == sb.NOTES["user"]
            got = k.json(f"import os, json\nr = [os.getuid(), os.getcwd()]\n"
                         f"for p in [{str(REPO / 'tests' / 'test_instructor.py')!r}, '/proc/1/environ']:\n"
                         "    try:\n        open(p, 'rb').read(1); r.append('READ ' + p)\n"
                         "    except OSError as e:\n        r.append(type(e).__name__)\n"
                         "import tutorial_utils; r.append(tutorial_utils.WHERE)\nprint(json.dumps(r))")
            uid, cwd, tests, pid1, where = got
            assert uid > sb.UID_BASE and tests == "PermissionError" and pid1 == "PermissionError", got
            assert cwd.startswith(k.km._private) and where == "bundle", got
            assert oct(os.stat(k.km._private).st_mode & 0o777) == "0o700" and os.stat(k.km._private).st_uid == uid
        finally:
            k.close()


# ------------------------------------------------------------------ through Gradescope's path
ATTACK = """
import glob, os
for _root in {roots!r} + sorted(glob.glob('/opt/ddpm-copy-*')) + sorted(glob.glob('/var/tmp/ddpm-copy-*')):
    try:
        _src = open(os.path.join(_root, 'solutions', 'diffusion.py')).read().replace('from .helpers', 'from solutions.helpers')
        exec(compile(_src, 'answers', 'exec'), globals())
        print('FOUND', _root)
        break
    except OSError:
        pass
"""


@needs_root
def test_gradescope_disk_reading_submission_gets_nothing_in_the_fallback(places, tmp_path):
    """Notebook 2 with every blank None and a cell after each answer that execs the reference from any copy of the
    course on disk: 0 of 10 (unconfined it would take the reference and get 10), with the fallback's note."""
    import sys
    sys.path.insert(0, str(REPO / "tests"))
    from test_instructor import A, CLASS, build_submission
    from ddpm_instructor.gradescope import grade_one
    attack = ATTACK.format(roots=[str(REPO)])
    scope: dict = {"__name__": "__main__"}
    exec(attack, scope)                                  # unconfined, the attack finds the answers
    assert callable(scope.get("q_sample")) and callable(scope.get("linear_beta_schedule"))
    release_nb = nbformat.read(str(REPO / "notebooks" / "release" / A / f"{A}.ipynb"), as_version=4)
    spec = (set(), {"blank": True, "add_after": ("linear_beta_schedule", attack), "add_after2": ("q_sample", attack)})
    nb = build_submission(release_nb, {}, "thief", spec)
    (tmp_path / "hw.ipynb").write_text(nbformat.writes(nb))
    with grader_files_closed():
        res = grade_one(tmp_path / "hw.ipynb", tmp_path / "results.json", A, sandbox="user", cell_timeout=60)
    assert [t["score"] for t in res["tests"]] == [0] * len(res["tests"]) and res["score"] == 0, res
    assert sum(t["max_score"] for t in res["tests"]) == 10
    assert sb.NOTES["user"] in res["output"], res["output"]


# ------------------------------------------------------------------ the graded tests' inputs: only during their cell
SNOOP = """
import json, os, threading, time
D = os.environ['DDPM_GRADER_INPUTS']
first = sorted(os.listdir(D))
seen = []
def _watch():
    while True:
        try:
            now = sorted(os.listdir(D))
        except OSError as e:
            now = [type(e).__name__]
        if now and (not seen or seen[-1] != now):
            seen.append(now)
        time.sleep(0.001)
threading.Thread(target=_watch, daemon=True).start()
time.sleep(0.3)
"""


def _graded(source: str, gid: str):
    from nbformat.v4 import new_code_cell
    return new_code_cell(source, metadata={"nbgrader": {"grade": True, "solution": False, "grade_id": gid,
                                                        "points": 1}})


def _snooping_notebook():
    """A first cell that lists the inputs folder and starts a thread watching it; each graded cell shows what the
    folder holds while it runs; the last graded answer carries what the first cell and the thread saw."""
    from nbformat.v4 import new_code_cell, new_notebook
    return new_notebook(cells=[
        new_code_cell(SNOOP),
        _graded("time.sleep(0.3)\nprint(json.dumps([sorted(os.listdir(D)), open(D + '/test_a.pt').read()]))", "test_a"),
        new_code_cell("print(json.dumps(sorted(os.listdir(D))))"),
        _graded("time.sleep(0.3)\nprint(json.dumps([first, sorted(os.listdir(D)), seen]))", "test_b"),
    ])


@pytest.mark.parametrize("mode", ["off", "bwrap", "user"])
def test_each_graded_cell_sees_only_its_own_inputs_and_only_while_it_runs(places, tmp_path, mode):
    """The grader holds three tests' inputs; the kernel's folder is empty before, between and after the graded
    cells, holds test_a's file during test_a only and test_b's during test_b only; test_c's never shows."""
    from ddpm_instructor.execute import GuardedExecute
    if mode == "bwrap" and BWRAP_PROBLEM:
        pytest.skip(f"no bubblewrap here: {BWRAP_PROBLEM}")
    if mode == "user" and not ROOT:
        pytest.skip("the fallback switches to an unprivileged uid: the grader must be root")
    inputs = tmp_path / "graded_inputs"
    inputs.mkdir()
    for gid in ("test_a", "test_b", "test_c"):
        (inputs / f"{gid}.pt").write_text(gid.upper())
    nb = _snooping_notebook()
    c = Config({"SandboxKernelManager": {"mode": mode, "inputs_dir": str(inputs), **LIMITS},
                "GuardedExecute": {"timeout": 60, "notebook_timeout": 300}})
    with (grader_files_closed() if mode == "user" else nullcontext()):
        GuardedExecute(config=c).preprocess(nb, {"metadata": {"path": str(places["student"])}})
    shown = [[o.get("text", "") + o.get("evalue", "") for o in cell.outputs] for cell in nb.cells]
    a, between, b = (json.loads(s[-1]) for s in shown[1:])
    assert a == [["test_a.pt"], "TEST_A"], shown
    assert between == [], shown
    first, during_b, watched = b
    assert first == [] and during_b == ["test_b.pt"], shown
    assert watched == [["test_a.pt"], ["test_b.pt"]], shown           # the thread: at most the running cell's file
    assert sorted(p.name for p in inputs.iterdir()) == ["test_a.pt", "test_b.pt", "test_c.pt"]   # the grader's kept
