"""The student lab (``tutorial_utils/lab.py``) makes Validate's messages say what it checked: `nbgrader validate`'s
printed ones (its nbgrader config) and the lab's dialog (tests at the end, in Chromium).

nbgrader's own failure text ("If you submit your assignment as it is, you WILL NOT receive full credit") lists the
unanswered written answers as failures without saying why, and says nothing of the hidden tests. The config written
by ``lab.setup`` replaces it (``Validator.failed_warning``, ``changed_warning``): Validate ran the notebook and its
self-checks, lists empty written answers, and neither runs the hidden tests nor reads the answers. Loaded here the way
nbgrader's validate handler loads it (a Python config file), then printed by nbgrader's own Validator.
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

import nbformat
from nbgrader.validator import Validator
from traitlets.config.loader import PyFileConfigLoader

from lab_server import start_server, stop
from test_browser import _expect, _open_first_screen, _validate, browser, page  # noqa: F401  (Chromium fixtures)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tutorial_utils"))
import lab  # noqa: E402  (run as a file by ./course lab, so imported the same way here: no package import)
import validate_dialog  # noqa: E402


def _validator(config_file: Path | None) -> Validator:
    config = PyFileConfigLoader(config_file.name, path=str(config_file.parent)).load_config() if config_file else None
    v = Validator(config=config) if config is not None else Validator()
    v.stream = io.StringIO()
    return v


def _config(tmp_path) -> Path:
    lab._write(tmp_path / "etc" / "jupyter" / "nbgrader_config.py", lab.NBGRADER_CONFIG)
    return tmp_path / "etc" / "jupyter" / "nbgrader_config.py"


def test_failure_message_says_what_validate_checked_and_what_it_did_not(tmp_path):
    v = _validator(_config(tmp_path))
    assert v.validate_all
    v._print_num_failed(3)
    text = " ".join(v.stream.getvalue().split())
    assert "VALIDATE LISTS 3 CELL(S) BELOW" in text
    assert "self-check" in text and "fresh kernel" in text          # what it ran
    assert "does not run the hidden tests" in text                  # what it did not
    assert "written answer" in text and "graded after you hand the notebook in" in text
    assert "WILL NOT receive full credit" not in text


def test_changed_message_says_the_grader_restores_read_only_cells(tmp_path):
    v = _validator(_config(tmp_path))
    v._print_num_changed(1)
    text = " ".join(v.stream.getvalue().split())
    assert "1 READ-ONLY CELL(S) HAVE CHANGED" in text and "undo them before you hand in" in text


def test_nbgrader_default_says_neither():
    """Without the course's config the message is nbgrader's: the test above can fail."""
    v = _validator(None)
    v._print_num_failed(3)
    text = " ".join(v.stream.getvalue().split())
    assert "hidden tests" not in text and "WILL NOT receive full credit" in text


# ------------------------------------------------------------------ the dialog itself, in Chromium
# nbgrader's lab extension writes Validate's dialog in JavaScript ("Success! Your notebook passes all the tests.",
# "The following cell failed:" above a written answer still empty); the student lab serves the copy made by
# tutorial_utils/validate_dialog.py, which says what Validate checked and what it did not.  The notebook: notebook 2's
# student version cut to its first blank, self-check and graded-test cell, and its written answer (Validate is then
# a few seconds), once as released and once with the reference answers.
A = "02_forward_closed_form"


def _cut(nb):
    """The cells up to the first graded test, and the written answer with the question before it."""
    ids = [c.metadata.get("nbgrader", {}).get("grade_id", "") for c in nb.cells]
    first_test = next(i for i, gid in enumerate(ids) if gid.startswith("test_"))
    written = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and ids[i].startswith("written_"))
    nb.cells = nb.cells[:first_test + 1] + nb.cells[written - 1:written + 1]
    return nb


def _answered(nb):
    """Every answer cell as in the instructor's source (nbgrader's solution markers dropped)."""
    src = nbformat.read(str(ROOT / "notebooks" / "source" / A / f"{A}.ipynb"), as_version=4)
    markers = ("### BEGIN SOLUTION", "### END SOLUTION")
    refs = {c.metadata["nbgrader"]["grade_id"]: "\n".join(
                line for line in c.source.split("\n") if not any(m in line for m in markers))
            for c in src.cells if c.metadata.get("nbgrader", {}).get("solution")}
    for c in nb.cells:
        gid = c.metadata.get("nbgrader", {}).get("grade_id")
        if gid in refs:
            c.source = refs[gid]
    return nb


def _text(s: str) -> str:
    return " ".join(s.split())


def test_validate_dialog_says_what_it_checked_in_the_student_lab(page, tmp_path):
    expect = _expect()
    folder = tmp_path / "work"
    folder.mkdir()
    released = str(ROOT / "notebooks" / "release" / A / f"{A}.ipynb")
    nbformat.write(_cut(nbformat.read(released, as_version=4)), str(folder / "a_as_released.ipynb"))
    nbformat.write(_answered(_cut(nbformat.read(released, as_version=4))), str(folder / "b_answered.ipynb"))
    token = "validate-dialog-token"
    proc, base = start_server([sys.executable, str(ROOT / "tutorial_utils" / "lab.py"), str(folder)], tmp_path, token,
                              cwd=folder, log="student_lab.log", DDPM_PROFILE="smoke", MPLBACKEND="Agg")
    try:
        # as released: the blank's self-check fails and the written answer is empty; neither is called "failed"
        panel = _open_first_screen(page, base, token, "a_as_released.ipynb")
        dialog, verdict = _validate(page, panel)
        page.screenshot(path=tmp_path / "validate_flagged.png")
        (tmp_path / "validate_flagged.txt").write_text(verdict)
        text = _text(verdict)
        assert "The following cell failed" not in text, verdict
        assert text.count(_text(validate_dialog.FLAGGED)) >= 2, verdict          # the self-check and the answer
        assert "You did not provide a response." in text and "YOUR ANSWER HERE" in text, verdict
        dialog.get_by_role("button", name="Ok").click()
        expect(dialog).to_have_count(0)

        # answered: nothing flagged, and the dialog says what Validate did and did not check
        page.goto(f"{base}/lab/tree/b_answered.ipynb?token={token}")
        expect(page.locator(".lm-TabBar-tab.lm-mod-current", has_text="b_answered.ipynb")).to_have_count(1)
        panel = page.locator(".jp-NotebookPanel:visible")
        expect(panel.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(1, timeout=60_000)
        dialog, verdict = _validate(page, panel)
        page.screenshot(path=tmp_path / "validate_success.png")
        (tmp_path / "validate_success.txt").write_text(verdict)
        expect(dialog.locator(".validation-success")).to_have_count(1)
        assert "passes all the tests" not in verdict, verdict
        assert _text(verdict) == _text(validate_dialog.SUCCESS), verdict
        assert "did not run the hidden tests" in verdict and "every self-check passed" in verdict, verdict
    finally:
        stop(proc)
