"""The course's nbgrader extension: student versions that keep the figures and tables of the source notebooks.

nbgrader's ``ClearOutput`` (in ``GenerateAssignment``'s preprocessor list) empties every code cell.  The course's
source notebooks store small outputs (``tools/notebook_outputs.py``), so a student opening a notebook sees what it
will show; ``ClearAnswerOutputs`` (configured in ``nbgrader_config.py`` in place of ``ClearOutput``) keeps them,
except the outputs that say something about an answer.  It clears:

* every output of an nbgrader cell (solution, answer and written-answer cells, graded test cells, locked cells);
* every output of a self-check cell (code matching ``self_check_pattern``: a call of a ``check_...`` function
  from ``tutorial_utils.checks``, whose output is its "✓ ..." lines);
* every error output;
* the text outputs of a cell that uses a name a solution cell defines (``blank_text``): it prints the value of a
  blank (``print(loss_fn)``, a table of the student's function); its figures stay.  Not in the cells tagged with
  one of ``run_output_tags`` (``laptop-output``: the outputs of a maintainer's laptop-profile run, labelled, that
  training fills: loss, timings, verdicts; tools/laptop_outputs.py), which print a run's numbers, not a blank;
* widget outputs (``drop_mime``: tqdm's progress bars), stderr streams that are progress bars
  (``progress_pattern``) and the notebook's widget state.

Every ``execution_count`` is cleared (``None``), as ``ClearOutput`` does, so the student versions diff cleanly.
Grading never trusts a stored output: nbgrader's ``autograde`` runs its own ``ClearOutput`` on every submission
before executing it (``Autograde.sanitize_preprocessors``).
"""
from __future__ import annotations

import ast
import re

from nbgrader import utils
from nbgrader.preprocessors import ClearOutput
from traitlets import Bool, Set, Unicode

__all__ = ["ClearAnswerOutputs", "blank_names", "used_names"]

_NAME_RE = re.compile(r"^(?:async\s+def|def|class)\s+(\w+)|^(\w+)\s*(?::[^=]*)?=(?!=)", re.M)


def _tree(source: str):
    """The cell's code as a syntax tree (IPython's ``%magic`` and ``!shell`` lines left out); None if it does not parse."""
    code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n"))
    try:
        return ast.parse(code)
    except SyntaxError:
        return None


def blank_names(source: str) -> set[str]:
    """The names a solution cell defines at top level: its functions and classes, and the variables it assigns."""
    tree = _tree(source)
    if tree is None:
        return {a or b for a, b in _NAME_RE.findall(source)}
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names


def used_names(source: str) -> set[str]:
    """The names a cell's code reads (every identifier in it, when it does not parse)."""
    tree = _tree(source)
    if tree is None:
        return set(re.findall(r"[A-Za-z_]\w*", source))
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | \
        {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}


def _is_nbgrader(cell) -> bool:
    return bool(cell.metadata.get("nbgrader")) and (
        utils.is_grade(cell) or utils.is_solution(cell) or utils.is_locked(cell))


def _is_figure(out) -> bool:
    return out.get("output_type") in ("display_data", "execute_result") and "image/png" in out.get("data", {})


class ClearAnswerOutputs(ClearOutput):
    """``ClearOutput`` that keeps the outputs revealing no answer (see the module docstring)."""

    self_check_pattern = Unicode(
        r"\bcheck_\w+\s*\(|\btutorial_utils\.checks\b",
        help="A code cell whose source matches this regular expression is a self-check: its outputs are cleared."
    ).tag(config=True)
    progress_pattern = Unicode(
        r"\r|\d+%\|",
        help="A stderr stream matching this regular expression is a progress bar (tqdm): it is dropped."
    ).tag(config=True)
    drop_mime = Set(
        {"application/vnd.jupyter.widget-view+json"},
        help="Outputs carrying one of these MIME types are dropped (widgets: tqdm's progress bars)."
    ).tag(config=True)
    run_output_tags = Set(
        {"laptop-output"},
        help="Cells with one of these tags keep their text outputs although they use a blank's name: they store a "
             "reference run's numbers (tools/laptop_outputs.py). Errors and progress bars are still cleared."
    ).tag(config=True)
    blank_text = Bool(
        True,
        help="Clear the text outputs (not the figures) of the cells that use a name a solution cell defines."
    ).tag(config=True)

    def preprocess(self, nb, resources):
        nb.metadata.pop("widgets", None)
        self._blank_names = set()
        if self.blank_text:
            for cell in nb.cells:
                if cell.cell_type == "code" and cell.metadata.get("nbgrader") and utils.is_solution(cell):
                    self._blank_names |= blank_names(cell.source)
        return super().preprocess(nb, resources)

    def _keep(self, out, prints_blank: bool) -> bool:
        if out.get("output_type") == "error" or self.drop_mime & set(out.get("data", {})):
            return False
        if out.get("output_type") == "stream" and out.get("name") == "stderr" \
                and re.search(self.progress_pattern, out.get("text", "")):
            return False
        return not prints_blank or _is_figure(out)

    def preprocess_cell(self, cell, resources, cell_index):
        if cell.cell_type != "code":
            return cell, resources
        outputs = cell.get("outputs", [])
        if _is_nbgrader(cell) or re.search(self.self_check_pattern, cell.source):
            return super().preprocess_cell(cell, resources, cell_index)
        prints_blank = bool(self._blank_names & used_names(cell.source)) \
            and not self.run_output_tags & set(cell.metadata.get("tags", []))
        kept = [out for out in outputs if self._keep(out, prints_blank)]
        cell, resources = super().preprocess_cell(cell, resources, cell_index)
        for out in kept:
            if "execution_count" in out:
                out["execution_count"] = None
        cell.outputs = kept
        return cell, resources
