"""Typed records of what collect and autograde noticed about one submission (otter-grader's ``TestCaseResult``
style): written as JSON in ``<course>/notes/<assignment>/<student>.<kind>.json``, read back by feedback and grades.

Nothing downstream matches message text: the flags (``executed``, ``failure``) carry the facts, the messages are
for people.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

NOTES_ENV = "DDPM_GRADING_NOTES_DIR"


def notes_path(notes_dir, assignment: str, student: str, kind: str) -> Path:
    """Where collect (``kind="collect"``) / autograde (``kind="autograde"``) write their record of one submission."""
    return Path(notes_dir) / assignment / f"{student}.{kind}.json"


@dataclass
class TestResult:
    """One graded test: judged outside the student's kernel (``ddpm_instructor.graded``)."""
    grade_id: str
    max_points: float
    passed: bool
    message: str
    points: float = 0.0


@dataclass
class NotebookRun:
    """What happened while one notebook of a submission was executed and judged."""
    executed: bool = True                   # False: the kernel never ran it (nothing was graded)
    seconds: float = 0.0
    slowest_cell: tuple = (0.0, "")
    notes: list = field(default_factory=list)
    tests: list = field(default_factory=list)   # [TestResult]


@dataclass
class CollectRecord:
    notebooks: dict = field(default_factory=dict)   # notebook -> [notes]
    batch: str = ""
    files: list = field(default_factory=list)
    submitted: str = ""
    identity: str = ""          # who the LMS says handed it in ("Canvas user 12345"; "" for a folder's id)
    name: str = ""              # the name the export showed (display only)
    refused: list = field(default_factory=list)     # "<file>: <why>" for each of their files collect did not file

    def notes(self) -> list[str]:
        return [n for v in self.notebooks.values() for n in v] + [f"Not collected: {r}" for r in self.refused]


@dataclass
class AutogradeRecord:
    notebooks: dict = field(default_factory=dict)   # notebook -> NotebookRun
    failure: str = ""                               # non-empty: nbgrader could not grade this submission
    failed_for: str = ""                            # the submission time the failure was for (not retried until it changes)

    @property
    def executed(self) -> bool:
        return not self.failure and all(r.executed for r in self.notebooks.values())

    @property
    def seconds(self) -> float:
        return float(sum(r.seconds for r in self.notebooks.values()))

    def notes(self) -> list[str]:
        out = [n for r in self.notebooks.values() for n in r.notes]
        return out + ([self.failure] if self.failure else [])

    def tests(self) -> list[TestResult]:
        return [t for r in self.notebooks.values() for t in r.tests]


def _load(path: Path) -> dict | None:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def save(record, path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(record), indent=1, ensure_ascii=False))
    os.replace(tmp, path)


def load_collect(notes_dir, a: str, s: str) -> CollectRecord:
    d = _load(notes_path(notes_dir, a, s, "collect")) or {}
    return CollectRecord(**{k: d[k] for k in ("notebooks", "batch", "files", "submitted", "identity", "name", "refused")
                            if k in d})


def load_autograde(notes_dir, a: str, s: str) -> AutogradeRecord | None:
    d = _load(notes_path(notes_dir, a, s, "autograde"))
    if d is None:
        return None
    runs = {}
    for name, r in (d.get("notebooks") or {}).items():
        tests = [TestResult(**t) for t in r.get("tests", [])]
        runs[name] = NotebookRun(executed=r.get("executed", True), seconds=r.get("seconds", 0.0),
                                 slowest_cell=tuple(r.get("slowest_cell", (0.0, ""))), notes=r.get("notes", []),
                                 tests=tests)
    return AutogradeRecord(notebooks=runs, failure=d.get("failure", ""), failed_for=d.get("failed_for", ""))


def read_notes(notes_dir, a: str, s: str) -> list[str]:
    """Every note about one submission, collect's first, without repeats."""
    out = load_collect(notes_dir, a, s).notes()
    rec = load_autograde(notes_dir, a, s)
    if rec is not None:
        out += rec.notes()
    return list(dict.fromkeys(out))


@dataclass
class GradeResult:
    """The outcome of autograding one submission, as the autograde step reports it."""
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
