"""A graded blank, declared once, and the self-check that judges it against stored values.

A ``Blank`` is the student side of one graded blank: the record its probe writes (``record``, whose ``kind`` is the
record's name on the wire), the judge that compares that record with expected values (a function, not a name), the
record field that holds its answer, and the blank as the notebook names it.  A ``SelfCheck`` is what one visible
self-check cell runs: the blanks of one probe, judged in order against the inputs and expected values stored under
its ``name`` in ``check_data.pt``.  The grader's side -- the inputs of each graded test and the reference values it
is judged against -- points at the same ``Blank`` objects from ``ddpm_instructor.graded`` (outside the bundle).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from . import core
from .core import Record, SelfCheckError

CHECK_DATA = Path(__file__).resolve().parent.parent / "check_data.pt"


@dataclass(frozen=True, eq=False)
class Blank:
    """One graded blank: ``record`` (its probe and declared fields), ``judge(record, inputs, expected) -> message``
    (raises ``SelfCheckError``), ``field`` (the record field that holds its answer) and ``label`` (the blank as the
    notebook names it)."""
    record: type[Record]
    judge: Callable[[Record, dict, dict], str]
    field: str
    label: str

    def __post_init__(self):
        if not self.record.kind:
            raise TypeError(f"{self.record.__name__} has no kind: the blank {self.label!r} cannot be sent.")
        if self.field not in getattr(self.record, "__dataclass_fields__", {}):
            raise TypeError(f"{self.record.__name__} has no field {self.field!r} (the blank {self.label!r}).")

    @property
    def kind(self) -> str:
        return self.record.kind

    def probe(self, obj, inputs: dict) -> Record:
        """Run this blank's probe on ``obj`` and read its record back as a reader would (shapes checked)."""
        rec = self.record.probe(obj, inputs)
        return self.record.from_plain(rec.to_plain(inputs), inputs)

    def __repr__(self):
        return f"Blank({self.label!r})"


@functools.lru_cache(maxsize=1)
def _check_data() -> dict:
    return torch.load(CHECK_DATA, weights_only=True)


@dataclass(frozen=True, eq=False)
class SelfCheck:
    """One self-check: the blanks of one probe, judged in order on the inputs stored under ``name``."""
    name: str
    blanks: tuple[Blank, ...]

    def __post_init__(self):
        if not self.blanks or len({b.record for b in self.blanks}) != 1:
            raise TypeError(f"the self-check {self.name!r} needs one or more blanks of one record.")

    @property
    def record(self) -> type[Record]:
        return self.blanks[0].record

    def run(self, obj, quiet: bool = False) -> None:
        """Judge ``obj``'s blanks against the stored expected values; print one line per blank unless ``quiet``."""
        stored = _check_data()[self.name]
        token = core.STUDENT_ERROR.set(None)
        try:
            rec = self.blanks[0].probe(obj, stored["inputs"])
            for blank in self.blanks:
                try:
                    msg = blank.judge(rec, stored["inputs"], stored["expected"])
                except SelfCheckError as e:
                    raised = core.STUDENT_ERROR.get()       # the student's own error, when the message is about it
                    if raised is not None and f"raised {type(raised).__name__}" in str(e):
                        raise e from raised
                    raise
                if not quiet:
                    print("\u2713 " + msg)
        finally:
            core.STUDENT_ERROR.reset(token)

    def __repr__(self):
        return f"SelfCheck({self.name!r})"
