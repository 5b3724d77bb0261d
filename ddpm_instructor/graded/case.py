"""The grader's side of a graded blank, declared once per grade id: the blank (the ``Blank`` object of
``tutorial_utils.checks``: its record, probe and judge), the test's inputs (the random draws included), the expected
values from the reference, and the quantities the blank's line combines (which tests/test_bundle_answers.py feeds to
everything a bundle ships).  And the stored data of each self-check, declared beside the ``SelfCheck`` it serves."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

import solutions
from tutorial_utils.checks import Blank, SelfCheck

# (inputs, expected) -> one (operands, answers) pair per call the probe makes: the quantities the blank's line combines,
# named as the notebooks and the reference name them, and the values no shipped function may compute from them
Operands = Callable[[dict, dict], list]


@dataclass(frozen=True)
class Graded:
    grade_id: str                           # the graded test cell's nbgrader grade id
    blank: Blank                            # what the kernel runs and how the record is judged
    make_inputs: Callable[[], dict]         # seeded: the same inputs every time
    expected: Callable[[dict], dict]        # from the reference, on those inputs
    operands: Operands                      # for tests/test_bundle_answers.py
    # expected values that depend on what the student's code did (the blanks after a value are judged on that
    # value as the code held it): (inputs, record) -> more expected values, computed here, never in the kernel
    on_record: Callable[[dict, object], dict] | None = None

    @property
    def kind(self) -> str:
        return self.blank.kind

    def expected_for(self, inputs: dict, expected: dict, rec) -> dict:
        return {**expected, **self.on_record(inputs, rec)} if self.on_record else expected


@dataclass(frozen=True)
class CheckData:
    """The fixed inputs and expected values one self-check compares with (stored in ``check_data.pt``)."""
    check: SelfCheck
    make_inputs: Callable[[], dict]
    expected: Callable[[dict], dict]


def calls(*names: str, answer: str = "result") -> Operands:
    """The operands of a blank judged on ``fn(*args)`` for each of the grader's argument lists: the arguments, named
    ``names``; the answer, each call's expected result."""
    def operands(inputs: dict, exp: dict) -> list:
        return [({**dict(zip(names, a)), "args": a}, {answer: res}) for a, res in zip(inputs["args"], exp["results"])]
    return operands


# inputs that are the notebook's own constants (the schedule the notebook builds), not a test's data: they may be
# the same in a graded test and a self-check
CONSTANTS = ("betas", "alphas", "alpha_bars", "T")


def schedule_tensors(T: int = 1000) -> dict:
    s = solutions.Schedule.linear(T)
    return {"betas": s.betas, "alphas": s.alphas, "alpha_bars": s.alpha_bars}


def images(g: torch.Generator, n: int, uniform: bool = False) -> torch.Tensor:
    """n MNIST-shaped images: uniform in [-1, 1] (like data) or standard normal (like noise)."""
    return torch.rand(n, 1, 28, 28, generator=g) * 2 - 1 if uniform else torch.randn(n, 1, 28, 28, generator=g)
