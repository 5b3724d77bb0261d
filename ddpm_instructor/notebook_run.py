"""What the grading preprocessors of one notebook hand each other, and the cell facts they share.

nbgrader runs the autograde preprocessors one after the other on the same notebook and the same ``resources``
dict (``ddpm_instructor.coursedir`` lists them): ``GuardedExecute`` runs the cells, ``JudgeGradedCells`` judges the
graded test cells, ``GraderNotes`` writes what happened.  What each one learnt about the run travels in
``resources`` as the typed record the grade export reads (``records.NotebookRun``), never as loose keys.
"""
from __future__ import annotations

from nbformat.v4 import new_output

from .records import NotebookRun

__all__ = ["run_record", "error_output", "is_graded_test"]

RESOURCE_KEY = "ddpm_notebook_run"


def run_record(resources: dict) -> NotebookRun:
    """This notebook's run record in ``resources`` (made, empty, by the first preprocessor that asks)."""
    run = resources.get(RESOURCE_KEY)
    if not isinstance(run, NotebookRun):
        run = resources[RESOURCE_KEY] = NotebookRun()
    return run


def error_output(ename: str, text: str):
    """An error output, as a failing cell has: nbgrader takes a graded cell's points away for it."""
    return new_output("error", ename=ename, evalue=text, traceback=[f"\x1b[0;31m{ename}\x1b[0m: {text}"])


def is_graded_test(cell) -> bool:
    """An autograded test cell: code, graded, not an answer cell."""
    meta = cell.metadata.get("nbgrader", {})
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")
