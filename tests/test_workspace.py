"""The students' workspace/: `./course lab` copies newly released notebooks into it and never overwrites a file.

`./course workspace` is the copy step `./course lab` runs before starting JupyterLab.  These tests run it on
temporary copies (DDPM_WORKSPACE points at a temp folder), never on the real workspace/; no Jupyter starts.
"""
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "notebooks" / "release"


def _sync(course_dir: Path, workspace: Path) -> str:
    out = subprocess.run([str(course_dir / "course"), "workspace"], env=dict(os.environ, DDPM_WORKSPACE=str(workspace)),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1 and str(workspace) in lines[0], out.stdout   # one line saying what was copied/kept
    return lines[0]


def _notebooks(folder: Path):
    return sorted(p.relative_to(folder).as_posix() for p in folder.glob("*/*.ipynb"))


def test_workspace_copies_new_notebooks_and_never_overwrites(tmp_path):
    # a temp copy of the course: its entry point and its released notebooks
    course = tmp_path / "course_copy"
    (course / "notebooks").mkdir(parents=True)
    shutil.copy2(ROOT / "course", course / "course")
    shutil.copytree(RELEASE, course / "notebooks" / "release", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    release = course / "notebooks" / "release"
    ws = tmp_path / "student_ws"
    expected = _notebooks(release)
    assert len(expected) >= 6 and expected[0] == "01_forward_1d/01_forward_diffusion_1d.ipynb", expected

    line = _sync(course, ws)
    assert _notebooks(ws) == expected
    assert "kept 0" in line and all(nb in line for nb in expected), line
    for nb in expected:
        assert (ws / nb).read_bytes() == (release / nb).read_bytes()

    # the student edits a notebook; the instructor changes the same one (`./course release`, `git pull`)
    edited = "02_forward_closed_form/02_forward_closed_form.ipynb"
    student_bytes = (ws / edited).read_bytes().replace(b"return None", b"return torch.linspace(beta_start, beta_end, timesteps)")
    assert student_bytes != (release / edited).read_bytes()
    (ws / edited).write_bytes(student_bytes)
    (release / edited).write_bytes((release / edited).read_bytes().replace(b"linear_beta_schedule", b"linear_schedule_v2"))
    # ... and releases a new assignment
    new = "07_new_assignment/07_new.ipynb"
    (release / new).parent.mkdir()
    shutil.copy2(release / expected[0], release / new)

    line = _sync(course, ws)
    assert (ws / edited).read_bytes() == student_bytes          # the student's edit survives byte for byte
    assert (ws / new).read_bytes() == (release / new).read_bytes()   # the new notebook appears
    assert f"kept {len(expected)}" in line and new in line, line
    assert _notebooks(ws) == sorted(expected + [new])

    # a student who deleted a notebook gets it back fresh; nothing else changes
    (ws / expected[0]).unlink()
    before = {nb: (ws / nb).read_bytes() for nb in _notebooks(ws)}
    _sync(course, ws)
    assert (ws / expected[0]).read_bytes() == (release / expected[0]).read_bytes()
    assert all((ws / nb).read_bytes() == b for nb, b in before.items())


def _git(cwd, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                   capture_output=True, timeout=60)


def test_git_pull_leaves_the_workspace_alone(tmp_path):
    origin, student = tmp_path / "origin", tmp_path / "student"
    _git(tmp_path, "clone", "-q", str(ROOT), str(origin))
    _git(tmp_path, "clone", "-q", str(origin), str(student))
    assert (student / "course").exists()
    # the default workspace of this clone (DDPM_WORKSPACE unset: <clone>/workspace)
    env = {k: v for k, v in os.environ.items() if k != "DDPM_WORKSPACE"}
    out = subprocess.run([str(student / "course"), "workspace"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    ws = student / "workspace"
    nb = "02_forward_closed_form/02_forward_closed_form.ipynb"
    student_bytes = (ws / nb).read_bytes() + b"\n"
    (ws / nb).write_bytes(student_bytes)
    status = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=student, capture_output=True,
                            text=True, check=True).stdout
    assert "!! workspace/" in status.splitlines(), status    # git ignores the workspace

    released = origin / "notebooks" / "release" / nb
    released.write_bytes(released.read_bytes().replace(b"return None", b"return None  # changed upstream"))
    _git(origin, "commit", "-qam", "release: change notebook 2")
    _git(student, "pull", "-q", "--ff-only")
    assert (student / "notebooks" / "release" / nb).read_bytes() == released.read_bytes()   # the pull arrived
    assert (ws / nb).read_bytes() == student_bytes                                          # the workspace did not change
    out = subprocess.run([str(student / "course"), "workspace"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and (ws / nb).read_bytes() == student_bytes
