"""One graded test (or one self-check) as the grader defines it: which probe runs in the kernel, on which inputs
(the random draws included), judged by which judge against which expected values."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

import solutions


@dataclass(frozen=True)
class Case:
    probe: str                              # a record kind of tutorial_utils.checks.RECORDS
    judge: str                              # a judge of tutorial_utils.checks.JUDGES ("" for a self-check)
    make_inputs: Callable[[], dict]         # seeded: the same inputs every time
    expected: Callable[[dict], dict]        # from the reference, on those inputs
    # expected values that depend on what the student's code did (the blanks after a value are judged on that
    # value as the code held it): (inputs, record) -> more expected values, computed here, never in the kernel
    on_record: Callable[[dict, object], dict] | None = None

    def expected_for(self, inputs: dict, expected: dict, rec) -> dict:
        return {**expected, **self.on_record(inputs, rec)} if self.on_record else expected


# inputs that are the notebook's own constants (the schedule the notebook builds), not a test's data: they may be
# the same in a graded test and a self-check
CONSTANTS = ("betas", "alphas", "alpha_bars", "T")


def schedule_tensors(T: int = 1000) -> dict:
    s = solutions.Schedule.linear(T)
    return {"betas": s.betas, "alphas": s.alphas, "alpha_bars": s.alpha_bars}


def images(g: torch.Generator, n: int, uniform: bool = False) -> torch.Tensor:
    """n MNIST-shaped images: uniform in [-1, 1] (like data) or standard normal (like noise)."""
    return torch.rand(n, 1, 28, 28, generator=g) * 2 - 1 if uniform else torch.randn(n, 1, 28, 28, generator=g)
