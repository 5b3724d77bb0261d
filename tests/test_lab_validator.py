"""The student lab's nbgrader config (``tutorial_utils/lab.py``) makes Validate's messages say what it checked.

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

from nbgrader.validator import Validator
from traitlets.config.loader import PyFileConfigLoader

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tutorial_utils"))
import lab  # noqa: E402  (run as a file by ./course lab, so imported the same way here: no package import)


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
