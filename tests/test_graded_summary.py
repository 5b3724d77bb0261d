"""A notebook's first screen says what is graded, and says it truly.

Notebooks 1 and 3 used to say "Nothing to hand in" on their first screen (which the feedback page repeats: it is the
handed-in notebook, rendered), yet they carry 8 and 4 points. Their first Markdown cell now states "**What is graded
(N points).**", N the sum of the notebook's nbgrader points, and no first screen of a notebook with points says there
is nothing to hand in. Checked in the source and in the student version a student opens.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "notebooks" / "source").glob("*/*.ipynb"))
SUMMARY = re.compile(r"\*\*What is graded \((\d+) points?\)\.\*\*")
NOTHING = re.compile(r"nothing to hand in", re.I)
MUST_SUMMARISE = {"01_forward_1d", "03_unet"}      # the two whose first screen said there was nothing to hand in


def _versions():
    for src in SOURCES:
        yield src
        yield ROOT / "notebooks" / "release" / src.parent.name / src.name


def _points(nb) -> float:
    return sum(c.metadata.get("nbgrader", {}).get("points", 0) or 0 for c in nb.cells
               if c.metadata.get("nbgrader", {}).get("grade"))


@pytest.mark.parametrize("path", list(_versions()), ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}")
def test_first_screen_says_what_is_graded(path):
    nb = nbformat.read(path, as_version=4)
    source = nbformat.read(ROOT / "notebooks" / "source" / path.parent.name / path.name, as_version=4)
    points = _points(source)                          # the points are the source's (the student version has the same)
    first = next(c for c in nb.cells if c.cell_type == "markdown").source
    if points:
        assert not NOTHING.search(first), f"{path}: the first screen says there is nothing to hand in ({points:g} points)"
    stated = SUMMARY.search(first)
    if path.parent.name in MUST_SUMMARISE:
        assert stated, f"{path}: the first screen must say '**What is graded (N points).**'"
    if stated:
        assert float(stated.group(1)) == points, (f"{path}: the first screen says {stated.group(1)} points, the "
                                                   f"notebook's graded cells carry {points:g}")
