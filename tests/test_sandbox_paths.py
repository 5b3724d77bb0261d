"""The sandbox's mount list when the course itself lives under /tmp (CI clones often do)."""
from ddpm_instructor import sandbox


def test_course_under_tmp_stays_readable_and_grading_dir_stays_hidden(tmp_path, monkeypatch):
    venv, course = tmp_path / "venv", tmp_path / "course"
    grading, work = course / "grading", tmp_path / "work"
    for d in (venv, grading, work):
        d.mkdir(parents=True)
    monkeypatch.setattr(sandbox, "required_paths", lambda: [str(venv), str(course)])
    cmd = sandbox.sandbox_command(["python"], workdir=str(work), scratch=str(work), private=str(work),
                                  hide_inside=[str(grading)])
    pairs = list(zip(cmd, cmd[1:]))
    tmp_mount = pairs.index(("--tmpfs", "/tmp"))
    course_mount = pairs.index(("--ro-bind", str(course)))
    grading_hidden = pairs.index(("--tmpfs", str(grading)))
    assert pairs.index(("--ro-bind", str(venv))) > tmp_mount
    assert tmp_mount < course_mount < grading_hidden, "the grading dir must be hidden after the course is mounted"
