"""ddpm_instructor/exchange_io.py: ``./course instructor`` release, collect and feedback through the class hub's
exchange, with real OS users and the exchange as the hub prepares it (hub/exchange.py), no hub running.

Alice submits (her own folder, as PrivateExchangeSubmit leaves it); Mallory, another student, files a folder under
Alice's name and puts links to Alice's notebook and to a root-only file into her own submission.  collect takes
Alice's notebook only, through collect's own path (a filed submission, a collect record), refuses Mallory's folder and
links, and never takes the time Alice's own server wrote; feedback reaches Alice under the name her Assignment List
looks for, readable by her alone.  Needs root; users and folders are removed.  A few seconds.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import pwd
import shutil
import stat
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hub.exchange import feedback_file_name, prepare_exchange  # noqa: E402
from hub_machine import Users, usable  # noqa: E402

from ddpm_instructor import exchange_io  # noqa: E402
from ddpm_instructor.cli import main  # noqa: E402
from ddpm_instructor.collect import collect  # noqa: E402
from ddpm_instructor.coursedir import CourseDir, parse_ts  # noqa: E402
from ddpm_instructor.errors import InstructorError  # noqa: E402

WHY_NOT = usable()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")
COURSE_ID = "ddpm-course"
A = "ps1"


def student_version() -> nbformat.NotebookNode:
    answer = nbformat.v4.new_code_cell("answer = None")
    answer.metadata["nbgrader"] = {"grade": False, "solution": True, "locked": False, "grade_id": "answer",
                                   "schema_version": 3}
    test = nbformat.v4.new_code_cell("assert answer == 42")
    test.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "grade_id": "test_answer",
                                 "points": 1, "schema_version": 3}
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# ps1"), answer, test])


@pytest.fixture(scope="module")
def klass():
    base = Path(tempfile.mkdtemp(prefix="ddpm-exchange-io-"))
    os.chmod(base, 0o755)
    users = Users(base / "home")
    try:
        group = users.group("instructors")
        names = {r: users.add(r) for r in ("alice", "mallory")}
        layout = prepare_exchange(base / "exchange", COURSE_ID, group)
        course = CourseDir(root=base / "grading", quiet=True)
        (course.release / A).mkdir(parents=True)
        nbformat.write(student_version(), course.release / A / "hello.ipynb")
        yield {"base": base, "layout": layout, "course": course, "names": names}
    finally:
        users.close()
        shutil.rmtree(base, ignore_errors=True)


def submit_as(klass, role: str, files: dict, name_as: str | None = None, secret: str = "ab" * 64) -> Path:
    """A submission folder as PrivateExchangeSubmit leaves it (0750, files 0640, owned by ``role``'s OS user),
    named as ``name_as``'s; ``files``: name -> bytes, or ("link", target)."""
    owner = pwd.getpwnam(klass["names"][role])
    claimed = klass["names"][name_as or role]
    folder = klass["layout"].inbound / f"{claimed}+{A}+2026-12-01 12:00:00.000000 UTC+{os.urandom(6).hex()}"
    folder.mkdir()
    for name, data in {"timestamp.txt": b"2001-01-01 00:00:00.000000 UTC", "submission_secret.txt": secret.encode(),
                       **files}.items():
        if isinstance(data, tuple):
            os.symlink(data[1], folder / name)
            os.lchown(folder / name, owner.pw_uid, -1)
            continue
        (folder / name).write_bytes(data)
        os.chown(folder / name, owner.pw_uid, -1)
        os.chmod(folder / name, 0o640)
    os.chown(folder, owner.pw_uid, -1)
    os.chmod(folder, 0o750)
    return folder


def answered(value: str) -> bytes:
    nb = student_version()
    nb.cells[1].source = f"answer = {value}"
    return nbformat.writes(nb).encode()


def test_release_puts_the_student_version_into_outbound_and_replaces_it_whole(klass):
    course, layout = klass["course"], klass["layout"]
    with pytest.raises(InstructorError, match="not an exchange the hub prepared"):
        exchange_io.configure(course, klass["base"] / "nowhere")
    ex = exchange_io.configure(course, layout.root, COURSE_ID)
    assert exchange_io.configured(course) == ex
    (course.release / A / "old.txt").write_text("from an earlier release")
    os.symlink("/etc/shadow", course.release / A / "link.txt")
    dest = exchange_io.release(course, ex, A)
    assert dest == layout.outbound / A and sorted(p.name for p in dest.iterdir()) == ["hello.ipynb", "old.txt"]
    (course.release / A / "old.txt").unlink()
    (course.release / A / "link.txt").unlink()
    exchange_io.release(course, ex, A)
    assert sorted(p.name for p in dest.iterdir()) == ["hello.ipynb"]          # the earlier release is gone whole
    assert sorted(p.name for p in layout.outbound.iterdir()) == [A]           # no staging or replaced folder left
    assert stat.S_IMODE(dest.stat().st_mode) == 0o2755
    assert stat.S_IMODE((dest / "hello.ipynb").stat().st_mode) == 0o644


def test_collect_takes_the_owners_submission_and_refuses_forged_folders_and_links(klass, capsys):
    course, layout, names = klass["course"], klass["layout"], klass["names"]
    exchange_io.configure(course, layout.root, COURSE_ID)
    alice_nb = answered("42")
    alice = submit_as(klass, "alice", {"hello.ipynb": alice_nb})
    submit_as(klass, "mallory", {"hello.ipynb": answered("41")}, name_as="alice")       # filed under Alice's name
    time.sleep(0.05)
    submit_as(klass, "mallory", {"hello.ipynb": ("link", str(alice / "hello.ipynb")),
                                 "notes.ipynb": ("link", "/etc/shadow")})
    before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)

    code = main(["--course-dir", str(course.root), "collect"])       # no paths: the exchange only
    out = capsys.readouterr().out
    filed = course.submitted / names["alice"] / A / "hello.ipynb"
    assert nbformat.reads(filed.read_text(), as_version=4).cells[1].source == "answer = 42"
    assert not (course.submitted / names["mallory"]).exists()        # nothing of hers was a readable notebook
    assert code == 1                                                 # some files were not matched: says so
    assert f"+ {names['alice']}/{A}" in out
    assert "names a student who does not own it" in out
    assert out.count("a link, not a file") == 2
    # the time is the collector's view of the folder, not the 2001 of the timestamp.txt Alice's server wrote
    when = parse_ts((course.submitted / names["alice"] / A / "timestamp.txt").read_text())
    assert when >= before
    # what was taken from the exchange is kept in the inbox, like any export
    assert list(course.inbox.glob(f"*/exchange-{COURSE_ID}/{names['alice']}/{A}/hello.ipynb"))
    assert exchange_io.taken(course, A, names["alice"]).secret == "ab" * 64


def test_feedback_returns_through_the_exchange_readable_by_its_student_only(klass):
    course, layout, names = klass["course"], klass["layout"], klass["names"]
    ex = exchange_io.configure(course, layout.root, COURSE_ID)
    if exchange_io.taken(course, A, names["alice"]) is None:
        pytest.fail("runs after the collect test (same module)")
    page = course.feedback / names["alice"] / A / "hello.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text("<html><body>1 / 1</body></html>")
    back = {r.student: r for r in exchange_io.return_feedback(course, ex, A, [names["alice"], names["mallory"],
                                                                            "canvas-1001"])}
    assert back[names["alice"]].pages == 1 and back[names["alice"]].why == ""
    assert back[names["mallory"]].why == "no feedback page"               # she submitted links only
    assert "not submitted through the exchange" in back["canvas-1001"].why    # collected from an LMS export
    placed = layout.feedback / feedback_file_name("ab" * 64, "hello")
    assert placed.read_text() == page.read_text()
    st = placed.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (pwd.getpwnam(names["alice"]).pw_uid, 0o640)
    assert sorted(p.name for p in layout.feedback.iterdir()) == [placed.name]     # no temporary file left
    json.dumps(back[names["alice"]].__dict__)                                         # a plain record
