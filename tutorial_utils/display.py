"""How a failed self-check looks in a notebook: its message, not a wall of red.

A ``SelfCheckError`` says what is wrong and how to fix it; the frames of the course's own checking code above it
tell a student nothing.  :func:`install` registers, through IPython's own hook for custom exception display
(``InteractiveShell.set_custom_exc``), a handler that shows

* a ``SelfCheckError`` as one red line, ``✗ <message>``;
* when the self-check failed because the student's own function raised, that error's traceback first, cut to the
  student's code (the frames of ``tutorial_utils`` are left out), then the one line.

The error is still an error: the cell stops, the kernel reports ``SelfCheckError`` (ename) with the message
(evalue), so "Run All", nbgrader's Validate and the grader's feedback all see a failed cell, and show the same
short text.  Outside IPython (a plain ``python`` script) nothing is installed and Python prints the usual traceback.
"""
from __future__ import annotations

import types
from pathlib import Path

__all__ = ["install", "render", "student_frames"]

_PACKAGE_DIR = str(Path(__file__).resolve().parent)
RED, RESET = "\x1b[0;31m", "\x1b[0m"


def _is_course_frame(tb: types.TracebackType) -> bool:
    filename = tb.tb_frame.f_code.co_filename
    return filename.startswith(_PACKAGE_DIR)


def student_frames(tb: types.TracebackType | None) -> types.TracebackType | None:
    """The same traceback without the frames of ``tutorial_utils`` (what is left is the student's code and what
    it called)."""
    kept = []
    while tb is not None:
        if not _is_course_frame(tb):
            kept.append(tb)
        tb = tb.tb_next
    new = None
    for t in reversed(kept):
        new = types.TracebackType(new, t.tb_frame, t.tb_lasti, t.tb_lineno)
    return new


def render(shell, error: BaseException) -> list[str]:
    """The structured traceback (a list of lines) IPython shows for a ``SelfCheckError``."""
    stb: list[str] = []
    cause = error.__cause__
    if cause is not None and cause.__traceback__ is not None:
        tb = student_frames(cause.__traceback__)
        if tb is not None:
            stb += shell.InteractiveTB.structured_traceback(type(cause), cause, tb)
            stb.append("")
    stb.append(f"{RED}\u2717 {error}{RESET}")
    return stb


def _handler(shell, etype, value, tb, tb_offset=None):
    stb = render(shell, value)
    shell._showtraceback(etype, value, stb)     # ipykernel publishes this as the cell's error output
    return stb


def install(shell=None) -> bool:
    """Show ``SelfCheckError`` as its message in this IPython session (the notebooks call this through
    ``import tutorial_utils``).  Returns whether a shell was found."""
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return False
        shell = get_ipython()
    if shell is None:
        return False
    from .checks import SelfCheckError
    shell.set_custom_exc((SelfCheckError,), _handler)
    return True
