"""A notebook's solution cell handed in as a student would -- right, blank, or with a plausible mistake -- and
judged as the grader judges it (the blank's probe on the grader's inputs, the record read back and judged against
the reference): the tools and the two parametrised tests that tests/test_flow.py and tests/test_lab2d.py share."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from ddpm_instructor import graded
from ddpm_instructor.blanks import blank_stub

REGION = re.compile(r"^(?P<indent>[ \t]*)### BEGIN SOLUTION[^\n]*\n(?P<body>.*?)^[ \t]*### END SOLUTION[^\n]*\n?", re.M | re.S)


def solution_source(notebook: Path, cell_id: str) -> str:
    nb = json.loads(Path(notebook).read_text())
    return next("".join(c["source"]) for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == cell_id)


def handed_in(notebook: Path, cell_id: str, answer: str | None) -> str:
    """The cell with its solution region replaced: by the reference (None), by the blank (""), or by ``answer``."""
    def repl(m):
        if answer is None:
            return m.group("body")
        lines = [blank_stub(m.group(0).split("\n")[0])] if answer == "" else answer.split("\n")
        return "".join(m.group("indent") + line + "\n" for line in lines)
    return REGION.sub(repl, solution_source(notebook, cell_id))


def cell_object(notebook: Path, cell_id: str, answer: str | None):
    """The object the cell defines (named like the cell), as handed in."""
    ns = {"torch": torch, "F": torch.nn.functional}
    exec(compile(handed_in(notebook, cell_id, answer), f"<{Path(notebook).stem}:{cell_id}>", "exec"), ns)
    return ns[cell_id]


def verdict(gid: str, obj) -> tuple[bool, str]:
    """The grader's verdict on the record the blank's probe writes in the kernel, read back once as the grader reads
    it."""
    case = graded.TESTS[gid]
    inputs = case.make_inputs()
    rec = case.blank.record.probe(obj, inputs)
    return graded.judge_record(gid, rec.to_plain(inputs))


def graded_cell_tests(notebook: Path, cells: dict, mistakes: dict):
    """The two tests of a notebook's graded cells: each reference passes and each blank fails with "still None";
    each plausible mistake fails with words that name it.  ``cells``: grade id -> solution cell; ``mistakes``: grade
    id -> [(the lines handed in instead of the solution's, words the verdict must say)]."""
    @pytest.mark.parametrize("gid", sorted(cells))
    def test_the_reference_passes_and_the_blank_fails(gid):
        ok, message = verdict(gid, cell_object(notebook, cells[gid], None))
        assert ok, message
        ok, message = verdict(gid, cell_object(notebook, cells[gid], ""))
        assert not ok and "still None" in message and "fill in the blank" in message, message

    @pytest.mark.parametrize("gid, answer, words", [(g, a, w) for g, ms in mistakes.items() for a, w in ms])
    def test_each_plausible_mistake_fails_with_its_hint(gid, answer, words):
        ok, message = verdict(gid, cell_object(notebook, cells[gid], answer))
        assert not ok and words in message, message

    return test_the_reference_passes_and_the_blank_fails, test_each_plausible_mistake_fails_with_its_hint
