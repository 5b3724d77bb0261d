"""A training run that tells you what it costs and keeps what it did (notebooks 4 and 6).

    run = TrainingRun("unet_digit6", recipe, model, optimizer, scheduler, ema, device=device, profile=profile.name)
    with run:                                        # the stop button (■) ends the run, keeping what it trained
        if run.steps_left:
            train_ddpm(..., max_steps=run.steps_left, on_step=run.on_step)
    losses, elapsed = run.losses, run.seconds

* **Its cost.** After the first few steps it prints the measured time per step and the run's expected duration. In
  the ``laptop`` recipe on a CPU it compares that with the course's measurement on a quiet 2-core CPU
  (``MEASURED``, from ``benchmarks/student.json`` and ``student_fp32.json``, quoted in ``benchmarks/RESULTS.md``,
  "Your own model"): when your run would take over twice as long, it says so and what you can do.
* **What it did.** Every ``every`` steps, and when you stop it, it saves the run's state (the weights, the optimiser,
  the learning-rate schedule, the EMA, the losses so far) to ``runs/mine/<name>.resume.pt``. Running the training
  cell again resumes from there, as long as the recipe and the profile are the same; a finished run removes the file.
  Stopped part-way, the cells after it work on the weights reached so far.

Nothing here is an answer to a notebook: the loop is yours (notebook 4) or ``solutions.train`` (notebook 6); this only
receives its ``on_step(step, loss)`` calls.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from torch import nn

__all__ = ["TrainingRun", "MEASURED", "RESUME_SUFFIX", "estimate_after", "estimate_from", "slow_warning"]

RESUME_SUFFIX = ".resume.pt"
SLOW_FACTOR = 2.0            # warn when the run would take more than this many times the measured duration
# Seconds per training step of the `laptop` recipe (batch 128) on a quiet 2-core CPU with bf16 units (an AMD EPYC,
# Zen 4), measured by `benchmarks/bench_recipe.py` in both precisions: bf16 autocast (benchmarks/student.json) and
# fp32 forced with DDPM_AMP=none (student_fp32.json); benchmarks/RESULTS.md, "Your own model", quotes them.
# tests/test_progress.py checks these against the json files.
MEASURED = {
    "unet_digit6": {"batch_size": 128, "bf16": 0.102, "fp32": 0.153},
    "unet_cond": {"batch_size": 128, "bf16": 0.091, "fp32": 0.124},
}
MEASURED_ON = {"bf16": "a quiet 2-core CPU with bf16 units", "fp32": "a quiet 2-core CPU in fp32"}


def _minutes(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


def estimate_after(total_steps: int) -> int:
    """The step after which the duration is estimated: 30, or fewer for a short run (at least 2)."""
    return max(2, min(30, total_steps // 4))


def estimate_from(total_steps: int) -> int:
    """The step from whose end the rate is measured: 10, or fewer for a short run (at least 1).  The first steps
    carry one-off costs (in a notebook kernel the first ten steps of notebook 4's laptop run took 0.34 s each against
    0.16 s for the whole run), so the rate comes from the steps after them."""
    return max(1, min(10, estimate_after(total_steps) // 3))


def slow_warning(name: str, precision: str, batch_size: int, device_type: str, seconds_per_step: float,
                 steps: int) -> str | None:
    """The advice to print when ``steps`` at ``seconds_per_step`` take over ``SLOW_FACTOR`` times what they took
    where the course measured them; None when they do not, or when there is no measurement to compare with."""
    ref = MEASURED.get(name)
    if ref is None or device_type != "cpu" or batch_size != ref["batch_size"] or precision not in ref:
        return None
    if seconds_per_step <= SLOW_FACTOR * ref[precision]:
        return None
    return (f"That is over {SLOW_FACTOR:g}x the {_minutes(ref[precision] * steps)} these {steps} steps took on "
            f"{MEASURED_ON[precision]} ({ref[precision]:.3f} s per step; benchmarks/RESULTS.md, \"Your own model\"): "
            f"your machine is slower or busy. What you can do:\n"
            f"  * close other programs (other notebooks' kernels, a browser with many tabs, a video call): the run "
            f"speeds up at once;\n"
            f"  * or stop it (the ■ button): what it trained is kept and the cells below work with it (a cell that "
            f"needs weights passing the sanity check takes the shipped weights instead, and says so); running this "
            f"cell again resumes;\n"
            f"  * or train a shorter run: stop it, run `recipe = recipe.replace(steps={max(steps // 3, 2)})` in a new "
            f"cell, then this cell again (a third of the steps: less sharp digits).")


class TrainingRun:
    """One training run of ``name``: its progress, its estimate, its resume state (see the module's docstring)."""

    def __init__(self, name: str, recipe, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler=None,
                 ema=None, *, device="cpu", profile: str = "", every: int = 200, directory: str | os.PathLike | None = None,
                 resume: bool = True, quiet: bool = False):
        from .checkpoints import MY_CHECKPOINT_DIR

        self.name, self.recipe, self.model, self.optimizer = name, recipe, model, optimizer
        self.scheduler, self.ema, self.profile, self.every = scheduler, ema, profile, every
        self.device = torch.device(device)
        self.path = Path(directory if directory is not None else MY_CHECKPOINT_DIR) / f"{name}{RESUME_SUFFIX}"
        self.precision = "bf16" if recipe.uses_bf16(self.device) else "fp32"
        self.losses: list[float] = []
        self.seconds_before = 0.0          # training time of the earlier sessions of a resumed run
        self.steps_before = 0
        self.stopped = False
        self._quiet = quiet
        self._start = self._end = self._first_step_end = None
        self._session_steps = 0
        self.resumed = resume and self._resume()

    # ------------------------------------------------------------------ what the cell reads
    @property
    def total_steps(self) -> int:
        return self.recipe.steps

    @property
    def steps_done(self) -> int:
        return len(self.losses)

    @property
    def steps_left(self) -> int:
        return max(0, self.total_steps - self.steps_done)

    @property
    def finished(self) -> bool:
        return self.steps_left == 0

    @property
    def seconds(self) -> float:
        """Training time in seconds, earlier sessions of a resumed run included."""
        now = time.time() if self._start is not None and self._end is None else self._end
        return self.seconds_before + ((now - self._start) if self._start is not None else 0.0)

    def summary(self) -> str:
        if not self.losses:
            return "no training step done yet: the cells below use the untrained network (or the shipped weights)"
        tail = self.losses[-20:]
        state = "" if self.finished else f" (stopped: {self.steps_left} of {self.total_steps} left)"
        return (f"{self.steps_done} steps in {self.seconds:.0f} s ({self.seconds / self.steps_done:.2f} s per step){state}; "
                f"loss {self.losses[0]:.3f} -> {sum(tail) / len(tail):.3f} (mean of the last {len(tail)})")

    # ------------------------------------------------------------------ the loop's hook
    def on_step(self, step: int, loss: float) -> None:
        """Called by the loop after each of its steps (``step`` counts from 1 in this call)."""
        now = time.time()
        if self._start is None:                      # called outside `with run:`: time from here
            self._start = now
        self.losses.append(float(loss))
        self._session_steps = step
        total = self.total_steps - self.steps_before
        first = estimate_from(total)
        if step == first:
            self._first_step_end = now
        if step == estimate_after(total) and self._first_step_end is not None and not self._quiet:
            rate = (now - self._first_step_end) / (step - first)
            expected = (self._first_step_end - self._start) + rate * (total - first)
            resumed = f" (the {total} left of {self.total_steps})" if self.steps_before else ""
            print(f"after {step} steps: {rate:.2f} s per step, so this run{resumed} should take about "
                  f"{_minutes(expected)} ({_minutes(max(0.0, expected - (now - self._start)))} left)", flush=True)
            advice = slow_warning(self.name, self.precision, self.recipe.batch_size, self.device.type, rate, total)
            if advice:
                print(advice, flush=True)
        if self.every and self.steps_done % self.every == 0 and not self.finished:
            self.save()

    # ------------------------------------------------------------------ the cell's `with run:`
    def __enter__(self) -> "TrainingRun":
        self._start, self._end, self._first_step_end = time.time(), None, None
        if not self._quiet:
            if self.finished:
                print(f"{self.name}: all {self.total_steps} steps are done already", flush=True)
            elif self.steps_before:
                print(f"{self.name}: resuming your run at step {self.steps_before} of {self.total_steps} "
                      f"(saved in {self._shown_path()}; to start afresh instead, delete that file and run this "
                      f"cell again)", flush=True)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._end = time.time()
        if exc_type is KeyboardInterrupt:
            self.stopped = True
            if self.losses:
                self.save()
            print(f"\nStopped at step {self.steps_done} of {self.total_steps}. What it trained is kept: the cells "
                  f"below use these weights (the sanity check says whether they are good enough yet)"
                  + (f", and running this cell again resumes from step {self.steps_done} ({self._shown_path()})."
                     if self.losses else "."), flush=True)
            return True                              # the cell ends normally: the cells below still run
        if exc_type is None and self.finished and self.path.exists():
            self.path.unlink()                       # a finished run needs no resume state
        return False

    # ------------------------------------------------------------------ the resume state
    def _identity(self) -> dict:
        return {"name": self.name, "profile": self.profile, "recipe": dict(self.recipe.__dict__)}

    def save(self) -> Path:
        """Write the run's state (atomically: a run stopped while saving keeps the previous state)."""
        state = {**self._identity(), "steps_done": self.steps_done, "losses": list(self.losses),
                 "seconds": self.seconds, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                 "ema": self.ema.state_dict() if self.ema is not None else None}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.path)
        return self.path

    def _resume(self) -> bool:
        if not self.path.is_file():
            return False
        try:
            state = torch.load(self.path, map_location=self.device, weights_only=True)
        except Exception as e:                       # damaged (e.g. a full disk): say so, start afresh
            self._say(f"{self.name}: the saved run {self._shown_path()} cannot be read ({type(e).__name__}: {e}); "
                      f"starting afresh")
            return False
        identity = {k: state.get(k) for k in ("name", "profile", "recipe")}
        if identity != self._identity():
            self._say(f"{self.name}: the saved run {self._shown_path()} was another recipe or profile; starting "
                      f"afresh (it is replaced at the first save)")
            return False
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None and state["scheduler"] is not None:
                self.scheduler.load_state_dict(state["scheduler"])
            if self.ema is not None and state["ema"] is not None:
                self.ema.load_state_dict(state["ema"])
        except (RuntimeError, KeyError, ValueError) as e:   # another network than the one saved
            self._say(f"{self.name}: the saved run {self._shown_path()} does not fit this network ({e}); "
                      f"starting afresh")
            return False
        self.losses = [float(x) for x in state["losses"]]
        self.steps_before = len(self.losses)
        self.seconds_before = float(state["seconds"])
        return True

    def _say(self, text: str) -> None:
        if not self._quiet:
            print(text, flush=True)

    def _shown_path(self) -> str:
        try:
            return str(self.path.relative_to(self.path.parents[2]))
        except (ValueError, IndexError):
            return str(self.path)
