"""Gradescope's autograder (``ddpm_instructor.gradescope``), run the way Gradescope runs it.

The zip ``export_autograder`` writes is unpacked into a folder laid out as Gradescope lays out ``/autograder`` (its
"autograder specifications"): a root-owned 0755 folder reachable by every user, the zip in ``source/`` (0755 folders,
files with the modes the zip records, as ``unzip`` restores them), ``run_autograder`` copied to the root,
the student's files as uploaded in ``submission/``, an empty ``results/``; ``run_autograder`` is executed as root with
the root as its working directory and Gradescope's small environment.  ``setup.sh`` cannot run here (apt, pip and
MNIST's download need the internet): what it leaves behind that grading uses is a Python with the requirements
(``AUTOGRADER_PYTHON``: this venv's) and MNIST in ``data/`` (a link to this machine's copy).

The reference notebook (the filled source) must get full marks in both sandbox modes: bubblewrap, and the
unprivileged uid that ``auto`` falls back to where bubblewrap cannot create namespaces (Docker's default seccomp
profile, as in Gradescope's containers: reproduced by a ``bwrap`` on PATH that fails the way it fails there).
A submission that is a link to the course's own source notebook, or any other file that is not a regular file
of its own, is refused before anything reads it.

Runtime: two gradings of notebook 2 (70-100 s each on 2 cores shared with other work); the rest takes seconds.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pytest

from ddpm_instructor import gradescope as gs
from ddpm_instructor import sandbox as sb
from ddpm_instructor.coursedir import CourseDir

REPO = Path(__file__).resolve().parent.parent
A = "02_forward_closed_form"
SOURCE_NB = REPO / "notebooks" / "source" / A / f"{A}.ipynb"
# Gradescope's base image (Ubuntu) runs run_autograder with a root login's environment: nothing of ours in it
GRADESCOPE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
                  "LANG": "C.UTF-8"}
# bubblewrap in a Docker container under the default seccomp profile: installed, but it cannot make namespaces
NO_NAMESPACES = "#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n"

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="Gradescope runs run_autograder as root"),
              pytest.mark.skipif(not SOURCE_NB.exists(), reason=f"{SOURCE_NB} not written yet")]


@pytest.fixture(scope="module")
def autograder_zip(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    return gs.export_autograder(CourseDir(root=tmp / "course", quiet=True), A, out=tmp / "autograder.zip")


def _unzip(zpath: Path, dest: Path) -> None:
    """As ``unzip`` unpacks on Gradescope: folders 0755, each file with the mode its zip entry records."""
    with zipfile.ZipFile(zpath) as zf:
        for info in zf.infolist():
            target = dest / info.filename
            for d in reversed([p for p in target.parents if not p.exists()]):
                d.mkdir(mode=0o755)
                os.chmod(d, 0o755)
            if info.is_dir():
                continue
            target.write_bytes(zf.read(info))
            os.chmod(target, (info.external_attr >> 16) & 0o777 or 0o644)


@pytest.fixture
def autograder(autograder_zip):
    """A fresh /autograder-style folder for one submission: (root, submission folder)."""
    root = Path(tempfile.mkdtemp(prefix="autograder-", dir="/tmp"))
    os.chmod(root, 0o755)                                   # /autograder: root's, 0755
    (root / "source").mkdir(mode=0o755)
    _unzip(autograder_zip, root / "source")
    data = os.environ.get("DDPM_DATA_DIR")
    if data:
        (root / "data").symlink_to(Path(data).resolve())       # setup.sh downloads MNIST to /autograder/data
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    os.chmod(root / "run_autograder", 0o755)
    for d in ("submission", "results"):
        (root / d).mkdir(mode=0o755)
    yield root, root / "submission"
    shutil.rmtree(root, ignore_errors=True)


def run_autograder(root: Path, extra_path: str | None = None, timeout: float = 480) -> tuple[dict, str]:
    """Run ``root/run_autograder`` as Gradescope does; (results.json, what it printed)."""
    env = dict(GRADESCOPE_ENV, AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=sys.executable)
    if extra_path:
        env["PATH"] = f"{extra_path}:{env['PATH']}"
    if "OMP_NUM_THREADS" in os.environ:
        env["OMP_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"]       # one thread per process on the test machine
    r = subprocess.run([str(root / "run_autograder"), "--cell-timeout", "120"], cwd=root, env=env,
                       capture_output=True, text=True, timeout=timeout)
    log = f"rc={r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    results = root / "results" / "results.json"
    assert results.is_file(), log
    return json.loads(results.read_text()), log


def full_marks() -> dict:
    """grade id -> points of the graded tests, from the source notebook's nbgrader metadata."""
    import nbformat
    nb = nbformat.read(str(SOURCE_NB), as_version=4)
    return {c.metadata.nbgrader["grade_id"]: float(c.metadata.nbgrader["points"]) for c in nb.cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")}


def assert_full_marks(results: dict, log: str) -> None:
    want = full_marks()
    assert want and sum(want.values()) > 0
    got = {t["name"]: (t["score"], t["max_score"]) for t in results["tests"]}
    assert got == {g: (p, p) for g, p in want.items()}, (results, log)
    assert results["score"] == pytest.approx(sum(want.values())), (results, log)


def assert_course_closed(root: Path) -> None:
    """What run_autograder leaves: the shipped course unreadable to every other user (the kernel's uid)."""
    for p in [root / "source"] + list((root / "source").rglob("*")):
        assert not os.lstat(p).st_mode & 0o077, (p, oct(os.lstat(p).st_mode))


# ------------------------------------------------------------------ the reference notebook, both sandbox modes
def test_reference_gets_full_marks_with_bubblewrap(autograder):
    problem = sb.bwrap_available()
    if problem:
        pytest.skip(f"no bubblewrap here: {problem}")
    root, submission = autograder
    shutil.copyfile(SOURCE_NB, submission / f"{A}.ipynb")
    results, log = run_autograder(root)
    assert_full_marks(results, log)
    assert sb.NOTES["user"] not in results["output"], results["output"]      # bubblewrap it was
    assert_course_closed(root)


def test_reference_gets_full_marks_as_an_unprivileged_uid_where_bubblewrap_cannot_run(autograder, tmp_path):
    sys.path.insert(0, str(REPO / "tests"))
    from test_sandbox import grader_files_closed      # this checkout (the venv's editable install maps to it) closed
    root, submission = autograder
    shutil.copyfile(SOURCE_NB, submission / "my homework.ipynb")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "bwrap").write_text(NO_NAMESPACES)
    os.chmod(fake / "bwrap", 0o755)
    with grader_files_closed():
        results, log = run_autograder(root, extra_path=str(fake))
    assert_full_marks(results, log)
    assert sb.NOTES["user"] in results["output"], results["output"]          # the fallback it was
    assert_course_closed(root)


# ------------------------------------------------------------------ what is not a regular file of the student's own
def test_links_and_special_files_are_refused_before_anything_reads_them(autograder):
    """A symbolic link to the course's own source notebook (the reference answers, readable by root), a hard link
    to it and a fifo (which would block whoever opens it): each refused with its reason, 0 points, no grading."""
    root, submission = autograder
    shipped = root / "source" / "course" / "notebooks" / "source" / A / f"{A}.ipynb"
    assert shipped.is_file()
    (submission / f"{A}.ipynb").symlink_to(shipped)
    os.link(shipped, submission / "copy.ipynb")
    os.mkfifo(submission / "pipe.ipynb")
    (submission / "folder").symlink_to(shipped.parent, target_is_directory=True)
    t0 = time.monotonic()
    results, log = run_autograder(root, timeout=240)
    assert results["score"] == 0 and results["tests"], (results, log)
    assert [t["score"] for t in results["tests"]] == [0] * len(full_marks()), results
    out = results["output"]
    for name, why in ((f"{A}.ipynb", "symbolic link"), ("copy.ipynb", "hard link"), ("pipe.ipynb", "not a regular file"),
                      ("folder", "symbolic link")):
        assert any(name in line and why in line for line in out.splitlines()), (name, why, out)
    assert "could not be graded" in out, out
    assert time.monotonic() - t0 < 120, log                  # refused up front: no release, no kernel


def test_upload_reader_keeps_regular_notebooks_and_names_every_refusal(tmp_path):
    """``copy_upload`` (what grade_one reads the submission with), on each kind of entry, with no grading."""
    up, inbox = tmp_path / "up", tmp_path / "inbox"
    (up / "sub").mkdir(parents=True)
    inbox.mkdir()
    (up / "a.ipynb").write_text("{}")
    (up / "sub" / "b.ipynb").write_text('{"b": 1}')
    (up / "sub" / "a.ipynb").write_text('{"second": 1}')                  # a second a.ipynb: the first one stays
    (up / "notes.txt").write_text("not a notebook")
    (up / "link.ipynb").symlink_to(up / "a.ipynb")
    (up / "dirlink").symlink_to(up / "sub", target_is_directory=True)
    os.mkfifo(up / "fifo.ipynb")
    outside = tmp_path / "outside.ipynb"
    outside.write_text('{"secret": 1}')
    os.link(outside, up / "hard.ipynb")
    (up / "bad\x1b]0;owned\x07.ipynb").symlink_to(outside)
    got = gs.copy_upload(up, inbox)
    assert sorted(got.copied) == ["a.ipynb", "sub/b.ipynb"], got
    assert sorted(p.name for p in inbox.iterdir()) == ["a.ipynb", "b.ipynb"]
    assert (inbox / "b.ipynb").read_text() == '{"b": 1}' and (inbox / "a.ipynb").read_text() == "{}"
    for p in inbox.iterdir():
        assert stat.S_IMODE(os.lstat(p).st_mode) == 0o644 and os.lstat(p).st_nlink == 1
    refused = dict(got.refused)
    assert set(refused) == {"link.ipynb", "dirlink", "fifo.ipynb", "hard.ipynb", "bad\\x1b]0;owned\\x07.ipynb",
                            "sub/a.ipynb"}, refused
    assert "a second notebook named a.ipynb" in refused["sub/a.ipynb"]
    assert "symbolic link" in refused["link.ipynb"] and "symbolic link" in refused["dirlink"]
    assert "not a regular file" in refused["fifo.ipynb"] and "hard link" in refused["hard.ipynb"]
    assert not any("\x1b" in line for line in got.notes()), got.notes()      # names shown escaped
    single = gs.copy_upload(up / "link.ipynb", inbox)                      # grade-one given the link itself
    assert single.copied == [] and "symbolic link" in dict(single.refused)["link.ipynb"]
