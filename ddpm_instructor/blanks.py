"""The course's nbgrader extension: student blanks that look like the seed's ``None`` blanks.

nbgrader's ``ClearSolutions`` replaces every ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` region with one
fixed stub (``raise NotImplementedError()``).  The course wants each region replaced by the line the student
should complete, e.g. ``x_t = None``.  The instructor writes that line on the BEGIN line itself::

    ### BEGIN SOLUTION (blank: x_t = None)
    x_t = q_sample(x_0, t, noise)
    ### END SOLUTION

and ``BlankClearSolutions`` (configured in ``nbgrader_config.py`` in place of ``ClearSolutions``) turns it
into ``x_t = None``, indented like the BEGIN line.  nbgrader recognises a BEGIN line by
``begin_solution_delimeter in line``, so the ``(blank: ...)`` suffix does not disturb the rest of nbgrader
(autograde, validate, the formgrader).  A region without ``(blank: ...)`` is an error: every blank in the
course says what the student fills in.

Generating the student versions (``notebooks/source`` -> ``notebooks/release``, all assignments)::

    ./course release                  # or: .venv/bin/python -m ddpm_instructor.blanks
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

from nbgrader.preprocessors import ClearSolutions

COURSE_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = COURSE_ROOT / "notebooks"
BLANK_RE = re.compile(r"\(blank:\s?(?P<stub>.*)\)\s*$")

__all__ = ["BlankClearSolutions", "blank_stub", "assignments", "generate_student_versions", "main"]


def blank_stub(begin_line: str) -> str:
    """The student's line carried by a BEGIN SOLUTION line: ``### BEGIN SOLUTION (blank: y = None)`` -> ``y = None``."""
    m = BLANK_RE.search(begin_line)
    if m is None or not m.group("stub").strip():
        raise RuntimeError(
            f"solution region without a blank: {begin_line.strip()!r}. Write the line the student sees on the BEGIN "
            "line, e.g. '### BEGIN SOLUTION (blank: x_t = None)'.")
    return m.group("stub").strip()


class BlankClearSolutions(ClearSolutions):
    """``ClearSolutions`` whose stub for each code region is the ``(blank: ...)`` text of its BEGIN line."""

    def _replace_solution_region(self, cell, language: str) -> bool:
        if cell.cell_type != "code":
            return super()._replace_solution_region(cell, language)
        new_lines, in_solution, replaced = [], False, False
        for line in cell.source.split("\n"):
            if self.begin_solution_delimeter in line:
                if in_solution:
                    raise RuntimeError("encountered nested begin solution statements")
                in_solution = replaced = True
                indent = re.match(r"\s*", line).group(0)
                new_lines.extend(indent + stub_line for stub_line in blank_stub(line).split("\\n"))
            elif self.end_solution_delimeter in line:
                if not in_solution:
                    raise RuntimeError(f"END SOLUTION without BEGIN SOLUTION in cell:\n{cell.source}")
                in_solution = False
            elif not in_solution:
                new_lines.append(line)
        if in_solution:
            raise RuntimeError(f"no end solution statement found in cell:\n{cell.source}")
        cell.source = "\n".join(new_lines)
        return replaced


def assignments(root: Path = NOTEBOOKS) -> list[str]:
    """The assignment folders under ``<root>/source``, in order."""
    return sorted(p.name for p in (Path(root) / "source").iterdir() if p.is_dir() and list(p.glob("*.ipynb")))


def _load_config(root: Path):
    from traitlets.config.loader import PyFileConfigLoader

    cfg = PyFileConfigLoader("nbgrader_config.py", path=str(COURSE_ROOT)).load_config()
    cfg.CourseDirectory.root = str(Path(root).resolve())
    cfg.BaseConverter.force = True
    cfg.GenerateAssignment.no_database = True   # like `--no-db`: a pure file transformation (notebooks/README.md)
    cfg.SaveCells.enabled = False
    return cfg


def generate_student_versions(root: Path = NOTEBOOKS, only: list[str] | None = None) -> list[Path]:
    """Run nbgrader's GenerateAssignment (with the course config) for every assignment under ``root``.

    Writes ``<root>/release/<assignment>/<notebook>.ipynb`` and returns the written notebooks.
    """
    import logging

    from nbgrader.converters import GenerateAssignment
    from nbgrader.coursedir import CourseDirectory

    root = Path(root).resolve()
    written = []
    for aid in only or assignments(root):
        cfg = _load_config(root)
        coursedir = CourseDirectory(config=cfg)
        coursedir.assignment_id = aid
        converter = GenerateAssignment(coursedir=coursedir, config=cfg)
        converter.log.setLevel(logging.WARNING)
        converter.start()
        written += sorted((root / "release" / aid).glob("*.ipynb"))
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Generate the student versions (notebooks/release) with nbgrader.")
    ap.add_argument("assignments", nargs="*", help="assignment folders (default: all under notebooks/source)")
    ap.add_argument("--root", default=str(NOTEBOOKS), help="the nbgrader course root (default: notebooks/)")
    ap.add_argument("--check", action="store_true",
                    help="regenerate into a temporary folder and fail if notebooks/release differs")
    args = ap.parse_args(argv)
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(Path(args.root) / "source", Path(tmp) / "source")
            generate_student_versions(Path(tmp), args.assignments or None)
            stale = [str(p.relative_to(tmp)) for p in sorted((Path(tmp) / "release").rglob("*.ipynb"))
                     if not (Path(args.root) / p.relative_to(tmp)).exists()
                     or (Path(args.root) / p.relative_to(tmp)).read_bytes() != p.read_bytes()]
        if stale:
            print("out of date (run ./course release):", *stale, sep="\n  ")
            return 1
        print("student versions are up to date")
        return 0
    for p in generate_student_versions(Path(args.root), args.assignments or None):
        print("wrote", p.relative_to(Path(args.root).resolve().parent) if p.is_relative_to(COURSE_ROOT) else p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
