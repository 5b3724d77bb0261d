"""tutorial_utils/progress.py: the training run's estimate, its warning on a slow machine, its resume state."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from tutorial_utils import progress
from tutorial_utils.progress import MEASURED, TrainingRun, estimate_after, estimate_from, slow_warning
from tutorial_utils.recipe import Recipe

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("file", ["student.json", "student_fp32.json"])
def test_measured_rates_are_the_benchmarks(file):
    """MEASURED is what bench_student.py measured (the figures RESULTS.md quotes), not a number of its own."""
    data = json.loads((ROOT / "benchmarks" / file).read_text())
    for key, name in (("digit6", "unet_digit6"), ("cond", "unet_cond")):
        run = data[key]
        precision = "bf16" if run["precision"].startswith("bf16") else "fp32"
        assert MEASURED[name][precision] == pytest.approx(run["seconds_per_step"], abs=5e-4), (name, precision)
        assert MEASURED[name]["batch_size"] == run["batch_size"]


def test_estimate_after():
    assert estimate_after(900) == 30 and estimate_after(20) == 5 and estimate_after(3) == 2
    assert estimate_from(900) == 10 and estimate_from(20) == 1 and estimate_from(3) == 1
    for total in range(2, 2000):
        assert 1 <= estimate_from(total) < estimate_after(total) <= max(2, total)


def test_slow_first_steps_do_not_make_a_slow_estimate(monkeypatch, capsys, tmp_path):
    """A notebook kernel's first steps are slower (one-off costs): notebook 4's laptop run took 0.34 s per step over
    its first ten steps and 0.16 s over all 800.  The estimate must come from the steps after them, and must not warn
    a student whose machine is as fast as the measured one."""
    clock, run, (model, opt, sch, ema) = _timed_run(monkeypatch, tmp_path, steps=800, measured=0.16)
    with run:
        _loop(run, model, opt, sch, ema, 10, seconds_per_step=0.34, clock=clock)
        _loop(run, model, opt, sch, ema, 25, seconds_per_step=0.16, clock=clock, first=11)
    out = capsys.readouterr().out
    assert "after 30 steps: 0.16 s per step, so this run should take about 2.2 min" in out, out
    assert "over 2x" not in out


def test_slow_warning_only_over_twice_the_measured_rate():
    measured = json.loads((ROOT / "benchmarks" / "student_fp32.json").read_text())["digit6"]
    rate, steps = MEASURED["unet_digit6"]["fp32"], measured["steps"]
    ok = slow_warning("unet_digit6", "fp32", 128, "cpu", 2 * rate, steps)
    slow = slow_warning("unet_digit6", "fp32", 128, "cpu", 2 * rate + 0.01, steps)
    assert ok is None and slow is not None
    # the measured duration of these steps, as the benchmark's json has it (to the minute's tenth)
    assert progress._minutes(measured["train_seconds"]) in slow, (slow, measured["train_seconds"])
    for advice in ("close other programs", "stop it", "shipped weights", f"recipe.replace(steps={steps // 3})"):
        assert advice in slow
    # no measurement to compare with: a GPU, another batch size, another model
    assert slow_warning("unet_digit6", "fp32", 128, "cuda", 10.0, 900) is None
    assert slow_warning("unet_digit6", "fp32", 64, "cpu", 10.0, 900) is None
    assert slow_warning("unet_flow", "fp32", 128, "cpu", 10.0, 900) is None


class _Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _parts(steps=10, seed=0):
    torch.manual_seed(seed)
    model = nn.Linear(4, 4)
    recipe = Recipe(steps=steps, batch_size=128, warmup=2, ema=0.9, amp="none")
    opt = recipe.optimizer(model)
    return recipe, model, opt, recipe.scheduler(opt), recipe.ema_model(model)


def _timed_run(monkeypatch, tmp_path, steps, measured):
    """A TrainingRun of a tiny model on a fake clock, with `measured` s per step as the course's measurement."""
    clock = _Clock()
    monkeypatch.setattr(progress.time, "time", clock)
    recipe, model, opt, sch, ema = _parts(steps=steps)
    monkeypatch.setitem(MEASURED, "tiny", {"batch_size": 128, "bf16": measured, "fp32": measured})
    return clock, TrainingRun("tiny", recipe, model, opt, sch, ema, directory=tmp_path, every=0), (model, opt, sch, ema)


def _loop(run, model, opt, scheduler, ema, steps, stop_at=None, seconds_per_step=0.0, clock=None, first=1):
    """A stand-in for the notebook's loop: one optimiser step per call of on_step; the stop button at `stop_at`."""
    for step in range(first, first + steps):
        loss = model(torch.ones(2, 4)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        scheduler.step()
        ema.update_parameters(model)
        if clock is not None:
            clock.now += seconds_per_step
        run.on_step(step, loss.item())
        if stop_at == step:
            raise KeyboardInterrupt


def test_prints_the_estimate_and_the_warning(monkeypatch, capsys, tmp_path):
    clock, run, (model, opt, sch, ema) = _timed_run(monkeypatch, tmp_path, steps=900, measured=0.1)
    recipe = run.recipe
    with run:
        _loop(run, model, opt, sch, ema, 32, seconds_per_step=0.5, clock=clock)
    out = capsys.readouterr().out
    assert "after 30 steps: 0.50 s per step, so this run should take about 7.5 min (7.2 min left)" in out
    assert "over 2x the 1.5 min these 900 steps took" in out
    run = TrainingRun("tiny", recipe, *_parts(steps=900)[1:], directory=tmp_path, every=0)
    with run:
        _loop(run, run.model, run.optimizer, run.scheduler, run.ema, 32, seconds_per_step=0.15, clock=clock)
    out = capsys.readouterr().out
    assert "0.15 s per step" in out and "over 2x" not in out


def test_stop_keeps_what_was_trained_and_a_rerun_resumes(tmp_path, capsys):
    recipe, model, opt, sch, ema = _parts(steps=10)
    run = TrainingRun("tiny", recipe, model, opt, sch, ema, directory=tmp_path, profile="smoke", every=3)
    with run:                                          # the KeyboardInterrupt ends the run, not the cell
        _loop(run, model, opt, sch, ema, run.steps_left, stop_at=4)
    assert run.stopped and run.steps_done == 4 and run.steps_left == 6 and not run.finished
    assert "Stopped at step 4 of 10" in capsys.readouterr().out
    saved = torch.load(tmp_path / "tiny.resume.pt", weights_only=True)
    assert saved["steps_done"] == 4 and len(saved["losses"]) == 4
    reached = {k: v.clone() for k, v in model.state_dict().items()}
    lr_reached = opt.param_groups[0]["lr"]

    # a fresh kernel: new objects, the same recipe and profile -> resumes
    recipe2, model2, opt2, sch2, ema2 = _parts(steps=10, seed=1)
    run2 = TrainingRun("tiny", recipe2, model2, opt2, sch2, ema2, directory=tmp_path, profile="smoke", every=3)
    assert run2.resumed and run2.steps_done == 4 and run2.steps_left == 6
    for k, v in model2.state_dict().items():
        assert torch.equal(v, reached[k])
    assert opt2.param_groups[0]["lr"] == pytest.approx(lr_reached)
    assert int(ema2.n_averaged) == 4
    with run2:
        _loop(run2, model2, opt2, sch2, ema2, run2.steps_left)
    assert "resuming your run at step 4 of 10" in capsys.readouterr().out
    assert run2.finished and run2.steps_done == 10 and len(run2.losses) == 10
    assert not (tmp_path / "tiny.resume.pt").exists()      # a finished run leaves no resume state


def test_periodic_save_survives_a_dead_kernel(tmp_path):
    recipe, model, opt, sch, ema = _parts(steps=10)
    run = TrainingRun("tiny", recipe, model, opt, sch, ema, directory=tmp_path, every=3)
    run.__enter__()
    _loop(run, model, opt, sch, ema, 7)                    # then the laptop is closed: no __exit__
    saved = torch.load(tmp_path / "tiny.resume.pt", weights_only=True)
    assert saved["steps_done"] == 6                        # the last multiple of `every`


def test_another_recipe_starts_afresh(tmp_path, capsys):
    recipe, model, opt, sch, ema = _parts(steps=10)
    run = TrainingRun("tiny", recipe, model, opt, sch, ema, directory=tmp_path, every=3)
    with run:
        _loop(run, model, opt, sch, ema, 10, stop_at=4)
    other = Recipe(steps=12, batch_size=128, warmup=2, ema=0.9, amp="none")
    m = nn.Linear(4, 4)
    o = other.optimizer(m)
    run2 = TrainingRun("tiny", other, m, o, other.scheduler(o), other.ema_model(m), directory=tmp_path)
    assert not run2.resumed and run2.steps_done == 0
    assert "another recipe or profile; starting afresh" in capsys.readouterr().out
    wrong = nn.Linear(4, 5)                                # the same recipe, another network
    o = recipe.optimizer(wrong)
    run3 = TrainingRun("tiny", recipe, wrong, o, recipe.scheduler(o), recipe.ema_model(wrong), directory=tmp_path)
    assert not run3.resumed and "does not fit this network" in capsys.readouterr().out
