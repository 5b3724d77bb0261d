"""Judges swapped in by tests/test_judging.py.  The judging child imports them by name, so they live in a module
that imports next to nothing the fork server has not already loaded (``ddpm_instructor.graded``, torch)."""
from __future__ import annotations

import os
import signal
import time

import torch

from ddpm_instructor import graded

VICTIM = "test_loss_fn"      # the one test each of these misbehaves on; the others are judged as usual


def sleepy_judge(grade_id, outputs, inputs_dir, max_points):
    if grade_id == VICTIM:
        time.sleep(120)
    return graded.judge_outputs(grade_id, outputs, inputs_dir, max_points)


def greedy_judge(grade_id, outputs, inputs_dir, max_points):
    if grade_id == VICTIM:
        torch.ones(800_000_000).sum()          # 3.2 GB
    return graded.judge_outputs(grade_id, outputs, inputs_dir, max_points)


def dying_judge(grade_id, outputs, inputs_dir, max_points):
    if grade_id == VICTIM:
        os.kill(os.getpid(), signal.SIGKILL)
    return graded.judge_outputs(grade_id, outputs, inputs_dir, max_points)
