"""The instructor's round trip, one command per step, on top of nbgrader.

    python -m tutorial_utils.instructor release   [ASSIGNMENT ...]      # student versions + gradebook entries
    python -m tutorial_utils.instructor collect   PATH [PATH ...]       # folders or LMS zip exports
    python -m tutorial_utils.instructor autograde [ASSIGNMENT ...]      # sandboxed, fast profile
    python -m tutorial_utils.instructor feedback  [ASSIGNMENT ...]      # HTML per student
    python -m tutorial_utils.instructor grades    [--out FILE.csv]      # CSV export
    python -m tutorial_utils.instructor roster    FILE.csv              # optional: names and emails
    python -m tutorial_utils.instructor status | points | doctor

(``./course instructor STEP ...`` runs the same thing.)  Everything happens in a *course directory*,
by default ``grading/`` at the top of the repository (``--course-dir`` or ``DDPM_GRADING_DIR`` to
change it), which is an ordinary nbgrader course directory plus a few folders of our own:

    grading/
      nbgrader_config.py   generated: the repo's nbgrader_config.py + grading settings (timeouts, sandbox)
      gradebook.db         nbgrader's gradebook
      source/ release/     snapshot of notebooks/source and the generated student versions
      submitted/<student>/<assignment>/   autograded/...   feedback/...   (nbgrader's layout)
      inbox/<time>/        every file ever handed to `collect`, untouched
      archive/<student>/<assignment>/<time>/   submissions and autograded copies that were replaced
      backups/             gradebook copies taken before every autograde, older source snapshots
      notes/               what collect and autograde noticed (renamed files, timeouts, ...)
      exports/             every grades CSV ever written;  grades.csv / grades_by_cell.csv: the latest
      logs/                one log per collect batch and per autograded student

Nothing is ever deleted: a newer submission moves the older one to ``archive/``; a re-grade moves
the older autograded notebook there and the gradebook is backed up first.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import difflib
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

NOTES_ENV = "DDPM_GRADING_NOTES_DIR"


def notes_path(notes_dir: str, assignment: str, student: str, kind: str) -> str:
    """Where collect / autograde write what they noticed about one submission."""
    return os.path.join(notes_dir, assignment, f"{student}.{kind}.json")


def bwrap_available():
    from .sandbox import selftest
    return selftest()

REPO = Path(__file__).resolve().parent.parent
COURSE_DIR_ENV = "DDPM_GRADING_DIR"
SOURCE_ENV = "DDPM_NOTEBOOK_SOURCE"

# Seconds per code cell / per notebook when autograding in the fast profile, by assignment-name prefix.
# Measured with the reference solutions in the sandbox on a busy 2-core machine (load ~5): notebook 2 runs
# in ~10 s; notebook 4 in ~75 s; the sampling cells of notebooks 5 and 6 (T = 1000 reverse steps) take
# 2-3 minutes there, so they get 10-minute cells.  An endless loop costs one cell limit, never more.
# Override with --cell-timeout / --notebook-timeout.
TIMEOUTS = {"default": (120, 900), "04": (300, 1200), "05": (600, 1800), "06": (600, 1800)}
MAX_NOTEBOOK_BYTES = 50 * 1024 * 1024
TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f %Z"
STUDENT_ID_RE = re.compile(r"[^A-Za-z0-9._-]+")


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


def clean_student_id(raw: str) -> str:
    return STUDENT_ID_RE.sub("-", raw.strip()).strip("-.") or "unknown"


def _unique(path: Path) -> Path:
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


# ============================================================================ course directory
class Course:
    """An nbgrader course directory used for grading (see the module docstring)."""

    def __init__(self, root=None, source=None, repo_config=None, cell_timeout=None, notebook_timeout=None,
                 sandbox: str | None = None, quiet: bool = False):
        self.root = Path(root or os.environ.get(COURSE_DIR_ENV) or REPO / "grading").resolve()
        self.origin = Path(source or os.environ.get(SOURCE_ENV) or REPO / "notebooks" / "source").resolve()
        self.repo_config = Path(repo_config) if repo_config else REPO / "nbgrader_config.py"
        self.cell_timeout = cell_timeout
        self.notebook_timeout = notebook_timeout
        self.sandbox = sandbox or os.environ.get("DDPM_SANDBOX", "bwrap")
        self.quiet = quiet
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
        self.root.mkdir(parents=True, exist_ok=True)
        text = f'''# Generated by `python -m tutorial_utils.instructor` on every run: edit the instructor command's
# options (or tutorial_utils/instructor.py), not this file.
import os
c = get_config()
_repo_config = {str(self.repo_config)!r}
if os.path.exists(_repo_config):
    load_subconfig(_repo_config)          # the course's own settings (ClearSolutions, ...)

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
from tutorial_utils.grading import GuardedExecute
c.Autograde.autograde_preprocessors = [GuardedExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
                                       SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
c.Autograde.create_student = True
c.OverwriteCells.add_missing_cells = True   # a deleted graded test cell is put back and run
c.GuardedExecute.timeout = int(os.environ.get("DDPM_CELL_TIMEOUT", "120"))
c.GuardedExecute.notebook_timeout = int(os.environ.get("DDPM_NOTEBOOK_TIMEOUT", "900"))
c.GuardedExecute.startup_timeout = 120
c.LimitOutput.max_lines = 300
c.LimitOutput.max_traceback = 60
'''
        path = self.root / "nbgrader_config.py"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        return path

    def env(self, assignment: str | None = None) -> dict:
        env = dict(os.environ)
        # nbgrader runs `alembic` and `jupyter` from PATH: put this Python's bin folder first
        env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
        cell, nbt = timeouts_for(assignment or "")
        env.update({
            "DDPM_PROFILE": "fast", "DDPM_DOWNLOAD": "0", "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1",
            "DDPM_CELL_TIMEOUT": str(self.cell_timeout or cell),
            "DDPM_NOTEBOOK_TIMEOUT": str(self.notebook_timeout or nbt),
            NOTES_ENV: str(self.notes), "DDPM_SANDBOX": self.sandbox,
            # the kernel must not see the gradebook, other submissions or the solutions
            "DDPM_SANDBOX_HIDE_INSIDE": os.pathsep.join(
                p for p in [str(self.root), str(self.origin), str(REPO / "notebooks" / "source")]
                + [x for x in os.environ.get("DDPM_SANDBOX_HIDE_INSIDE", "").split(os.pathsep) if x]),
        })
        if not env.get("DDPM_DATA_DIR") and (REPO.parent / "shared" / "data" / "MNIST").is_dir():
            env["DDPM_DATA_DIR"] = str(REPO.parent / "shared" / "data")
        return env

    def nbgrader(self, *args, assignment=None, timeout=None, log: Path | None = None) -> subprocess.CompletedProcess:
        self.write_config()
        cmd = [sys.executable, "-m", "nbgrader", *args]
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "ab") as f:
                f.write(f"\n$ nbgrader {' '.join(args)}   # {fmt_ts(now_utc())}\n".encode())
                f.flush()
                try:
                    rc = subprocess.run(cmd, cwd=self.root, env=self.env(assignment), stdout=f,
                                        stderr=subprocess.STDOUT, timeout=timeout).returncode
                except subprocess.TimeoutExpired:
                    f.write(f"\n[instructor] nbgrader killed after {timeout} s\n".encode())
                    rc = 124
            return subprocess.CompletedProcess(cmd, rc)
        return subprocess.run(cmd, cwd=self.root, env=self.env(assignment), capture_output=True, text=True,
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

    # ---------------------------------------------------------------- release
    def release_step(self, assignments=None, force=False) -> list[str]:
        names = list(assignments or self.source_assignments())
        if not names:
            raise SystemExit(f"no assignments found in {self.origin} (one folder per assignment, with the "
                             "source notebooks inside)")
        self.write_config()
        done = []
        for a in names:
            src = self.source_dir_for(a)
            dst = self.source / a
            changed = not dst.exists() or _tree_digest(src) != _tree_digest(dst)
            if dst.exists() and changed:
                keep = _unique(self.backups / "source" / f"{a}-{stamp()}")
                keep.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(dst), str(keep))
                self.say(f"  previous source snapshot of {a} kept in {keep.relative_to(self.root)}")
            if changed:
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
            if changed or force or not (self.release / a).exists() or not self.in_gradebook(a):
                self.backup_gradebook("release")
                r = self.nbgrader("generate_assignment", a, "--force", assignment=a)
                if r.returncode != 0:
                    raise SystemExit(f"nbgrader generate_assignment {a} failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
            total = sum(p for *_, p in self.points(a))
            self.say(f"released {a} ({total:g} points): hand out {self.release / a}/"
                     f"{{{', '.join(p.name for p in sorted((self.release / a).glob('*.ipynb')))}}}")
            done.append(a)
        return done

    def source_dir_for(self, a: str) -> Path:
        """Where the instructor edits the source notebooks; the snapshot when that is gone."""
        return self.origin / a if (self.origin / a).is_dir() else self.source / a

    def points(self, assignment: str) -> list[tuple[str, str, float]]:
        """(notebook, grade cell, points) in notebook order, from the generated student version."""
        rows = []
        for nb_path in sorted((self.release / assignment).glob("*.ipynb")):
            nb = nbformat.read(str(nb_path), as_version=4)
            for cell in nb.cells:
                meta = cell.metadata.get("nbgrader", {})
                if meta.get("grade") or meta.get("task"):
                    rows.append((nb_path.stem, meta.get("grade_id"), float(meta.get("points", 0) or 0)))
        return rows

    def backup_gradebook(self, why: str) -> Path | None:
        if not self.db_path.exists():
            return None
        self.backups.mkdir(parents=True, exist_ok=True)
        dest = _unique(self.backups / f"gradebook-{stamp()}-{why}.db")
        src = sqlite3.connect(str(self.db_path))
        try:
            dst = sqlite3.connect(str(dest))
            with dst:
                src.backup(dst)
            dst.close()
        finally:
            src.close()
        return dest

    # ---------------------------------------------------------------- collect
    def known_notebooks(self) -> dict[str, "KnownNotebook"]:
        if not self.released_assignments():
            raise SystemExit("nothing released yet: run `instructor release` first (collect matches files "
                             "against the student versions).")
        known = {}
        for a in self.released_assignments():
            for p in sorted((self.release / a).glob("*.ipynb")):
                known[p.stem] = KnownNotebook.from_file(a, p)
        return known

    def collect_step(self, paths, assignment=None, student_regex=None, roster=None, when=None,
                     dry_run=False) -> "CollectReport":
        known = self.known_notebooks()
        if assignment:
            if assignment not in {k.assignment for k in known.values()}:
                raise SystemExit(f"unknown assignment {assignment!r}; released: {', '.join(self.released_assignments())}")
        roster_map = load_roster(roster) if roster else None
        batch = stamp()
        report = CollectReport(batch=batch)
        inbox = self.inbox / batch
        candidates: list[Candidate] = []
        for p in paths:
            p = Path(p)
            if not p.exists():
                report.unmatched.append((str(p), "no such file or folder"))
                continue
            if not dry_run:                                   # keep the raw input, untouched
                inbox.mkdir(parents=True, exist_ok=True)
                keep = _unique(inbox / p.name)
                (shutil.copytree if p.is_dir() else shutil.copy2)(str(p), str(keep))
            candidates += list(iter_candidates(p))
        regex = re.compile(student_regex) if student_regex else None
        chosen: dict[tuple[str, str, str], Candidate] = {}
        for c in candidates:
            if c.problem:
                report.unmatched.append((c.display, c.problem))
                continue
            if c.name == "timestamp.txt":                  # nbgrader layout: read with its notebook
                continue
            if not c.name.lower().endswith(".ipynb"):
                report.skipped.append((c.display, "not a notebook"))
                continue
            if c.size > MAX_NOTEBOOK_BYTES:
                report.unmatched.append((c.display, f"larger than {MAX_NOTEBOOK_BYTES // 2**20} MB"))
                continue
            try:
                nb = nbformat.reads(c.read().decode("utf-8"), as_version=4)
            except Exception as e:
                report.unmatched.append((c.display, f"not a readable notebook ({type(e).__name__})"))
                continue
            student, why = identify_student(c, known, regex, roster_map)
            if student is None:
                report.unmatched.append((c.display, why))
                continue
            match, how = identify_notebook(c, nb, known)
            if match is None:
                report.unmatched.append((c.display, how))
                continue
            if assignment and match.assignment != assignment:
                report.skipped.append((c.display, f"belongs to {match.assignment}"))
                continue
            c.student, c.known, c.how, c.nb = student, match, how, nb
            c.prepared, c.repairs = repair_metadata(c.read(), nb, match)
            key = (student, match.assignment, match.name)
            if key in chosen:
                old = chosen[key]
                newer, older = (c, old) if c.mtime >= old.mtime else (old, c)
                chosen[key] = newer
                report.duplicates.append((older.display, f"{student} handed in {match.name} twice in this batch; "
                                          f"kept the newer {newer.display}"))
            else:
                chosen[key] = c
        by_submission: dict[tuple[str, str], list[Candidate]] = {}
        for (student, a, _), c in chosen.items():
            by_submission.setdefault((student, a), []).append(c)
        for (student, a), cs in sorted(by_submission.items()):
            when_ = when or max(c.mtime for c in cs)
            self._place(student, a, cs, when_, report, dry_run, batch)
        if roster_map:
            seen = {s for s, _ in by_submission}
            report.missing = sorted(set(roster_map.values()) - seen)
        if not dry_run:
            self.logs.mkdir(parents=True, exist_ok=True)
            (self.logs / f"collect-{batch}.txt").write_text(report.text())
        return report

    def _place(self, student, a, cs, when, report, dry_run, batch):
        dest = self.submitted / student / a
        old_ts = None
        if dest.exists():
            ts_file = dest / "timestamp.txt"
            old_ts = parse_ts(ts_file.read_text()) if ts_file.exists() else None
            same = all((dest / f"{c.known.name}.ipynb").exists() and
                       (dest / f"{c.known.name}.ipynb").read_bytes() == c.prepared for c in cs)
            if same:
                report.unchanged.append(f"{student}/{a}")
                return
            if old_ts is not None and when < old_ts:
                report.older.append((f"{student}/{a}", f"submitted {fmt_ts(when)}, older than the collected "
                                     f"one ({fmt_ts(old_ts)}); kept the newer, this one is in inbox/{batch}"))
                return
        if dry_run:
            report.collected.append((student, a, [c.display for c in cs], [c.how for c in cs if c.how]))
            return
        if dest.exists():
            keep = _unique(self.archive / student / a / f"submitted-{stamp(old_ts) if old_ts else 'unknown'}")
            keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(dest), str(keep))
            report.replaced.append((f"{student}/{a}", str(keep.relative_to(self.root))))
        dest.mkdir(parents=True)
        notes = {}
        for c in cs:
            (dest / f"{c.known.name}.ipynb").write_bytes(c.prepared)
            notes[c.known.name] = submission_notes(c) + c.repairs
        (dest / "timestamp.txt").write_text(fmt_ts(when))
        notes["_source"] = {"batch": batch, "files": [c.display for c in cs], "submitted": fmt_ts(when)}
        npath = Path(notes_path(str(self.notes), a, student, "collect"))
        npath.parent.mkdir(parents=True, exist_ok=True)
        npath.write_text(json.dumps(notes, indent=1))
        report.collected.append((student, a, [c.display for c in cs], [c.how for c in cs if c.how]))

    # ---------------------------------------------------------------- autograde
    def submissions(self, assignment: str) -> list[str]:
        return sorted(p.parent.name for p in self.submitted.glob(f"*/{assignment}") if p.is_dir())

    def needs_grading(self, student: str, assignment: str) -> bool:
        sub, auto = self.submitted / student / assignment, self.autograded / student / assignment
        if not auto.exists():   # not graded yet -- unless it already failed and has not changed since (--force)
            try:
                failed_for = json.loads(Path(notes_path(str(self.notes), assignment, student, "autograde"))
                                        .read_text()).get("_failed_for")
            except (OSError, ValueError):
                failed_for = None
            ts = (sub / "timestamp.txt").read_text() if (sub / "timestamp.txt").exists() else ""
            return failed_for is None or failed_for != ts
        a, b = sub / "timestamp.txt", auto / "timestamp.txt"
        if a.exists() != b.exists() or (a.exists() and a.read_text() != b.read_text()):
            return True
        return any((auto / p.name).stat().st_mtime < p.stat().st_mtime if (auto / p.name).exists() else True
                   for p in sub.glob("*.ipynb"))

    def autograde_step(self, assignments=None, students=None, force=False, jobs=1) -> list["GradeResult"]:
        if self.sandbox != "off":
            why = bwrap_available()
            if why:
                raise SystemExit(f"cannot sandbox student code: {why}.\nInstall bubblewrap (apt-get install -y "
                                 "bubblewrap) or, only for trusted notebooks, pass --no-sandbox.")
        names = list(assignments or self.released_assignments())
        results = []
        for a in names:
            if not self.in_gradebook(a) or not (self.release / a).exists():
                self.say(f"{a} is not in the gradebook yet: releasing it first")
                self.release_step([a])
            todo = [s for s in (students or self.submissions(a)) if (self.submitted / s / a).is_dir()]
            todo = [s for s in todo if force or self.needs_grading(s, a)]
            if not todo:
                self.say(f"{a}: nothing new to grade ({len(self.submissions(a))} submissions already graded; "
                         "--force to regrade)")
                continue
            self.backup_gradebook(f"autograde-{a}")
            for student in todo:                           # keep the previous autograded copy of a regrade
                self._archive_autograded(student, a)
            cell, nbt = timeouts_for(a)
            cell, nbt = self.cell_timeout or cell, self.notebook_timeout or nbt
            n_nb = max(1, len(list((self.release / a).glob("*.ipynb"))))
            jobs = max(1, min(jobs, len(todo)))
            chunks = [todo[i::jobs] for i in range(jobs)]
            where = "in the sandbox" if self.sandbox != "off" else "WITHOUT sandbox (--no-sandbox)"
            self.say(f"{a}: autograding {len(todo)} submission(s) {where} "
                     f"(cell limit {cell} s, notebook limit {nbt} s, {jobs} nbgrader process(es))")
            t0 = time.monotonic()
            everyone = set(self.submissions(a))
            batch_id = stamp()

            def run_chunk(k):
                chunk = chunks[k]
                # a backstop only: GuardedExecute enforces the real per-cell and per-notebook limits
                outer = len(chunk) * n_nb * (nbt + 4 * cell + 60) + 300
                exclude = ",".join(sorted(everyone - set(chunk)))
                log = self.logs / "autograde" / a / f"{batch_id}-{k}.log"
                args = ["autograde", a] + ([f"--CourseDirectory.student_id_exclude={exclude}"] if exclude else [])
                r = self.nbgrader(*args, assignment=a, timeout=outer, log=log)
                return r.returncode, log

            with ThreadPoolExecutor(max_workers=jobs) as pool:
                outcomes = list(pool.map(run_chunk, range(jobs)))
            logs = {}
            for k, (rc, log) in enumerate(outcomes):
                for student in chunks[k]:
                    logs[student] = (rc, log)
            # a submission nbgrader could not process (e.g. the gradebook was busy with --jobs): one more try, alone
            retry = [s for s in todo if not self._graded_ok(s, a) and logs[s][0] != 124]
            if retry:
                for student in retry:
                    self._archive_autograded(student, a)
                chunks.append(retry)
                rc, log = run_chunk(len(chunks) - 1)
                for student in retry:
                    logs[student] = (rc, log)
            elapsed = time.monotonic() - t0
            batch = []
            for student in todo:
                rc, log = logs[student]
                ok = self._graded_ok(student, a)
                res = GradeResult(student, a, ok, _notebook_seconds(self.notes, a, student), str(log.relative_to(self.root)))
                if ok:
                    res.score, res.max_score = self.score(student, a)
                else:
                    why = "took too long as a whole" if rc == 124 else "failed"
                    npath = Path(notes_path(str(self.notes), a, student, "autograde"))
                    npath.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        saved = json.loads(npath.read_text())
                    except (OSError, ValueError):
                        saved = {}
                    saved["_failed"] = [f"Autograding {why}; see {res.log}"]
                    ts_file = self.submitted / student / a / "timestamp.txt"
                    saved["_failed_for"] = ts_file.read_text() if ts_file.exists() else ""
                    npath.write_text(json.dumps(saved, indent=1))
                batch.append(res)
            for r in batch:
                self.say(f"  {r.student:<24} {r.describe()}")
            failed = [r for r in batch if not r.ok]
            self.say(f"{a}: {len(batch) - len(failed)}/{len(batch)} graded in {elapsed:.0f} s "
                     f"({elapsed / len(batch):.1f} s per submission)" +
                     (f"; FAILED: {', '.join(r.student for r in failed)} (see logs/autograde/{a}/)" if failed else ""))
            results += batch
        return results

    def _graded_ok(self, student, a) -> bool:
        return (self.autograded / student / a).is_dir() and not any(
            "could not be executed" in n for n in read_notes(self.notes, a, student))

    def _archive_autograded(self, student, a):
        auto = self.autograded / student / a
        if auto.exists():
            prev = parse_ts((auto / "timestamp.txt").read_text()) if (auto / "timestamp.txt").exists() else None
            keep = _unique(self.archive / student / a / f"autograded-{stamp(prev) if prev else stamp()}")
            keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(auto), str(keep))
        notes = Path(notes_path(str(self.notes), a, student, "autograde"))
        if notes.exists():
            notes.unlink()

    def score(self, student, a) -> tuple[float, float]:
        from nbgrader.api import MissingEntry
        with self.gradebook() as gb:
            try:
                sub = gb.find_submission(a, student)
                return float(sub.score), float(sub.max_score)
            except MissingEntry:
                return 0.0, float(gb.find_assignment(a).max_score)

    # ---------------------------------------------------------------- feedback
    def feedback_zip(self, assignment: str) -> Path:
        """All feedback pages of one assignment in a zip, ``<student>/<page>.html``, for an LMS upload."""
        self.exports.mkdir(parents=True, exist_ok=True)
        dest = self.exports / f"feedback-{assignment}-{stamp()}.zip"
        with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
            for page in sorted(self.feedback.glob(f"*/{assignment}/*.html")):
                zf.write(page, f"{page.parent.parent.name}/{page.name}")
        return dest

    def feedback_step(self, assignments=None, students=None, zip_it=False) -> list[Path]:
        made = []
        for a in assignments or self.released_assignments():
            subs = [s for s in (students or self.submissions(a))]
            if not subs:
                continue
            graded = [s for s in subs if (self.autograded / s / a).is_dir()]
            if graded:                                  # one nbgrader process for the whole class
                everyone = set(self.submissions(a))
                exclude = ",".join(sorted(everyone - set(graded)))
                log = self.logs / "feedback" / a / f"{stamp()}.log"
                args = ["generate_feedback", a, "--force"] + (
                    [f"--CourseDirectory.student_id_exclude={exclude}"] if exclude else [])
                self.nbgrader(*args, assignment=a, log=log)
                for s in graded:
                    files = list((self.feedback / s / a).glob("*.html"))
                    if not files:
                        files = [self._failure_page(s, a, "The feedback page could not be rendered; your instructor "
                                                    f"has been told (see {log.relative_to(self.root)}).")]
                    made += files
            for s in sorted(set(subs) - set(graded)):
                made.append(self._failure_page(s, a, "Your submission could not be graded automatically. "
                                               "Your instructor has been told and will grade it by hand."))
            self.say(f"{a}: feedback for {len(subs)} student(s) in {self.feedback}/<student>/{a}/")
            if zip_it:
                self.say(f"{a}: all pages zipped in {self.feedback_zip(a)}")
        return made

    def _failure_page(self, s, a, msg) -> Path:
        d = self.feedback / s / a
        d.mkdir(parents=True, exist_ok=True)
        notes = read_notes(self.notes, a, s)
        items = "".join(f"<li>{_html(n)}</li>" for n in notes)
        p = d / "GRADING_PROBLEM.html"
        p.write_text(f"<html><body><h1>{_html(a)}: feedback for {_html(s)}</h1><p>{_html(msg)}</p>"
                     f"<ul>{items}</ul></body></html>")
        return p

    # ---------------------------------------------------------------- grades
    def grades_step(self, out=None) -> tuple[Path, Path, list[dict]]:
        from nbgrader.api import MissingEntry
        rows, cells = [], []
        with self.gradebook() as gb:
            assignments = [x.name for x in gb.assignments]
            for s in gb.students:
                for a in assignments:
                    try:
                        sub = gb.find_submission(a, s.id)
                    except MissingEntry:
                        rows.append(dict(student_id=s.id, first_name=s.first_name or "", last_name=s.last_name or "",
                                         email=s.email or "", assignment=a, status="missing", submitted_at="",
                                         score=0, max_score=gb.find_assignment(a).max_score, percent=0.0,
                                         needs_manual_grade=False, notes=""))
                        continue
                    auto_dir = self.autograded / s.id / a
                    status = "graded" if auto_dir.is_dir() else "not graded"
                    notes = read_notes(self.notes, a, s.id)
                    if any(n.startswith("Autograding ") or "could not be executed" in n for n in notes):
                        status = "failed"
                    if sub.needs_manual_grade:
                        status += " (needs manual grade)"
                    max_score = float(sub.max_score)
                    score = float(sub.score) if status.startswith("graded") else 0.0
                    rows.append(dict(student_id=s.id, first_name=s.first_name or "", last_name=s.last_name or "",
                                     email=s.email or "", assignment=a, status=status,
                                     submitted_at=fmt_ts(sub.timestamp.replace(tzinfo=dt.timezone.utc)) if sub.timestamp else "",
                                     score=round(score, 4), max_score=max_score,
                                     percent=round(100 * score / max_score, 1) if max_score else 0.0,
                                     needs_manual_grade=bool(sub.needs_manual_grade), notes=" | ".join(notes)))
                    for nb in sub.notebooks:
                        for g in sorted(nb.grades, key=lambda g: g.name):
                            cells.append(dict(student_id=s.id, assignment=a, notebook=nb.name, cell=g.name,
                                              score=round(float(g.score), 4) if status.startswith("graded") else 0.0,
                                              max_score=float(g.max_score)))
        rows.sort(key=lambda r: (r["assignment"], r["student_id"]))
        cells.sort(key=lambda r: (r["assignment"], r["student_id"], r["notebook"], r["cell"]))
        self.exports.mkdir(parents=True, exist_ok=True)
        t = stamp()
        main = self.exports / f"grades-{t}.csv"
        detail = self.exports / f"grades_by_cell-{t}.csv"
        _write_csv(main, GRADE_COLUMNS, rows)
        _write_csv(detail, CELL_COLUMNS, cells)
        latest = Path(out) if out else self.root / "grades.csv"
        latest_detail = latest.with_name((latest.stem.replace("grades", "grades_by_cell") if "grades" in latest.stem
                                          else latest.stem + "_by_cell") + ".csv")
        shutil.copy(main, latest)
        shutil.copy(detail, latest_detail)
        detail = latest_detail
        return latest, detail, rows

    # ---------------------------------------------------------------- status
    def status_text(self) -> str:
        lines = [f"course directory: {self.root}", f"source notebooks: {self.origin}"]
        for a in sorted(set(self.source_assignments()) | set(self.released_assignments())
                        | set(_listdir(self.origin))):
            subs = self.submissions(a)
            graded = [s for s in subs if (self.autograded / s / a).is_dir()]
            stale = [s for s in subs if self.needs_grading(s, a)]
            fb = [s for s in subs if any((self.feedback / s / a).glob("*.html"))]
            lines.append(f"  {a:<28} released={'yes' if (self.release / a).exists() else 'no ':<3} "
                         f"submitted={len(subs):<4} autograded={len(graded):<4} to-grade={len(stale):<4} feedback={len(fb)}")
        return "\n".join(lines)


GRADE_COLUMNS = ["student_id", "first_name", "last_name", "email", "assignment", "status", "submitted_at",
                 "score", "max_score", "percent", "needs_manual_grade", "notes"]
CELL_COLUMNS = ["student_id", "assignment", "notebook", "cell", "score", "max_score"]


def _write_csv(path, columns, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)


def _html(text) -> str:
    import html
    return html.escape(str(text))


def _listdir(p: Path) -> list[str]:
    return sorted(x.name for x in p.iterdir() if x.is_dir()) if p.is_dir() else []


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if ".ipynb_checkpoints" in p.parts or "__pycache__" in p.parts or not p.is_file():
            continue
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def read_notes(notes_dir: Path, a: str, s: str) -> list[str]:
    out = []
    for kind in ("collect", "autograde"):
        try:
            data = json.loads(Path(notes_path(str(notes_dir), a, s, kind)).read_text())
        except (OSError, ValueError):
            continue
        for key, value in data.items():
            if key != "_source" and isinstance(value, list):
                out += value
    return list(dict.fromkeys(out))


def _notebook_seconds(notes_dir: Path, a: str, s: str) -> float:
    try:
        data = json.loads(Path(notes_path(str(notes_dir), a, s, "autograde")).read_text())
    except (OSError, ValueError):
        return 0.0
    return float(sum(data.get("_seconds", {}).values()))


@dataclass
class GradeResult:
    student: str
    assignment: str
    ok: bool
    seconds: float
    log: str = ""
    score: float = 0.0
    max_score: float = 0.0

    def describe(self) -> str:
        if not self.ok:
            return f"FAILED (see {self.log})"
        return f"{self.score:g}/{self.max_score:g}  ({self.seconds:.0f} s running the notebook)"


# ============================================================================ collect helpers
@dataclass
class KnownNotebook:
    assignment: str
    name: str
    grade_ids: set
    locked: dict            # grade_id -> source of cells the student must not change
    solution_ids: set
    text: str
    n_cells: int = 0

    @classmethod
    def from_file(cls, assignment: str, path: Path) -> "KnownNotebook":
        nb = nbformat.read(str(path), as_version=4)
        ids, locked, sol = set(), {}, set()
        for cell in nb.cells:
            m = cell.metadata.get("nbgrader", {})
            gid = m.get("grade_id")
            if not gid:
                continue
            ids.add(gid)
            if m.get("solution"):
                sol.add(gid)
            elif m.get("locked") or m.get("grade"):
                locked[gid] = cell.source
        return cls(assignment, path.stem, ids, locked, sol, "\n".join(c.source for c in nb.cells), len(nb.cells))


@dataclass
class Candidate:
    display: str               # where it came from, for the report
    parts: tuple               # path parts relative to the collected folder / zip
    name: str
    mtime: dt.datetime
    size: int
    _read: object = None
    problem: str = ""
    student: str = ""
    known: KnownNotebook | None = None
    how: str = ""
    nb: object = None
    prepared: bytes = b""
    repairs: list = field(default_factory=list)
    _data: bytes | None = None

    def read(self) -> bytes:
        if self._data is None:
            self._data = self._read()
        return self._data


def iter_candidates(path: Path, prefix: str = ""):
    """Every file under a folder or inside a zip (one level of nested zips), with its relative parts."""
    label = prefix or path.name
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            rel = p.relative_to(path).parts
            if any(x.startswith(".") or x == "__MACOSX" for x in rel) or p.is_dir():
                continue
            if p.is_symlink() or not p.is_file():
                yield Candidate(f"{label}/{'/'.join(rel)}", rel, p.name, now_utc(), 0, problem="not a regular file")
                continue
            if p.suffix.lower() == ".zip":
                yield from _zip_candidates(p.read_bytes(), f"{label}/{'/'.join(rel)}", rel[:-1])
                continue
            st = p.stat()
            when = dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc)
            ts_file = p.parent / "timestamp.txt"          # nbgrader layout: the recorded submission time wins
            if ts_file.is_file() and parse_ts(ts_file.read_text()):
                when = parse_ts(ts_file.read_text())
            yield Candidate(f"{label}/{'/'.join(rel)}", rel, p.name, when, st.st_size,
                            _read=(lambda p=p: p.read_bytes()))
    elif path.suffix.lower() == ".zip":
        yield from _zip_candidates(path.read_bytes(), label, ())
    else:
        st = path.stat()
        yield Candidate(label, (path.name,), path.name, dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc),
                        st.st_size, _read=(lambda p=path: p.read_bytes()))


def _zip_candidates(data: bytes, label: str, parent_parts: tuple, depth: int = 0):
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        yield Candidate(label, parent_parts, label, now_utc(), len(data), problem="not a readable zip file")
        return
    for info in zf.infolist():
        if info.is_dir():
            continue
        rel = tuple(x for x in info.filename.replace("\\", "/").split("/") if x)
        if any(x.startswith(".") or x == "__MACOSX" for x in rel) or any(x == ".." for x in rel):
            continue
        mtime = dt.datetime(*info.date_time, tzinfo=dt.timezone.utc) if info.date_time[0] >= 1980 else now_utc()
        disp = f"{label}:{'/'.join(rel)}"
        if rel[-1].lower().endswith(".zip") and depth == 0 and info.file_size <= 4 * MAX_NOTEBOOK_BYTES:
            yield from _zip_candidates(zf.read(info), disp, parent_parts + rel[:-1] + (rel[-1][:-4],), depth + 1)
            continue
        yield Candidate(disp, parent_parts + rel, rel[-1], mtime, info.file_size,
                        _read=(lambda zf=zf, info=info: zf.read(info)))


LMS_PREFIX = re.compile(r"^(?P<student>[^_]+)_(?:(?:LATE|late)_)?(?:\d+_)*(?P<rest>.*)$")


def identify_student(c: Candidate, known, regex, roster):
    """Who handed this file in?  Returns (student_id, None) or (None, reason)."""
    assignments = {k.assignment for k in known.values()}
    rel = "/".join(c.parts)
    raw = None
    if regex is not None:
        m = regex.search(rel)
        if not m or not m.groupdict().get("student"):
            return None, f"--student-regex did not match {rel!r}"
        raw = m.group("student")
    elif len(c.parts) >= 3 and c.parts[-2] in assignments:          # nbgrader layout: <student>/<assignment>/x.ipynb
        raw = c.parts[-3]
    elif len(c.parts) >= 2 and "_" in c.parts[-2]:                  # Moodle: "Jane Doe_123_assignsubmission_file_/x.ipynb"
        raw = c.parts[-2].split("_")[0]
    elif "_" in c.name and LMS_PREFIX.match(c.name):               # Canvas & co: "<student>_[LATE_][123_]file.ipynb"
        stem = c.name
        if any(stem == f"{k}.ipynb" for k in known):                # a bare notebook name is not a student id
            raw = c.parts[-2] if len(c.parts) >= 2 else None
        else:
            raw = LMS_PREFIX.match(c.name).group("student")
    elif len(c.parts) >= 2:                                          # <student>/x.ipynb
        raw = c.parts[-2]
    if not raw:
        return None, "could not tell which student this is (no <student>/ folder or <student>_ prefix)"
    if roster is not None:
        sid = roster.get(raw) or roster.get(raw.lower()) or roster.get(clean_student_id(raw).lower())
        if sid is None:
            return None, f"student {raw!r} is not on the roster"
        return sid, None
    return clean_student_id(raw), None


def _strip_lms(name: str) -> str:
    m = LMS_PREFIX.match(name)
    return m.group("rest") if m else name


def identify_notebook(c: Candidate, nb, known: dict):
    """Which released notebook is this?  By cell ids first, then by file name, then by content."""
    ids = {cell.metadata.get("nbgrader", {}).get("grade_id") for cell in nb.cells} - {None}
    best, overlap = None, 0.0
    for k in known.values():
        if k.grade_ids:
            o = len(ids & k.grade_ids) / len(k.grade_ids)
            if o > overlap:
                best, overlap = k, o
    by_name = None
    for k in sorted(known.values(), key=lambda k: -len(k.name)):
        if c.name == f"{k.name}.ipynb" or _strip_lms(c.name) == f"{k.name}.ipynb" or c.name.endswith(f"_{k.name}.ipynb"):
            by_name = k
            break
    if by_name is not None and (best is None or best is by_name or overlap < 0.5):
        return by_name, ""
    if best is not None and overlap >= 0.3:
        return best, f"file {c.name!r} was collected as {best.name}.ipynb (recognised by its graded cells)"
    text = "\n".join(cell.source for cell in nb.cells)
    scored = sorted(((difflib.SequenceMatcher(None, text[:20000], k.text[:20000], autojunk=False).quick_ratio(), k.name)
                     for k in known.values()), reverse=True)
    if scored and scored[0][0] >= 0.6:
        k = known[scored[0][1]]
        return k, f"file {c.name!r} was collected as {k.name}.ipynb (recognised by its content)"
    return None, "could not tell which assignment notebook this is (unknown name, no graded cells)"


def submission_notes(c: Candidate) -> list[str]:
    """What the student changed that grading will undo or that the instructor should know about."""
    notes = [c.how[0].upper() + c.how[1:] + "."] if c.how else []
    nb, k = c.nb, c.known
    present = {}
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid:
            present[gid] = cell.source
    for gid, src in k.locked.items():
        if gid not in present:
            notes.append(f"The graded test cell `{gid}` was deleted; the original was put back and run.")
        elif present[gid].strip() != src.strip():
            notes.append(f"The graded test cell `{gid}` was edited; the original was put back and run.")
    for gid in sorted(k.solution_ids - set(present)):
        notes.append(f"The answer cell `{gid}` was deleted.")
    added = len(nb.cells) - k.n_cells
    if added > 0:
        notes.append(f"{added} cell(s) more than the handed-out notebook; they were run as written.")
    return notes


def repair_metadata(raw: bytes, nb, known: KnownNotebook) -> tuple[bytes, list[str]]:
    """nbgrader refuses a whole notebook over one cell with broken grading metadata (a cell copied and
    edited, metadata edited by hand).  Such cells become ordinary cells; the original stays in inbox/."""
    notes = []
    for i, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader")
        if meta is None:
            continue
        gid = meta.get("grade_id") if isinstance(meta, dict) else None
        if not isinstance(meta, dict) or not gid or gid not in known.grade_ids:
            del cell.metadata["nbgrader"]
            first = next((x.strip() for x in cell.source.splitlines() if x.strip()), "")[:40].replace("`", "")
            notes.append(f"A cell{f' (`{first}`)' if first else ''} carried grading metadata that does not belong "
                         "to this notebook; it was graded as an ordinary cell.")
    if not notes:
        return raw, []
    return nbformat.writes(nb).encode("utf-8"), notes


def load_roster(path) -> dict[str, str]:
    """roster CSV with an ``id`` column (and optionally ``lms_id``, ``name``, ``email``): any of them -> id."""
    out = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            sid = clean_student_id(row.get("id") or row.get("student_id") or "")
            if not sid or sid == "unknown":
                continue
            for key in ("id", "student_id", "lms_id", "name", "email", "login"):
                v = (row.get(key) or "").strip()
                if v:
                    out[v] = sid
                    out[v.lower()] = sid
                    out[clean_student_id(v).lower()] = sid
    return out


@dataclass
class CollectReport:
    batch: str
    collected: list = field(default_factory=list)
    replaced: list = field(default_factory=list)
    unchanged: list = field(default_factory=list)
    older: list = field(default_factory=list)
    duplicates: list = field(default_factory=list)
    unmatched: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    missing: list = field(default_factory=list)

    def text(self) -> str:
        lines = [f"collect batch {self.batch}: {len(self.collected)} submission(s) collected, "
                 f"{len(self.replaced)} replaced an earlier one, {len(self.unchanged)} unchanged, "
                 f"{len(self.unmatched)} file(s) NOT matched"]
        for s, a, files, how in self.collected:
            lines.append(f"  + {s}/{a} <- {', '.join(files)}" + (f"   [{'; '.join(how)}]" if how else ""))
        for sub, where in self.replaced:
            lines.append(f"  ~ {sub}: the earlier submission was moved to {where}")
        for sub, why in self.older:
            lines.append(f"  = {sub}: {why}")
        for f, why in self.duplicates:
            lines.append(f"  = {f}: {why}")
        if self.unmatched:
            lines.append("NOT collected (fix and collect again, or use --student-regex / --roster):")
            lines += [f"  ! {f}: {why}" for f, why in self.unmatched]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} other file(s): " +
                         ", ".join(f"{f} ({why})" for f, why in self.skipped[:20]) + (" ..." if len(self.skipped) > 20 else ""))
        if self.missing:
            lines.append(f"on the roster but nothing collected in this batch: {', '.join(self.missing)}")
        return "\n".join(lines)


# ============================================================================ command line
def _course(args) -> Course:
    return Course(root=args.course_dir, source=None, cell_timeout=getattr(args, "cell_timeout", None),
                  notebook_timeout=getattr(args, "notebook_timeout", None),
                  sandbox="off" if getattr(args, "no_sandbox", False) else None)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tutorial_utils.instructor",
                                description="Release, collect, autograde, feedback and grades for the DDPM course "
                                            "(a thin layer over nbgrader; see docs/INSTRUCTORS.md).")
    p.add_argument("--course-dir", help=f"grading course directory (default: ${COURSE_DIR_ENV} or <repo>/grading)")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--course-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="step", required=True)
    _add = sub.add_parser
    sub.add_parser = lambda *a, **k: _add(*a, parents=[common], **k)

    s = sub.add_parser("release", help="snapshot notebooks/source, generate the student versions, register them")
    s.add_argument("assignments", nargs="*")
    s.add_argument("--force", action="store_true", help="regenerate even if the source did not change")

    s = sub.add_parser("collect", help="file submissions (folders in nbgrader layout, LMS folders or zips)")
    s.add_argument("paths", nargs="+")
    s.add_argument("--assignment", help="only collect this assignment")
    s.add_argument("--student-regex", help="regex with a (?P<student>...) group, matched against each file's path")
    s.add_argument("--roster", help="CSV with an id column (optional lms_id/name/email) to map LMS names to ids")
    s.add_argument("--timestamp", help="submission time to record (default: the file's time in the zip/folder)")
    s.add_argument("--dry-run", action="store_true")

    s = sub.add_parser("autograde", help="run the notebooks (fast profile, sandboxed) and record the grades")
    s.add_argument("assignments", nargs="*")
    s.add_argument("--student", action="append", help="only these students (repeatable)")
    s.add_argument("--force", action="store_true", help="regrade even submissions that did not change")
    s.add_argument("--jobs", type=int, default=max(1, min(4, (os.cpu_count() or 2) // 2)),
                   help="nbgrader processes grading in parallel (default: half the CPU cores, at most 4)")
    s.add_argument("--cell-timeout", type=int, help="seconds per code cell")
    s.add_argument("--notebook-timeout", type=int, help="seconds per notebook")
    s.add_argument("--no-sandbox", action="store_true", help="run student code unconfined (trusted notebooks only)")

    s = sub.add_parser("feedback", help="write an HTML feedback page per student and assignment")
    s.add_argument("assignments", nargs="*")
    s.add_argument("--student", action="append")
    s.add_argument("--zip", action="store_true", help="also zip each assignment's pages (<student>/<page>.html)")

    s = sub.add_parser("grades", help="export the gradebook to CSV")
    s.add_argument("--out", help="where to write the latest CSV (default grading/grades.csv)")

    s = sub.add_parser("roster", help="import students (CSV: id,first_name,last_name,email) into the gradebook")
    s.add_argument("csv")

    sub.add_parser("status", help="what is released, collected, graded")
    s = sub.add_parser("points", help="the points of every graded cell")
    s.add_argument("assignments", nargs="*")
    sub.add_parser("doctor", help="check nbgrader and the sandbox")

    args = p.parse_args(argv)
    course = _course(args)
    if args.step == "release":
        course.release_step(args.assignments, force=args.force)
    elif args.step == "collect":
        when = parse_ts(args.timestamp) if args.timestamp else None
        if args.timestamp and when is None:
            raise SystemExit("--timestamp: use 'YYYY-MM-DD HH:MM:SS' (UTC)")
        report = course.collect_step(args.paths, assignment=args.assignment, student_regex=args.student_regex,
                                     roster=args.roster, when=when, dry_run=args.dry_run)
        print(report.text())
        return 1 if report.unmatched else 0
    elif args.step == "autograde":
        res = course.autograde_step(args.assignments, students=args.student, force=args.force, jobs=args.jobs)
        return 1 if any(not r.ok for r in res) else 0
    elif args.step == "feedback":
        course.feedback_step(args.assignments, students=args.student, zip_it=args.zip)
    elif args.step == "grades":
        main_csv, detail, rows = course.grades_step(args.out)
        for r in rows[:60]:
            print(f"  {r['assignment']:<24} {r['student_id']:<24} {r['score']:>6g}/{r['max_score']:<4g} {r['status']}")
        if len(rows) > 60:
            print(f"  ... {len(rows) - 60} more rows")
        print(f"wrote {main_csv} and {detail} (every export is also kept in {course.exports})")
    elif args.step == "roster":
        r = course.nbgrader("db", "student", "import", str(Path(args.csv).resolve()))
        print((r.stdout + r.stderr).strip()[-3000:])
        return r.returncode
    elif args.step == "status":
        print(course.status_text())
    elif args.step == "points":
        for a in args.assignments or course.released_assignments():
            rows = course.points(a)
            print(f"{a}: {sum(r[2] for r in rows):g} points")
            for nb, gid, pts in rows:
                print(f"  {nb:<28} {gid:<32} {pts:g}")
    elif args.step == "doctor":
        from .sandbox import probe
        why = bwrap_available()
        print(f"nbgrader: {subprocess.run([sys.executable, '-m', 'nbgrader', '--version'], capture_output=True, text=True).stdout.strip()}")
        print(f"course directory: {course.root}")
        print(f"sandbox: {'NOT AVAILABLE: ' + why if why else 'bubblewrap works'}")
        if not why:
            for k, v in probe().items():
                print(f"  {k}: {v}")
        return 1 if why else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
