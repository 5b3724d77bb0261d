"""The grading course directory: where everything of the instructor's round trip lives, and how nbgrader is run.

A *course directory* (default ``grading/`` at the top of the repository; ``--course-dir`` or ``DDPM_GRADING_DIR``)
is an ordinary nbgrader course directory plus a few folders of our own:

    grading/
      nbgrader_config.py   generated: the repo's nbgrader_config.py + grading settings (traits)
      gradebook.db         nbgrader's gradebook
      source/ release/     snapshot of notebooks/source and the generated student versions
      bundles/<assignment>/ + .zip   what students get (ddpm_instructor.bundle)
      submitted/<student>/<assignment>/   autograded/...   feedback/...   (nbgrader's layout)
      inbox/<time>/        every file ever handed to `collect`, untouched
      archive/<student>/<assignment>/<time>/   submissions and autograded copies that were replaced
      backups/             gradebook copies taken before every autograde, older source snapshots
      notes/               typed records of what collect and autograde noticed (ddpm_instructor.records)
      exports/             every grades CSV ever written;  grades.csv / grades_by_cell.csv: the latest
      logs/                one log per collect batch and per autograde run

Nothing is ever deleted: a newer submission moves the older one to ``archive/``; a re-grade moves
the older autograded notebook there and the gradebook is backed up first.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat


REPO = Path(__file__).resolve().parent.parent
COURSE_DIR_ENV = "DDPM_GRADING_DIR"
SOURCE_ENV = "DDPM_NOTEBOOK_SOURCE"

# Seconds per code cell / per notebook when autograding in the smoke profile, by assignment-name prefix.
# Measured with the reference solutions in the sandbox on a busy 2-core machine (load ~5): notebook 2 runs
# in ~10 s; notebook 4 in ~75 s; the sampling cells of notebooks 5 and 6 (T = 1000 reverse steps) take
# 2-3 minutes there, so they get 10-minute cells.  An endless loop costs one cell limit, never more.
# Override with --cell-timeout / --notebook-timeout.
TIMEOUTS = {"default": (120, 900), "04": (300, 1200), "05": (600, 1800), "06": (600, 1800)}
TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f %Z"
STUDENT_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def stamp(t: dt.datetime | None = None) -> str:
    return (t or now_utc()).strftime("%Y%m%dT%H%M%S%fZ")


def fmt_ts(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f") + " UTC"


def parse_ts(text: str) -> dt.datetime | None:
    text = text.strip().replace(" UTC", "")
    for f in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S"):
        try:
            return dt.datetime.strptime(text, f).replace(tzinfo=dt.timezone.utc)
        except ValueError:
            pass
    return None


def student_id_problem(sid: str) -> str:
    """"" when ``sid`` can be a student id as it is (the folder ``submitted/<sid>/`` and the gradebook's id); else
    why not.  An id is never cleaned into another: two names that would clean to one id must stay two students."""
    if not STUDENT_ID_RE.fullmatch(sid):
        return ("is not usable as a student id (1-64 characters: ASCII letters, digits, '.', '_' and '-', "
                "starting with a letter or digit)")
    return ""


def unique(path: Path) -> Path:
    if not path.exists():
        return path
    i = 2
    while path.with_name(f"{path.name}-{i}").exists():
        i += 1
    return path.with_name(f"{path.name}-{i}")


def timeouts_for(assignment: str) -> tuple[int, int]:
    for key, value in TIMEOUTS.items():
        if key != "default" and assignment.startswith(key):
            return value
    return TIMEOUTS["default"]



class CourseDir:
    """An nbgrader course directory used for grading (see the module docstring)."""

    def __init__(self, root=None, source=None, repo_config=None, cell_timeout=None, notebook_timeout=None,
                 sandbox: str | None = None, quiet: bool = False, judge_timeout: int | None = None,
                 judge_memory_mb: int | None = None):
        self.root = Path(root or os.environ.get(COURSE_DIR_ENV) or REPO / "grading").resolve()
        self.origin = Path(source or os.environ.get(SOURCE_ENV) or REPO / "notebooks" / "source").resolve()
        self.repo_config = Path(repo_config) if repo_config else REPO / "nbgrader_config.py"
        self.cell_timeout = cell_timeout
        self.notebook_timeout = notebook_timeout
        self.sandbox = sandbox or "auto"         # SandboxKernelManager.mode: auto | bwrap | user | off
        self.quiet = quiet
        self.judge_timeout = judge_timeout          # JudgeGradedCells.judge_timeout / judge_memory_mb; None: theirs
        self.judge_memory_mb = judge_memory_mb
        for d in ("source", "release", "submitted", "autograded", "feedback", "archive", "inbox", "backups",
                  "notes", "exports", "logs"):
            setattr(self, d, self.root / d)

    # ---------------------------------------------------------------- helpers
    def say(self, *args):
        if not self.quiet:
            print(*args, flush=True)

    @property
    def db_path(self) -> Path:
        return self.root / "gradebook.db"

    def write_config(self) -> Path:
        """The course directory's nbgrader_config.py: the repo's config plus the grading pipeline.  Per-run settings
        (time limits, the sandbox, where notes go) are passed as traits on nbgrader's command line (``traits``)."""
        self.root.mkdir(parents=True, exist_ok=True)
        hidden = [str(self.root), str(self.origin), str(REPO / "notebooks"), str(REPO / "workspace"),
                  str(REPO / "ddpm_instructor"), str(REPO / ".git"), str(REPO / "runs")]
        text = f'''# Generated by `./course instructor` on every run: edit ddpm_instructor/coursedir.py, not this file.
import os
c = get_config()
_repo_config = {str(self.repo_config)!r}
if os.path.exists(_repo_config):
    load_subconfig(_repo_config)          # the course's own settings (BlankClearSolutions, ...)

c.CourseDirectory.root = {str(self.root)!r}
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.db_url = {"sqlite:///" + str(self.db_path)!r}
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".*"]

from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.preprocessors import (IgnorePattern, LimitOutput, SaveAutoGrades, AssignLatePenalties,
                                    CheckCellMetadata)
from ddpm_instructor.execute import GuardedExecute
from ddpm_instructor.grader_notes import GraderNotes
from ddpm_instructor.judge_graded import JudgeGradedCells
from ddpm_instructor.sanitize import SafeOutputs
c.Autograde.autograde_preprocessors = [GuardedExecute, JudgeGradedCells, SafeOutputs, GraderNotes,
                                       IgnorePattern, ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades,
                                       AssignLatePenalties, CheckCellMetadata]
c.Autograde.create_student = True
c.OverwriteCells.add_missing_cells = True   # a deleted graded test cell is put back and run
c.GuardedExecute.startup_timeout = 120
c.GraderNotes.notes_dir = {str(self.notes)!r}
c.SandboxKernelManager.protect = {hidden!r}   # never readable by the kernel (checked in the fallback mode)
c.LimitOutput.max_lines = 300
c.LimitOutput.max_traceback = 60
'''
        path = self.root / "nbgrader_config.py"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        return path

    def limits(self, assignment: str) -> tuple[int, int]:
        cell, nbt = timeouts_for(assignment or "")
        return int(self.cell_timeout or cell), int(self.notebook_timeout or nbt)

    def traits(self, assignment: str) -> list[str]:
        """nbgrader command-line traits for grading ``assignment``: its time limits, the sandbox, the graded
        tests' inputs and the reference code its kernel may see (the public stages only: ddpm_instructor.bundle)."""
        cell, nbt = self.limits(assignment)
        return [f"--GuardedExecute.timeout={cell}", f"--GuardedExecute.notebook_timeout={nbt}",
                f"--JudgeGradedCells.inputs_dir={self.graded_inputs / assignment}",
                f"--SandboxKernelManager.mode={self.sandbox}",
                f"--SandboxKernelManager.bundle_dir={self.bundle_dir(assignment)}",
                f"--SandboxKernelManager.inputs_dir={self.graded_inputs / assignment}",
                f"--SandboxKernelManager.data_dir={self.env().get('DDPM_DATA_DIR', '')}"] + [
                f"--JudgeGradedCells.{k}={v}" for k, v in (("judge_timeout", self.judge_timeout),
                                                         ("judge_memory_mb", self.judge_memory_mb)) if v]

    @property
    def graded_inputs(self) -> Path:
        return self.root / "graded_inputs"

    @property
    def bundles(self) -> Path:
        return self.root / "bundles"

    def bundle_dir(self, assignment: str) -> Path:
        """What students get for ``assignment`` (written by ``ddpm_instructor.bundle``, which imports this module;
        this module never imports it)."""
        return self.bundles / assignment

    def env(self) -> dict:
        env = dict(os.environ)
        # nbgrader runs `alembic` and `jupyter` from PATH: put this Python's bin folder first
        env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
        env.update({"DDPM_PROFILE": "smoke", "DDPM_DOWNLOAD": "0", "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"})
        if not env.get("DDPM_DATA_DIR") and (REPO.parent / "shared" / "data" / "MNIST").is_dir():
            env["DDPM_DATA_DIR"] = str(REPO.parent / "shared" / "data")
        return env

    def nbgrader(self, *args, timeout=None, log: Path | None = None) -> subprocess.CompletedProcess:
        self.write_config()
        cmd = [sys.executable, "-m", "nbgrader", *args]
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "ab") as f:
                f.write(f"\n$ nbgrader {' '.join(args)}   # {fmt_ts(now_utc())}\n".encode())
                f.flush()
                try:
                    rc = subprocess.run(cmd, cwd=self.root, env=self.env(), stdout=f,
                                        stderr=subprocess.STDOUT, timeout=timeout).returncode
                except subprocess.TimeoutExpired:
                    f.write(f"\n[instructor] nbgrader killed after {timeout} s\n".encode())
                    rc = 124
            return subprocess.CompletedProcess(cmd, rc)
        return subprocess.run(cmd, cwd=self.root, env=self.env(), capture_output=True, text=True,
                              timeout=timeout)

    def source_assignments(self) -> list[str]:
        found = set()
        for d in (self.origin, self.source):
            if d.is_dir():
                found |= {p.name for p in d.iterdir() if p.is_dir() and any(p.glob("*.ipynb"))}
        return sorted(found)

    def released_assignments(self) -> list[str]:
        return sorted(p.name for p in self.release.iterdir() if p.is_dir()) if self.release.is_dir() else []

    def gradebook(self):
        from nbgrader.api import Gradebook
        return Gradebook("sqlite:///" + str(self.db_path))

    def in_gradebook(self, assignment: str) -> bool:
        if not self.db_path.exists():
            return False
        from nbgrader.api import MissingEntry
        with self.gradebook() as gb:
            try:
                gb.find_assignment(assignment)
                return True
            except MissingEntry:
                return False

    def source_dir_for(self, a: str) -> Path:
        """Where the instructor edits the source notebooks; the snapshot when that is gone."""
        return self.origin / a if (self.origin / a).is_dir() else self.source / a

    def points(self, assignment: str, written: bool = False) -> list[tuple[str, str, float]]:
        """(notebook, grade cell, points) in notebook order, from the generated student version: the graded tests
        (autograded), or with ``written=True`` the written answers (Markdown cells, graded by hand).  Before the
        first release, from the source notebooks (the same nbgrader metadata)."""
        rows = []
        folder = self.release / assignment if (self.release / assignment).is_dir() else self.source_dir_for(assignment)
        for nb_path in sorted(folder.glob("*.ipynb")):
            nb = nbformat.read(str(nb_path), as_version=4)
            for cell in nb.cells:
                meta = cell.metadata.get("nbgrader", {})
                if (meta.get("grade") or meta.get("task")) and (cell.cell_type == "markdown") == written:
                    rows.append((nb_path.stem, meta.get("grade_id"), float(meta.get("points", 0) or 0)))
        return rows

    def backup_gradebook(self, why: str) -> Path | None:
        if not self.db_path.exists():
            return None
        self.backups.mkdir(parents=True, exist_ok=True)
        dest = unique(self.backups / f"gradebook-{stamp()}-{why}.db")
        src = sqlite3.connect(str(self.db_path))
        try:
            dst = sqlite3.connect(str(dest))
            with dst:
                src.backup(dst)
            dst.close()
        finally:
            src.close()
        return dest

    def submissions(self, assignment: str) -> list[str]:
        return sorted(p.parent.name for p in self.submitted.glob(f"*/{assignment}") if p.is_dir())


def listdir(p: Path) -> list[str]:
    return sorted(x.name for x in p.iterdir() if x.is_dir()) if p.is_dir() else []


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if ".ipynb_checkpoints" in p.parts or "__pycache__" in p.parts or not p.is_file():
            continue
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()

