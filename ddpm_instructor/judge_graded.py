"""Judge a notebook's graded test cells outside the kernel and outside the grader's process.

``JudgeGradedCells`` runs after ``GuardedExecute``, before nbgrader's ``SaveAutoGrades`` scores the cells.  Each
graded test cell's outputs (the record the probe wrote, or an error) go to a child process with a time and a memory
limit (``ddpm_instructor.judging``: ``judge_timeout`` seconds per test, ``judge_memory_mb``), which decodes the
record and compares it with the reference (``ddpm_instructor.graded``) using the graded tests' inputs
(``inputs_dir``).  The cell's outputs are then replaced by the verdict (an error output costs its points, nbgrader's
rule) and its code by a one-line description, so the feedback shows each test's result and message, never its code.
A record too large, or a test the judge does not finish in time, costs that test only.  The verdicts and the
judge's notes go into the notebook's run record (``notebook_run``).  With no ``inputs_dir`` nothing is judged.
"""
from __future__ import annotations

import time

from nbformat.v4 import new_output
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Integer, Unicode

from .judging import GradedCell, judge_cells
from .notebook_run import error_output, is_graded_test, run_record

__all__ = ["JudgeGradedCells"]


class JudgeGradedCells(NbGraderPreprocessor):
    """Replaces each graded test cell's code and outputs by the verdict of a bounded judging process."""

    inputs_dir = Unicode("", help="The graded tests' inputs (ddpm_instructor.graded.write_inputs); empty: graded "
                         "cells are not judged here.").tag(config=True)
    judge_timeout = Integer(30, help="Seconds the grader may spend judging one graded test's record (in a child "
                            "process); a test it does not finish in time fails with a note.").tag(config=True)
    judge_memory_mb = Integer(1024, help="Memory (MB of address space, beyond what Python and PyTorch take at start) "
                              "the judging process may use.").tag(config=True)

    def preprocess(self, nb, resources):
        if not self.inputs_dir:
            return nb, resources
        started = time.monotonic()
        cells = [c for c in nb.cells if is_graded_test(c)]
        asked = [GradedCell.from_outputs(c.metadata["nbgrader"].get("grade_id", "?"),
                                         float(c.metadata["nbgrader"].get("points", 0) or 0), c.outputs) for c in cells]
        batch = judge_cells(asked, self.inputs_dir, self.judge_timeout, self.judge_memory_mb)
        self.log.info("judged %d graded test(s) in %d child process(es), peak %.0f MB", len(cells), batch.children,
                      batch.peak_mb)
        for cell, res in zip(cells, batch.results):
            cell.source = (f"# Graded test `{res.grade_id}` ({res.max_points:g} points): judged by the grader outside "
                           "your notebook.")
            cell.outputs = ([new_output("stream", name="stdout", text=f"\u2713 {res.message}\n")] if res.passed
                            else [error_output("GradedTestFailed", res.message)])
        run = run_record(resources)
        run.notes += batch.notes
        run.tests = list(batch.results)
        run.seconds += time.monotonic() - started
        return nb, resources
