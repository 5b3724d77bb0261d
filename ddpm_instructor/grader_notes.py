"""Say what happened to a notebook while it was graded: the "Grader notes" cell and the typed record.

``GraderNotes`` runs after ``GuardedExecute`` and ``JudgeGradedCells``.  It gathers, in this order and without
repeats, what ``collect`` noted about the notebook, the graded test cells nbgrader had to put back (missing from the
handed-in notebook, by grade id; only when ``collect`` did not file this notebook, since collect compared it with
the release and already said so), and the run's own notes (``notebook_run``).  It writes them as a typed record
(``records.AutogradeRecord``) in ``notes_dir`` for the grade export, and in plain words in a Markdown cell at the
top of the autograded notebook, and so of the feedback.
"""
from __future__ import annotations

import json
from pathlib import Path

from nbformat.v4 import new_markdown_cell
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode

from . import records
from .notebook_run import is_graded_test, run_record
from .sanitize import escape_note

NOTES_MARK = "ddpm_grader_notes"

__all__ = ["GraderNotes", "NOTES_MARK"]


class GraderNotes(NbGraderPreprocessor):
    """Writes the notebook's notes as the "Grader notes" cell and, with ``notes_dir``, as its autograde record."""

    notes_dir = Unicode("", help="Where the typed record of each submission goes (<course>/notes).").tag(config=True)

    def preprocess(self, nb, resources):
        meta = (resources or {}).get("nbgrader", {})
        student, assignment, notebook = meta.get("student"), meta.get("assignment"), meta.get("notebook")
        known = bool(self.notes_dir and student and assignment)
        collected = records.load_collect(self.notes_dir, assignment, student) if known else records.CollectRecord()
        restored = self._restored_notes(nb, student, assignment, notebook, collected)
        run = run_record(resources)
        run.notes = list(dict.fromkeys(list(collected.notebooks.get(notebook, [])) + restored + run.notes))
        run.seconds = round(run.seconds, 1)
        if known:
            rec = records.load_autograde(self.notes_dir, assignment, student) or records.AutogradeRecord()
            rec.notebooks[notebook] = run
            records.save(rec, records.notes_path(self.notes_dir, assignment, student, "autograde"))
        _insert_notes_cell(nb, run.notes)
        return nb, resources

    def _submitted_grade_ids(self, student: str, assignment: str, notebook: str) -> set | None:
        """The grade ids of the notebook as handed in (nbgrader's submitted copy); None when it cannot be read."""
        from nbgrader.coursedir import CourseDirectory
        cd = CourseDirectory(parent=self)
        path = Path(cd.format_path(cd.submitted_directory, student, assignment)) / f"{notebook}.ipynb"
        try:
            cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
            return {((c.get("metadata") or {}).get("nbgrader") or {}).get("grade_id") for c in cells} - {None}
        except (OSError, ValueError, AttributeError, TypeError):
            return None

    def _restored_notes(self, nb, student, assignment, notebook, collected) -> list[str]:
        """Graded test cells nbgrader put back (their grade id is not in the handed-in notebook).  Nothing when
        collect filed this notebook: it compared it with the release and its notes already say what was deleted."""
        if notebook in collected.notebooks or not (student and assignment and notebook):
            return []
        handed_in = self._submitted_grade_ids(student, assignment, notebook)
        if handed_in is None:
            return []
        put_back = [c.metadata["nbgrader"].get("grade_id") for c in nb.cells if is_graded_test(c)]
        return [f"The graded test cell `{gid}` was missing; the original was put back and run."
                for gid in put_back if gid not in handed_in]


def _insert_notes_cell(nb, notes: list[str]) -> None:
    """The "Grader notes" cell at the top of the autograded notebook (and so of the feedback)."""
    nb.cells = [c for c in nb.cells if not c.metadata.get(NOTES_MARK)]
    text = ("**Grader notes** (automatic):\n\n" + "\n".join(f"- {escape_note(n)}" for n in notes)) if notes else \
        "**Grader notes** (automatic): the notebook ran without problems."
    cell = new_markdown_cell(text)
    cell.metadata[NOTES_MARK] = True
    if nb.get("nbformat_minor", 5) < 5:
        cell.pop("id", None)
    nb.cells.insert(0, cell)
