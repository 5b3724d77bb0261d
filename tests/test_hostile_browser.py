"""Hostile students against the instructor's browser, through what the student's code displays while it is graded:
``display(HTML('<img src=x onerror=...>'))`` in an answer cell.  Seen through the real commands
(collect, autograde, feedback on notebook 2): the HTML output was still in ``autograded/`` (what the formgrader and
the feedback render), because ``SafeOutputs`` never ran.  Fast: no kernel."""
from __future__ import annotations

import nbformat

from ddpm_instructor.sanitize import SafeOutputs


def test_safe_outputs_runs_when_nbgrader_calls_it():
    """nbgrader's Autograde calls each preprocessor as ``preprocessor(nb, resources)``; nbconvert's ``__call__``
    skips a preprocessor whose ``enabled`` is False, which is nbconvert's default."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("display(HTML(...))")
    cell.outputs = [nbformat.v4.new_output("display_data", data={
        "text/html": '<img src=x onerror="fetch(\'/api/terminals\', {method: \'POST\'})">',
        "application/javascript": "alert(1)", "text/plain": "<IPython.core.display.HTML object>"})]
    nb.cells = [cell]
    nb, _ = SafeOutputs()(nb, {})
    (out,) = nb.cells[0].outputs
    assert set(out["data"]) == {"text/plain"}, out
