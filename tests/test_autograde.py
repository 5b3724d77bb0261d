"""ddpm_instructor.autograde: the backstop over a chunk of submissions (bisected on a fake chunk runner, no
nbgrader; the process group killed whole) and the refusal to grade what was not released."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from ddpm_instructor import autograde as ag


class FakeChunks:
    """nbgrader over a chunk, in order: a submission in ``stuck`` hangs until the backstop kills the chunk (the
    ones after it are not reached); a chunk longer than ``max_len`` is too slow as a whole."""

    def __init__(self, stuck=(), max_len=10**6):
        self.stuck, self.max_len, self.graded, self.runs = set(stuck), max_len, {}, []

    def run(self, chunk):
        self.runs.append(list(chunk))
        for k, s in enumerate(chunk):
            if s in self.stuck or k >= self.max_len:
                return ag.BACKSTOP_RC, Path(f"log{len(self.runs)}")
            self.graded[s] = self.graded.get(s, 0) + 1
        return 0, Path(f"log{len(self.runs)}")

    def ok(self, s):
        return s in self.graded


def test_a_chunk_that_hits_the_backstop_is_bisected_until_only_the_offender_fails():
    students = [f"s{i:02d}" for i in range(10)]
    fake = FakeChunks(stuck={"s06"})
    out = ag.bisect_backstop(students, fake.run, fake.ok)
    assert set(out) == set(students)
    assert [s for s in students if not fake.ok(s)] == ["s06"]
    assert out["s06"][0] == ag.BACKSTOP_RC and ["s06"] in fake.runs          # it failed alone
    assert all(fake.ok(s) for s in students if s != "s06")
    assert all(n == 1 for n in fake.graded.values()), "a graded submission was graded again"
    assert len(fake.runs) <= 1 + 2 * 3, fake.runs                          # ~log2 of the 4 it left


def test_a_chunk_too_slow_as_a_whole_is_split_until_every_part_fits():
    students = [f"s{i:02d}" for i in range(9)]
    fake = FakeChunks(max_len=2)
    out = ag.bisect_backstop(students, fake.run, fake.ok)
    assert all(fake.ok(s) for s in students) and set(out) == set(students)
    assert all(len(run) <= 4 for run in fake.runs[1:])


def test_other_failures_are_not_bisected():
    fake = FakeChunks()
    out = ag.bisect_backstop(["a", "b", "c"], lambda c: (1, Path("log")), fake.ok)
    assert {rc for rc, _ in out.values()} == {1}


def test_the_backstop_kills_the_whole_process_group(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    script = f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']); " \
             f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(300)"
    t0 = time.monotonic()
    rc = ag.run_in_group([sys.executable, "-c", script], tmp_path, dict(os.environ), 3, tmp_path / "log.txt")
    assert rc == ag.BACKSTOP_RC and time.monotonic() - t0 < 30
    pid = int(pid_file.read_text())
    for _ in range(50):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except FileNotFoundError:
            break
        if state == "Z":
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"process {pid} started by the killed command is still running")
    assert "backstop" in (tmp_path / "log.txt").read_text()


def test_autograde_does_not_release(tmp_path):
    from ddpm_instructor.coursedir import CourseDir
    from ddpm_instructor.errors import InstructorError
    course = CourseDir(root=tmp_path / "course", quiet=True)
    with pytest.raises(InstructorError, match=r"release 02_forward_closed_form"):
        ag.check_released(course, "02_forward_closed_form")
    assert not (tmp_path / "course" / "release").exists() and not (tmp_path / "course" / "gradebook.db").exists()
