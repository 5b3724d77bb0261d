"""The kernel's mount list (no kernel started): an allow-list over an empty root, every writable mount sized."""
import os
import sys

from ddpm_instructor import sandbox
from traitlets.config import Config


def _argv(tmp_path, monkeypatch, **traits):
    venv, course = tmp_path / "venv", tmp_path / "course"
    bundle, inputs, work = course / "bundles" / "02_x", course / "graded_inputs" / "02_x", course / "autograded" / "s" / "02_x"
    for d in (venv, bundle, inputs, work):
        d.mkdir(parents=True)
    monkeypatch.setattr(sandbox, "python_roots", lambda: [str(venv)])
    monkeypatch.setattr(sandbox, "masked_paths", lambda visible: [])
    c = Config()
    c.SandboxKernelManager.mode = "bwrap"
    for k, v in dict(bundle_dir=str(bundle), inputs_dir=str(inputs), **traits).items():
        setattr(c.SandboxKernelManager, k, v)
    km = sandbox.SandboxKernelManager(config=c)
    km._mode = "bwrap"                      # no bubblewrap needed to build the command
    try:
        argv = km.command([sys.executable, "-c", "pass"], str(work))
    finally:
        km._release()
    return argv, dict(venv=str(venv), course=str(course), bundle=str(bundle), inputs=str(inputs), work=str(work),
                      stage=os.path.realpath(os.path.join(km._private, "inputs")))


def test_allow_list_root_holds_only_what_the_kernel_needs(tmp_path, monkeypatch):
    argv, p = _argv(tmp_path, monkeypatch)
    sep = argv.index("--")
    opts = argv[:sep]
    pairs = list(zip(opts, opts[1:], opts[2:]))
    ro = {(src, dst) for kind, src, dst in pairs if kind == "--ro-bind"}
    assert ("/", "/") not in ro and not any(src == "/" for src, _ in ro)
    assert (p["venv"], p["venv"]) in ro                                   # the Python, at its own path
    assert (os.path.realpath(p["bundle"]), sandbox.BUNDLE_IN) in ro
    # the inputs folder is the kernel's own, in its private folder, filled one graded cell at a time; never the
    # course's graded_inputs/ (which holds every test's inputs)
    assert [src for src, dst in ro if dst == sandbox.INPUTS_IN] == [p["stage"]]
    # nothing else of the course directory: only the bundle and the student's folder (copied inside)
    from_course = {src for src, _ in ro if src.startswith(p["course"])}
    assert from_course == {os.path.realpath(p["bundle"]), p["work"]}
    assert (p["work"], sandbox.SRC_IN + "/f") in ro
    rw = [(a, b) for a, b, c in pairs if a == "--bind"]
    assert len(rw) == 1 and rw[0][1].endswith("/k"), rw            # the sockets' folder (handed back to root once made)
    env = {opts[i + 1]: opts[i + 2] for i, a in enumerate(opts) if a == "--setenv"}
    assert opts.index("--clearenv") < min(i for i, a in enumerate(opts) if a == "--setenv")
    assert env["PYTHONPATH"] == sandbox.BUNDLE_IN and env["DDPM_GRADER_INPUTS"] == sandbox.INPUTS_IN


def test_every_writable_mount_has_a_size_and_tmp_comes_before_the_venv(tmp_path, monkeypatch):
    argv, p = _argv(tmp_path, monkeypatch, tmp_mb=7, work_mb=9, shm_mb=3)
    opts = argv[:argv.index("--")]
    tmpfs = [i for i, a in enumerate(opts) if a == "--tmpfs"]
    assert [opts[i + 1] for i in tmpfs] == ["/tmp", "/dev/shm", f"{sandbox.HOME_IN}/02_x"]
    sizes = [int(opts[i - 1]) // 2 ** 20 for i in tmpfs]
    assert [opts[i - 2] for i in tmpfs] == ["--size"] * 3 and sizes == [7, 3, 9]
    # a venv (or the course) under /tmp is mounted after the private /tmp, so that /tmp does not hide it
    assert opts.index("/tmp") < opts.index(p["venv"])


def test_auto_falls_back_to_the_unprivileged_uid_only_as_root_and_off_says_so():
    missing = "/nonexistent/bwrap"
    assert "could not be started" in sandbox.bwrap_available(missing)
    if os.geteuid() == 0:
        assert sandbox.resolve_mode("auto", bwrap=missing) == "user"
    else:
        import pytest
        from ddpm_instructor.errors import InstructorError
        with pytest.raises(InstructorError, match="needs the grader to run as root"):
            sandbox.resolve_mode("auto", bwrap=missing)
    km = sandbox.SandboxKernelManager(config=Config({"SandboxKernelManager": {"mode": "off"}}))
    try:
        assert km.note == sandbox.NOTES["off"] and "grader's own user" in km.note
        km.bundle_dir = "/b"
        assert km.command(["python"], "/tmp") == ["python"] and km._launch_env["PYTHONPATH"].startswith("/b")
    finally:
        km._release()
