"""The instructor round trip on the expensive notebooks: one course releases notebooks 1 and 4-8 once, collects one
class, autogrades each notebook once in the sandbox, writes the feedback and the grades CSV (module fixture
``heavy``).  Notebooks 1 and 8 are graded end to end for a correct, a blank, a wrongly answered and a delegating
submission; the reference answers (and untouched copies) of notebooks 4-7 within their time limits
(``DDPM_SLOW_TESTS=0`` leaves notebooks 4-7 out).  Expected grades come from the released notebook's points
table and from which blanks each student got wrong, never from the grader's output.

A file of its own (it was part of tests/test_instructor.py), so that pytest-xdist runs it beside the notebook-2
class on the other worker.
"""
from __future__ import annotations

import copy
import csv
import os
import time
from pathlib import Path

import nbformat
import pytest

from ddpm_instructor import autograde as ag
from ddpm_instructor import collect as col
from ddpm_instructor import feedback as fb
from ddpm_instructor import grades as gr
from ddpm_instructor import records
from ddpm_instructor import release as rel
from ddpm_instructor.coursedir import CourseDir as Course
from ddpm_instructor.sandbox import bwrap_available

REPO = Path(__file__).resolve().parent.parent
SANDBOX_PROBLEM = bwrap_available()


# ------------------------------------------------------------------ notebooks 1 and 4-8: one release, one class
# One course releases every notebook below (notebook 8 imports the public reference of 02, 05, 06 and 07), one
# collect takes the whole class, and each notebook is autograded once for all its submissions.
SLOW_ON = os.environ.get("DDPM_SLOW_TESTS", "1") != "0"
SLOW = [("04_training", "correct"), ("04_training", "blank"), ("05_sampling", "correct"), ("06_conditional", "correct"),
        ("07_beyond", "correct"), ("07_beyond", "blank")]
PUBLIC = ["01_forward_1d", "02_forward_closed_form", "04_training", "05_sampling", "06_conditional", "07_beyond"]
# Notebooks 1 and 8 end to end: assignment -> (autograded points, written points, kinds), kind -> (the graded tests
# that must fail, or "all" for the untouched notebook; edits of the reference answers; words every failing test's
# note must say).  A wrong blank costs exactly its own test (the blanks m and v feed the return value's test, so the
# wrong blank of notebook 1 is the returned score); a delegating blank costs its test, with the reason.
ENDS = {
    "01_forward_1d": (5, 3, {
        "correct": (set(), {}, ""),
        "blank": ("all", None, "None"),
        "wrong": ({"test_mixture_score_return"},
                  {"return (r * (-(x - m) / v)).sum(-1)": "return (r * ((x - m) / v)).sum(-1)"}, "The sign is flipped"),
        "delegates": ({"test_pf_ode_step"},
                      {"return x + 0.5 * beta * (x + score)": "import solutions\n    return solutions.pf_ode_step(x, score, beta)"},
                      "is the answer of assignment 01_forward_1d, which is not public"),
    }),
    "08_flow_matching": (19, 2, {
        "correct": (set(), {}, ""),
        "blank": ("all", None, "still None"),
        "wrong": ({"test_heun_step"}, {"x_next = x_t + h / 2 * (v + velocity_fn(x_pred, t_next))":
                                       "x_next = x_t + h * (v + velocity_fn(x_pred, t_next))"}, "h/2, not h"),
        "delegates": ({"test_velocity_target"},
                      {"target = noise - x_0": "from solutions import velocity_target as reference\n"
                                               "    target = reference(x_0, noise)"},
                      "is the answer of assignment 08_flow_matching, which is not public"),
    }),
    "09_applications": (8, 2, {
        "correct": (set(), {}, ""),
        "blank": ("all", None, "still None"),
        "wrong": ({"test_slerp"}, {"z = (torch.sin((1 - alpha) * theta) * z0 + torch.sin(alpha * theta) * z1) / torch.sin(theta)":
                                   "z = (1 - alpha) * z0 + alpha * z1"}, "the straight line"),
        # (calling notebook 7's ddim_step upwards is allowed on purpose: solutions.REUSE, docs/INSTRUCTORS.md)
        "delegates": ({"test_ddim_invert_step"},
                      {"x_next = a_next.sqrt() * x0_pred + (1 - a_next).sqrt() * eps":
                       "from solutions import ddim_invert_step as reference\n    x_next = reference(x_t, eps, t, t_next)"},
                      "is the answer of assignment 09_applications, which is not public"),
    }),
}
END_CASES = [(a, kind) for a, (_, _, kinds) in ENDS.items() for kind in kinds]


def _answered(release_nb, src_nb, edits):
    """The student version with every answer cell as in the source (markers dropped), then ``edits`` applied."""
    nb = copy.deepcopy(release_nb)
    refs = {c.metadata["nbgrader"]["grade_id"]: "\n".join(
                l for l in c.source.split("\n") if "### BEGIN SOLUTION" not in l and "### END SOLUTION" not in l)
            for c in src_nb.cells if c.metadata.get("nbgrader", {}).get("solution")}
    for old in edits:
        assert any(old in code for code in refs.values()), f"{old!r} is no longer in the reference solution"
    for c in nb.cells:
        gid = c.metadata.get("nbgrader", {}).get("grade_id")
        if gid in refs:
            code = refs[gid]
            for old, new in edits.items():
                code = code.replace(old, new)
            c.source = code
    return nb


@pytest.fixture(scope="module")
def heavy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("heavy")
    root = tmp / "course"
    course = Course(root=root, sandbox="off" if SANDBOX_PROBLEM else "bwrap", quiet=True)
    slow = SLOW if SLOW_ON else []
    cases = slow + END_CASES
    assignments = sorted({a for a, _ in cases})
    timings = {}
    t0 = time.monotonic()
    rel.release(course, assignments, public=PUBLIC)
    timings["release"] = time.monotonic() - t0
    inbox = tmp / "in"
    for a, kind in cases:
        rel_path = next((root / "release" / a).glob("*.ipynb"))
        nb = nbformat.read(str(rel_path), as_version=4)
        edits = ENDS[a][2][kind][1] if a in ENDS else ({} if kind == "correct" else None)
        if edits is not None:
            nb = _answered(nb, nbformat.read(str(REPO / "notebooks" / "source" / a / rel_path.name), as_version=4), edits)
        d = inbox / f"{kind}-student" / a
        d.mkdir(parents=True)
        nbformat.write(nb, str(d / rel_path.name))
    col.collect(course, [inbox])
    results = {}
    for group, jobs in ((sorted({a for a, _ in slow}), 1), (list(ENDS), 2)):   # the heavy ones alone, as timed
        if group:
            t0 = time.monotonic()
            results.update({(r.assignment, r.student): r for r in ag.autograde(course, group, jobs=jobs)})
            timings[", ".join(group)] = time.monotonic() - t0
    t0 = time.monotonic()
    fb.feedback(course, list(ENDS))
    timings["feedback"] = time.monotonic() - t0
    grades_csv, cells_csv, rows = gr.grades(course)
    with open(cells_csv) as f:
        cells = list(csv.DictReader(f))
    print("\n" + "; ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    yield dict(course=course, root=root, results=results, rows={(r["assignment"], r["student_id"]): r for r in rows},
               cells=cells)


@pytest.mark.skipif(not SLOW_ON, reason="DDPM_SLOW_TESTS=0: skipped autograding notebooks 4-7 (about 2 minutes on 2 cores)")
def test_heavy_notebooks_grade_in_their_time_limits(heavy):
    course, root, got = heavy["course"], heavy["root"], heavy["results"]
    for a, kind in SLOW:
        r = got[(a, f"{kind}-student")]
        total = sum(p for *_, p in course.points(a))
        assert r.ok and r.max_score == total
        assert r.score == (total if kind == "correct" else 0), (a, kind, r)
        notes = records.read_notes(root / "notes", a, f"{kind}-student")
        if kind == "correct":
            assert not any("stopped" in n or "died" in n for n in notes), notes


@pytest.mark.parametrize("a, kind", END_CASES)
def test_notebooks_1_and_8_grade_exactly_what_is_correct(heavy, a, kind):
    """release -> collect -> autograde in the sandbox -> grades CSV, per-cell CSV, feedback page."""
    auto, written, kinds = ENDS[a]
    failing, _, words = kinds[kind]
    student = f"{kind}-student"
    points = {gid: p for _, gid, p in heavy["course"].points(a)}
    assert sum(points.values()) == auto
    failing = set(points) if failing == "all" else failing
    assert failing <= set(points)
    want = sum(p for gid, p in points.items() if gid not in failing)

    r = heavy["results"][(a, student)]
    assert r.ok and r.max_score == auto and r.score == want, r
    row = heavy["rows"][(a, student)]
    assert row["status"].startswith("graded"), row
    assert (row["autograded"], row["autograded_max"], row["written_max"]) == (want, auto, written), row
    cells = {c["cell"]: c for c in heavy["cells"] if (c["assignment"], c["student_id"]) == (a, student)
             and c["kind"] == "autograded"}
    assert set(cells) == set(points)
    for gid, c in cells.items():
        assert float(c["score"]) == (0 if gid in failing else points[gid]), c
        if gid in failing:
            assert words in c["message"] and f"{gid}: " in row["notes"], (c, row["notes"])
    page = next((heavy["root"] / "feedback" / student / a).glob("*.html")).read_text()
    if words:
        assert words in page, (a, kind)
    else:
        assert not any(n in row["notes"] for n in ("stopped", "died", "test_")), row["notes"]
