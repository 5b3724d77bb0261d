"""The instructor round trip on a simulated class: release, collect (folders and an LMS zip), autograde in the
sandbox, feedback, grades CSV.

One class of simulated submissions of notebook 2 (the cheap one) is built from the real student version and
graded once (module fixture); every test then checks one thing about that run.  Expected grades are computed
from the points table of the released notebook and from which blanks each student got wrong, never copied from
the grader's output.

Runtime: about 5 minutes on 2 CPU cores beside the other xdist worker (about two dozen notebook executions, one
of them stopped by a 20 s cell timeout), and 2 more for the Gradescope runs.

Notebooks 1 and 4-8 are graded in tests/test_instructor_heavy.py (a file of its own, so that the two pytest-xdist
workers grade both classes at once).
"""
from __future__ import annotations

import copy
import csv
import datetime as dt
import json
import os
import shutil
import socket
import sqlite3
import re
import tempfile
import time
import zipfile
from pathlib import Path

import nbformat
import pytest

from ddpm_instructor import autograde as ag
from ddpm_instructor import collect as col
from ddpm_instructor import feedback as fb
from ddpm_instructor import grades as gr
from ddpm_instructor import release as rel
from ddpm_instructor.coursedir import CourseDir as Course
from ddpm_instructor.errors import InstructorError
from ddpm_instructor.sandbox import bwrap_available

REPO = Path(__file__).resolve().parent.parent
A = "02_forward_closed_form"
SOURCE_NB = REPO / "notebooks" / "source" / A / f"{A}.ipynb"
SANDBOX_PROBLEM = bwrap_available()

pytestmark = pytest.mark.skipif(not SOURCE_NB.exists(), reason=f"{SOURCE_NB} not written yet")

# which graded test passes, given the set of blanks a student got wrong.  The hidden test of q_sample's
# return value compares the whole output with solutions.q_sample, so it needs all three q_sample blanks.
TEST_NEEDS = {
    "test_linear_beta_schedule": {"schedule"},
    "test_q_sample_sqrt_alpha_bar": {"sab"},
    "test_q_sample_sqrt_one_minus_alpha_bar": {"somab"},
    "test_q_sample_return": {"sab", "somab", "ret"},
}
SAB = "extract(torch.sqrt(alpha_bars), t, x_start.shape)"
SOMAB = "extract(torch.sqrt(1.0 - alpha_bars), t, x_start.shape)"
RET = "return sqrt_alpha_bar * x_start + sqrt_one_minus_alpha_bar * noise"
SCHED = "return torch.linspace(beta_start, beta_end, timesteps)"

# student -> (blanks wrong, how the submission is made).  "wrong" lists blanks that must lose their points.
CLASS = {
    "s01-correct":        (set(), {}),
    "s02-blank":          ({"schedule", "sab", "somab", "ret"}, {"blank": True}),
    "s03-sched-offbyone": ({"schedule"}, {"edit": {SCHED: "return torch.linspace(beta_start, beta_end, timesteps + 1)[1:]"}}),
    "s04-t-minus-1":      ({"sab"}, {"edit": {SAB: "extract(torch.sqrt(alpha_bars), t - 1, x_start.shape)"}}),
    "s05-no-sqrt":        ({"somab"}, {"edit": {SOMAB: "extract(1.0 - alpha_bars, t, x_start.shape)"}}),
    "s06-beta-for-abar":  ({"somab"}, {"edit": {SOMAB: "extract(torch.sqrt(betas), t, x_start.shape)"}}),
    "s07-return-swapped": ({"ret"}, {"edit": {RET: "return sqrt_alpha_bar * noise + sqrt_one_minus_alpha_bar * x_start"}}),
    "s08-wrong-shape":    ({"sab"}, {"edit": {SAB: "torch.sqrt(alpha_bars)[t]"}}),
    "s09-raises":         ({"sab", "somab", "ret"}, {"edit": {"    if noise is None:": "    raise RuntimeError('not today')\n    if noise is None:"}}),
    "s10-endless-loop":   (set(), {"add_after": ("q_sample", "import time\nwhile True:\n    try:\n        time.sleep(0.2)\n    except KeyboardInterrupt:\n        pass")}),
    "s11-print-flood":    (set(), {"add_after": ("q_sample", "print('x' * 3_000_000)\nfor i in range(100_000):\n    print(i, 'spam' * 20)")}),
    "s12-os-exit":        (set(), {"add_after": ("q_sample", "import os\nos._exit(3)")}),
    "s13-sys-exit":       (set(), {"add_after": ("q_sample", "import sys\nsys.exit(1)"), "add_after2": ("q_sample", "exit()")}),
    "s14-deleted-test":   ({"ret"}, {"edit": {RET: "return None"}, "delete": "test_q_sample_return"}),
    "s15-edited-test":    ({"schedule"}, {"edit": {SCHED: "return 2 * torch.linspace(beta_start, beta_end, timesteps)"},
                                          "tamper": "test_linear_beta_schedule"}),
    "s16-added-cells":    (set(), {"add_after": ("linear_beta_schedule", "# my own notes\nmy_var = 42\nprint(my_var)"),
                                   "add_md": True}),
    "s17-renamed":        (set(), {"rename": "homework 2 FINAL (1).ipynb"}),
    "s18-escape":         (set(), {"escape": True}),
    "s19-resubmitted":    (set(), {"resubmit": True}),
    "s20-bad-metadata":   (set(), {"bad_meta": True}),
    # hostile: with every blank still None, replace the self-checks, the graded-test hooks and torch's comparisons
    "s22-patched-checks": ({"schedule", "sab", "somab", "ret"}, {"blank": True, "add_after": ("linear_beta_schedule", (
        "import tutorial_utils.checks as c, tutorial_utils.probes as p, torch\n"
        "for k in dir(c):\n"
        "    if k.startswith(('check_', 'grade_', 'judge_')):\n"
        "        setattr(c, k, lambda *a, **kw: None)\n"
        "p.submit = lambda *a, **kw: print('\u2713 all good')\n"
        "torch.allclose = lambda *a, **kw: True\ntorch.equal = lambda *a, **kw: True"))}),
    # hostile: builtins and torch functions patched so that None looks like a tensor that matches anything
    "s23-patched-builtins": ({"schedule", "sab", "somab", "ret"}, {"blank": True, "add_after": ("linear_beta_schedule", (
        "import builtins, torch\n"
        "_isinstance = builtins.isinstance\n"
        "builtins.isinstance = lambda o, t: True if o is None else _isinstance(o, t)\n"
        "torch.Tensor.__eq__ = lambda a, b: torch.tensor(True)\n"
        "torch.linspace = lambda *a, **kw: None"))}),
    # hostile: delegating to the answer key (the grading kernel has no reference of this assignment)
    "s24-delegates":      ({"schedule"}, {"edit": {SCHED: "import solutions\n    return solutions.linear_beta_schedule(timesteps, beta_start, beta_end)"}}),
    "s25-no-metadata":    (set(), {"strip_meta": True}),          # same cells and ids, nbgrader metadata gone
    "s26-answer-as-md":   (set(), {"to_markdown": "q_sample"}),   # rule: turned back into code, graded as written
    # rule: a correct answer without the blank's named lines earns the blanks (judged by what the next step used)
    "s27-inline-answer":  (set(), {"edit": {f"    sqrt_alpha_bar = {SAB}\n": "", f"    sqrt_one_minus_alpha_bar = {SOMAB}\n": "",
                                            RET: f"return {SAB} * x_start + {SOMAB} * noise"}}),
}
CORRUPT = "s21-corrupt"   # a broken file copied straight into submitted/: nbgrader cannot read it
if SANDBOX_PROBLEM:   # unconfined, the escape attempt would really overwrite other students' files
    del CLASS["s18-escape"]
LMS_STUDENTS = {"s05-no-sqrt", "s09-raises", "s13-sys-exit", "s17-renamed", "s18-escape"}  # arrive in a Canvas zip


def _reference_sources():
    src = nbformat.read(str(SOURCE_NB), as_version=4)
    out = {}
    for c in src.cells:
        m = c.metadata.get("nbgrader", {})
        if m.get("solution"):
            out[m["grade_id"]] = "\n".join(l for l in c.source.split("\n")
                                           if "### BEGIN SOLUTION" not in l and "### END SOLUTION" not in l)
    return out


def _find(nb, gid):
    for i, c in enumerate(nb.cells):
        if c.metadata.get("nbgrader", {}).get("grade_id") == gid:
            return i
    raise KeyError(gid)


def _escape_code(port, outside_file, other_student_nb, gradebook):
    return f"""
import os, socket, json
report = {{}}
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=3); report["loopback"] = "CONNECTED"
except OSError as e:
    report["loopback"] = "connect failed: " + type(e).__name__
try:
    socket.create_connection(("8.8.8.8", 53), timeout=3); report["internet"] = "CONNECTED"
except OSError as e:
    report["internet"] = "connect failed: " + type(e).__name__
for name, path in [("outside", {str(outside_file)!r}), ("other", {str(other_student_nb)!r}), ("gradebook", {str(gradebook)!r})]:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("pwned")
        report[name] = "wrote (inside the sandbox only?)"
    except OSError as e:
        report[name] = "write failed: " + type(e).__name__
# replace my own notebook by a link to a file outside: nbgrader must not write through it
try:
    os.remove("{A}.ipynb")
except OSError:
    pass
try:
    os.symlink({str(outside_file) + ".link-target"!r}, "{A}.ipynb"); report["symlink"] = "made"
except OSError as e:
    report["symlink"] = "failed: " + type(e).__name__
report["secret"] = os.environ.get("DDPM_TEST_SECRET", "not visible")
report["home"] = sorted(os.listdir(os.path.expanduser("~")))[:5]
print("ESCAPE-REPORT", json.dumps(report))
"""


def build_submission(release_nb, refs, student, spec, escape_args=None):
    nb = copy.deepcopy(release_nb)
    wrong, how = spec
    if not how.get("blank"):
        for gid, code in refs.items():
            for old, new in how.get("edit", {}).items():
                if old in code:
                    code = code.replace(old, new)
            nb.cells[_find(nb, gid)].source = code
        for old in how.get("edit", {}):
            assert any(old in code for code in refs.values()), f"{old!r} is no longer in the reference solution"
    for key in ("add_after", "add_after2"):
        if key in how:
            gid, code = how[key]
            nb.cells.insert(_find(nb, gid) + 1, nbformat.v4.new_code_cell(code))
    if how.get("add_md"):
        nb.cells.insert(1, nbformat.v4.new_markdown_cell("My notes: I found this hard."))
    if how.get("delete"):
        del nb.cells[_find(nb, how["delete"])]
    if how.get("tamper"):
        cell = nb.cells[_find(nb, how["tamper"])]
        cell.source = "pass  # all good"
        cell.metadata["nbgrader"]["points"] = 100
    if how.get("bad_meta"):   # a copied cell whose grading metadata was edited by hand
        cell = nbformat.v4.new_code_cell("print('extra credit, please')")
        cell.metadata["nbgrader"] = {"grade": True, "solution": False, "points": 50, "schema_version": 3}
        nb.cells.insert(_find(nb, "linear_beta_schedule") + 1, cell)
    if how.get("strip_meta"):
        for cell in nb.cells:
            cell.metadata.pop("nbgrader", None)
    if how.get("to_markdown"):
        i = _find(nb, how["to_markdown"])
        old = nb.cells[i]
        md = nbformat.v4.new_markdown_cell(old.source)
        md.metadata, md["id"] = old.metadata, old["id"]
        nb.cells[i] = md
    if how.get("escape"):
        nb.cells.insert(_find(nb, "q_sample") + 1, nbformat.v4.new_code_cell(_escape_code(*escape_args)))
    return nb


def expected_points(points: dict, wrong: set) -> float:
    return sum(p for test, p in points.items() if not (TEST_NEEDS[test] & wrong))


def _write_ts(d: Path, when: dt.datetime):
    (d / "timestamp.txt").write_text(when.strftime("%Y-%m-%d %H:%M:%S.%f") + " UTC")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("instructor")
    # a course directory outside /tmp (like the default grading/), so hiding it from the kernel is really exercised
    base = tempfile.mkdtemp(prefix="ddpm-instructor-test-", dir="/var/tmp" if os.access("/var/tmp", os.W_OK) else None)
    root = Path(base) / "course"
    course = Course(root=root, cell_timeout=20, notebook_timeout=240,
                    sandbox="off" if SANDBOX_PROBLEM else "bwrap", quiet=True)
    timings = {}
    t0 = time.monotonic()
    rel.release(course, [A])
    timings["release"] = time.monotonic() - t0

    release_nb = nbformat.read(str(root / "release" / A / f"{A}.ipynb"), as_version=4)
    refs = _reference_sources()
    points = {gid: pts for _, gid, pts in course.points(A)}

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.setblocking(False)
    outside_file = tmp / "outside" / "escaped.txt"
    other_nb = root / "submitted" / "s01-correct" / A / f"{A}.ipynb"
    escape_args = (listener.getsockname()[1], outside_file, other_nb, root / "gradebook.db")

    folder = tmp / "submitted"                # nbgrader layout
    lms = tmp / "canvas.zip"                  # Canvas-style export
    base_time = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.timezone.utc)
    with zipfile.ZipFile(lms, "w") as zf:
        for k, (student, spec) in enumerate(CLASS.items()):
            nb = build_submission(release_nb, refs, student, spec, escape_args)
            text = nbformat.writes(nb)
            name = spec[1].get("rename", f"{A}.ipynb")
            if student in LMS_STUDENTS:
                # Canvas's own name: the sortable name lowercased, only letters, digits and _ kept
                info = zipfile.ZipInfo(f"{re.sub(r'[^0-9a-z_]', '', student.lower())}_{1000 + k}_{5000 + k}_{name}",
                                       date_time=(2026, 11, 20, 12, k, 0))
                zf.writestr(info, text)
            else:
                d = folder / student / A
                d.mkdir(parents=True)
                (d / name).write_text(text)
                _write_ts(d, base_time + dt.timedelta(minutes=k))
                # a copy of nbgrader's submitted/ keeps its files' dates: a minute before the timestamp, as submit
                # writes them (collect never takes a time earlier than the file's own)
                t_file = (base_time + dt.timedelta(minutes=k - 1)).timestamp()
                os.utime(d / name, (t_file, t_file))
        zf.writestr("README.txt", "exported by canvas")
        zf.writestr("nobody_1_2_unrelated.ipynb", nbformat.writes(nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_code_cell("print('a notebook from another course')")])))

    # s19 first handed in a blank notebook, then (in the folder above) the correct one
    early = tmp / "early"
    d = early / "s19-resubmitted" / A
    d.mkdir(parents=True)
    (d / f"{A}.ipynb").write_text(nbformat.writes(release_nb))
    os.utime(d / f"{A}.ipynb", (base_time.timestamp() - 86400,) * 2)
    _write_ts(d, base_time - dt.timedelta(days=1))

    t0 = time.monotonic()
    first = col.collect(course, [early])
    roster = tmp / "roster.csv"             # a Canvas file names the user id: the roster gives its student id
    roster.write_text("id,lms_id\n" + "".join(f"{s},{1000 + k}\n" for k, s in enumerate(CLASS) if s in LMS_STUDENTS))
    reports = [col.collect(course, [folder]), col.collect(course, [lms], roster=roster)]
    late_old = col.collect(course, [early])   # an older copy arriving after the newer one must not win
    corrupt = root / "submitted" / CORRUPT / A
    corrupt.mkdir(parents=True)
    (corrupt / f"{A}.ipynb").write_text('{"cells": [ this is not json')
    _write_ts(corrupt, base_time)
    timings["collect"] = time.monotonic() - t0

    t0 = time.monotonic()
    os.environ["DDPM_TEST_SECRET"] = "hunter2"          # an instructor's token in the environment
    try:
        results = ag.autograde(course, [A], jobs=2)
    finally:
        del os.environ["DDPM_TEST_SECRET"]
    timings["autograde"] = time.monotonic() - t0
    t0 = time.monotonic()
    fb.feedback(course, [A])
    timings["feedback"] = time.monotonic() - t0
    grades_csv, cells_csv, rows = gr.grades(course)
    listener_hits = 0
    try:
        while True:
            listener.accept()
            listener_hits += 1
    except BlockingIOError:
        pass
    listener.close()

    table = ["student                 expected  got   notes"]
    got = {r["student_id"]: r for r in rows}
    for s, (wrong, _) in CLASS.items():
        r = got.get(s, {})
        table.append(f"{s:<24}{expected_points(points, wrong):>6g}{r.get('score', '-'):>7}   {r.get('notes', '')[:150]}")
    r = got.get(CORRUPT, {})
    table.append(f"{CORRUPT:<24}{'fail':>6}{r.get('score', '-'):>7}   {r.get('status', '')}: {r.get('notes', '')[:100]}")
    n = len(results)
    summary = (f"autograded {n} submissions of {A} in {timings['autograde']:.0f} s "
               f"({timings['autograde'] / max(n, 1):.1f} s each, jobs=2); release {timings['release']:.0f} s, "
               f"collect {timings['collect']:.0f} s, feedback {timings['feedback']:.0f} s")
    (tmp / "grade_table.txt").write_text(summary + "\n" + "\n".join(table) + "\n")
    print("\n" + summary + "\n" + "\n".join(table))
    yield dict(course=course, root=root, points=points, release_nb=release_nb, refs=refs, results={r.student: r for r in results}, rows=got,
               grades_csv=grades_csv, cells_csv=cells_csv, reports=reports, first=first, late_old=late_old,
               outside_file=outside_file, other_nb=other_nb, listener_hits=listener_hits, tmp=tmp)
    shutil.rmtree(base, ignore_errors=True)


def test_points_table_sums_to_the_stated_total(graded):
    assert sum(graded["points"].values()) == 10
    assert set(graded["points"]) == set(TEST_NEEDS)


def test_collect_maps_folders_and_lms_zip_and_reports_the_rest(graded):
    folder_report, zip_report = graded["reports"]
    collected = {s for s, *_ in folder_report.collected} | {s for s, *_ in zip_report.collected}
    assert collected == set(CLASS)
    unmatched = dict(zip_report.unmatched)
    assert any("nobody_1_2_unrelated.ipynb" in f for f in unmatched), zip_report.text()
    assert any("README.txt" in f for f, _ in zip_report.skipped)
    renamed = [how for s, a, files, how in zip_report.collected if s == "s17-renamed"]
    assert renamed and "collected as" in renamed[0][0]
    assert (graded["root"] / "submitted" / "s17-renamed" / A / f"{A}.ipynb").exists()
    assert (graded["root"] / "inbox").is_dir() and len(list((graded["root"] / "inbox").iterdir())) == 4


def test_newer_submission_replaces_older_which_is_kept(graded):
    root = graded["root"]
    archived = list((root / "archive" / "s19-resubmitted" / A).glob("submitted-*"))
    assert len(archived) == 1 and (archived[0] / f"{A}.ipynb").exists()
    assert any(s == "s19-resubmitted/" + A for s, _ in graded["late_old"].older)
    assert "2026-11-20" in (root / "submitted" / "s19-resubmitted" / A / "timestamp.txt").read_text()


@pytest.mark.parametrize("student", list(CLASS))
def test_grade_is_exactly_what_is_correct(graded, student):
    wrong, _ = CLASS[student]
    row = graded["rows"][student]
    assert row["status"].startswith("graded"), row
    assert row["autograded_max"] == 10 and row["written_max"] == 2 and row["max_score"] == 12   # + 2 graded by hand
    assert row["score"] == pytest.approx(expected_points(graded["points"], wrong)), row


def test_per_cell_csv_matches_the_rules(graded):
    with open(graded["cells_csv"]) as f:
        cells = list(csv.DictReader(f))
    cells = [r for r in cells if r["student_id"] != CORRUPT and r["kind"] == "autograded"]
    for r in cells:
        wrong, _ = CLASS[r["student_id"]]
        want = graded["points"][r["cell"]] if not (TEST_NEEDS[r["cell"]] & wrong) else 0
        assert float(r["score"]) == want, r
    assert len(cells) == len(CLASS) * len(TEST_NEEDS)


def test_grades_csv_columns(graded):
    with open(graded["grades_csv"]) as f:
        header = next(csv.reader(f))
    assert header == gr.GRADE_COLUMNS
    assert list((graded["root"] / "exports").glob("grades-*.csv"))


def test_feedback_for_everyone_and_small(graded):
    for s in CLASS:
        pages = list((graded["root"] / "feedback" / s / A).glob("*.html"))
        assert pages, s
        assert pages[0].stat().st_size < 2_000_000, (s, pages[0].stat().st_size)


@pytest.mark.parametrize("student, words", [
    ("s10-endless-loop", "was stopped after 20 s"),
    ("s12-os-exit", "kernel died"),
    ("s13-sys-exit", "kernel died"),          # exit() ends the kernel; sys.exit() is only an error
    ("s14-deleted-test", "`test_q_sample_return` was deleted"),
    ("s15-edited-test", "`test_linear_beta_schedule` was edited"),
    ("s16-added-cells", "cell(s) more than"),
    ("s17-renamed", "collected as"),
    ("s11-print-flood", "was cut"),
    ("s20-bad-metadata", "graded as an ordinary cell"),
    ("s22-patched-checks", "it produced no result"),
    ("s24-delegates", "is the answer of assignment 02_forward_closed_form, which is not public"),
    ("s25-no-metadata", "was restored from the handed-out notebook"),
    ("s26-answer-as-md", "`q_sample` was handed in as a Markdown cell"),
])
def test_readable_reason_in_feedback_and_csv(graded, student, words):
    assert words in graded["rows"][student]["notes"], graded["rows"][student]["notes"]
    page = next((graded["root"] / "feedback" / student / A).glob("*.html")).read_text()
    assert "Grader notes" in page
    for part in [p.strip() for p in words.split("`") if p.strip()]:   # `x` is rendered as <code>x</code>
        assert part in page, (part, student)


def test_feedback_shows_results_never_the_hidden_tests(graded):
    page = next((graded["root"] / "feedback" / "s01-correct" / A).glob("*.html")).read_text()
    assert "BEGIN HIDDEN TESTS" not in page and "submit(" not in page and "run_in_process" not in page
    assert page.count("judged by the grader outside your notebook") == len(TEST_NEEDS)
    assert "\u2713 q_sample: shape" in page or "&#10003; q_sample: shape" in page


def test_unreadable_submission_fails_alone_with_a_reason(graded):
    row = graded["rows"][CORRUPT]
    assert row["status"].startswith("failed") and row["score"] == 0, row
    assert not graded["results"][CORRUPT].ok
    assert (graded["root"] / "feedback" / CORRUPT / A / "GRADING_PROBLEM.html").exists()


def test_feedback_zip_for_the_lms(graded):
    z = fb.feedback_zip(graded["course"], A)
    with zipfile.ZipFile(z) as zf:
        names = zf.namelist()
    assert {n.split("/")[0] for n in names} >= set(CLASS) | {CORRUPT}


def test_output_flood_is_capped(graded):
    nb_path = graded["root"] / "autograded" / "s11-print-flood" / A / f"{A}.ipynb"
    assert nb_path.stat().st_size < 400_000


def test_previous_grades_are_backed_up(graded):
    backups = list((graded["root"] / "backups").glob("gradebook-*.db"))
    assert backups
    con = sqlite3.connect(str(graded["root"] / "gradebook.db"))
    assert con.execute("select count(*) from submitted_assignment").fetchone()[0] == len(CLASS) + 1
    con.close()


@pytest.mark.skipif(bool(SANDBOX_PROBLEM), reason=f"no sandbox here: {SANDBOX_PROBLEM}")
def test_sandbox_blocks_network_and_writes_outside(graded):
    root = graded["root"]
    assert graded["listener_hits"] == 0
    assert not graded["outside_file"].exists()
    assert not Path(str(graded["outside_file"]) + ".link-target").exists()
    other_text = graded["other_nb"].read_text()                         # s01's submission is intact
    assert "pwned" not in other_text
    other = nbformat.read(str(graded["other_nb"]), as_version=4)
    grade_ids = lambda nb: [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
    assert grade_ids(other) == grade_ids(graded["release_nb"]) and len(other.cells) > 0
    assert sqlite3.connect(str(root / "gradebook.db")).execute("select count(*) from grade").fetchone()[0] > 0
    nb = nbformat.read(str(root / "autograded" / "s18-escape" / A / f"{A}.ipynb"), as_version=4)
    lines = [line for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "stream"
             for line in o.text.splitlines() if line.startswith("ESCAPE-REPORT ")]
    assert lines, "the escape attempt did not run"
    report = json.loads(lines[0].split(" ", 1)[1])
    assert report["loopback"].startswith("connect failed") and report["internet"].startswith("connect failed")
    assert report["secret"] == "not visible"
    assert not (root / "autograded" / "s18-escape" / A / f"{A}.ipynb").is_symlink()


def test_newer_submission_after_grading_is_regraded_alone_and_old_grade_kept(graded):
    course, root, tmp = graded["course"], graded["root"], graded["tmp"]
    assert not ag.needs_grading(course, A, "s01-correct")
    late = tmp / "late" / "s02-blank" / A          # s02 hands in a completed notebook after grading
    late.mkdir(parents=True)
    nb = build_submission(graded["release_nb"], graded["refs"], "s02-blank", CLASS["s01-correct"])
    (late / f"{A}.ipynb").write_text(nbformat.writes(nb))
    _write_ts(late, dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.timezone.utc))
    report = col.collect(course, [tmp / "late"])
    assert [s for s, _ in report.replaced] == [f"s02-blank/{A}"]
    assert ag.needs_grading(course, A, "s02-blank") and not ag.needs_grading(course, A, "s01-correct")
    res = ag.autograde(course, [A])                # no --force: only what changed
    assert [r.student for r in res] == ["s02-blank"] and res[0].ok
    assert res[0].score == expected_points(graded["points"], set())
    archive = root / "archive" / "s02-blank" / A
    assert list(archive.glob("submitted-*")) and list(archive.glob("autograded-*"))
    old_csv = sorted((root / "exports").glob("grades-*.csv"))[0]      # the earlier export still says 0
    with open(old_csv) as f:
        assert [r["score"] for r in csv.DictReader(f) if r["student_id"] == "s02-blank"] == ["0.0"]


# ------------------------------------------------------------------ the student bundle
FORBIDDEN_MARKERS = ["BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "def run_in_process"]


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """A course directory with notebook 2 released (no grading): its student bundle."""
    root = tmp_path_factory.mktemp("bundle") / "course"
    course = Course(root=root, quiet=True)
    rel.release(course, [A])
    return {"root": root, "course": course, "refs": _reference_sources(),
            "release_nb": nbformat.read(str(root / "release" / A / f"{A}.ipynb"), as_version=4)}


def test_bundle_holds_nothing_forbidden(released):
    bundle = released["root"] / "bundles" / A
    files = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    assert f"{A}.ipynb" in files and "README.md" in files and "requirements.txt" in files
    assert "tutorial_utils/checks/__init__.py" in files and "tutorial_utils/check_data.pt" in files
    assert not any(f.startswith("checkpoints/") for f in files)      # notebook 2 loads no weights (bundle.used_weights)
    solution_modules = {f.split("/")[1] for f in files if f.startswith("solutions/")}
    assert solution_modules == {"__init__.py", "helpers.py", "model.py"}, solution_modules   # 02 is not public
    assert not any(f.startswith(("ddpm_instructor", "notebooks", "tests", ".git")) for f in files), files
    for f in files:
        if f.endswith((".py", ".ipynb", ".md", ".txt")):
            text = (bundle / f).read_text()
            for marker in FORBIDDEN_MARKERS:
                assert marker not in text, (f, marker)
    readme = (bundle / "README.md").read_text()
    assert "pip install -r requirements.txt" in readme and "tutorial_utils/lab.py" in readme
    with zipfile.ZipFile(released["root"] / "bundles" / f"{A}.zip") as zf:
        assert sorted(n.split("/", 1)[1] for n in zf.namelist()) == files


def test_bundle_notebook_passes_its_self_checks_with_the_reference_answers(released):
    """Inside the bundle (its own tutorial_utils and solutions first on the path), the answers typed into the blanks."""
    from nbclient import NotebookClient
    bundle = released["root"] / "bundles" / A
    nb = build_submission(nbformat.read(str(bundle / f"{A}.ipynb"), as_version=4), released["refs"], "ref", CLASS["s01-correct"])
    last_check = max(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id", "").startswith("check_"))
    nb.cells = nb.cells[:last_check + 1]
    nb.cells.append(nbformat.v4.new_code_cell(
        "import solutions, tutorial_utils\n"
        "print('WHERE', solutions.__file__, tutorial_utils.__file__)\n"
        "try:\n    from solutions import q_sample as _q\nexcept ImportError as e:\n    print('REFUSED', e)"))
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(bundle)}}).execute()
    outs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert outs.count("\u2713") >= 4, outs          # the schedule check and q_sample's three
    assert f"WHERE {bundle}/solutions/__init__.py {bundle}/tutorial_utils/__init__.py" in outs, outs
    assert "REFUSED solutions.q_sample is the answer of assignment 02_forward_closed_form" in outs, outs


def test_release_refuses_a_notebook_whose_earlier_stage_is_not_public(tmp_path):
    course = Course(root=tmp_path / "course", quiet=True)
    with pytest.raises(InstructorError, match=r"imports q_sample from stage 02_forward_closed_form: declare that stage "
                                              r"public once its deadline has passed: --public 02_forward_closed_form"):
        rel.release(course, ["04_training"])
    with pytest.raises(InstructorError, match="not a graded stage"):
        rel.release(course, ["04_training"], public=["02_forward"])


# ------------------------------------------------------------------ Gradescope: one submission on its own, in the zip
# One of each kind of outcome: full marks, some tests lost, a cell stopped by the timeout run_autograder is given,
# and a refusal with its reason.  (Each case is a fresh run_autograder; the blank class, exits and the rest are
# covered by the autograde run above, which grade_one shares.)
GRADESCOPE_CASES = ["s01-correct", "s04-t-minus-1", "s10-endless-loop", "s24-delegates"]


def test_gradescope_autograder_gives_the_grades_autograde_gave(graded, tmp_path):
    """Unpack the exported autograder zip into an /autograder-style folder, run run_autograder on each submission
    and compare results.json with what `./course instructor autograde` gave the same notebooks."""
    import subprocess
    import sys
    from ddpm_instructor.gradescope import export_autograder
    z = export_autograder(graded["course"], A, out=tmp_path / "autograder.zip")
    with open(graded["cells_csv"]) as f:
        by_cell = {(r["student_id"], r["cell"]): float(r["score"]) for r in csv.DictReader(f)}
    for student in GRADESCOPE_CASES:
        ag_root = tmp_path / student
        (ag_root / "source").mkdir(parents=True)
        with zipfile.ZipFile(z) as zf:
            zf.extractall(ag_root / "source")
            assert {"setup.sh", "run_autograder", "requirements.txt"} <= set(zf.namelist())
            assert not any(n.startswith("course/notebooks/source/") and A not in n for n in zf.namelist())
        (ag_root / "submission").mkdir()
        nb = build_submission(graded["release_nb"], graded["refs"], student, CLASS[student], None)
        (ag_root / "submission" / "my homework.ipynb").write_text(nbformat.writes(nb))
        env = dict(os.environ, AUTOGRADER_ROOT=str(ag_root), AUTOGRADER_PYTHON=sys.executable)
        if SANDBOX_PROBLEM:
            pytest.skip(f"no sandbox here: {SANDBOX_PROBLEM}")
        r = subprocess.run(["bash", str(ag_root / "source" / "run_autograder"), "--cell-timeout", "20"], env=env,
                           capture_output=True, text=True, timeout=600)
        results = json.loads((ag_root / "results" / "results.json").read_text())
        row = graded["rows"][student]
        assert results["score"] == pytest.approx(row["score"]), (student, results, r.stdout[-2000:], r.stderr[-2000:])
        assert [t["name"] for t in results["tests"]] == list(TEST_NEEDS)
        for t in results["tests"]:
            assert t["score"] == by_cell[(student, t["name"])], (student, t)
            assert t["max_score"] == graded["points"][t["name"]] and t["visibility"] == "after_published"
            assert t["output"], t
        assert results["stdout_visibility"] == "hidden"
    assert "not public" in json.dumps(results)          # the last case delegated to the reference
