"""Notebook 2 (the forward process in closed form): ``linear_beta_schedule`` and ``q_sample`` -- their probes,
records and judges."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from .core import (ABSENT, FILL_IN, Obs, Record, Text, call, call_each, capture_locals, close, err_text, expect, fail,
                   fresh, grader_draws, local, patched_globals, usable)

from .blank import Blank, SelfCheck
SCHEDULE_GLOBALS = ("betas", "alphas", "alpha_bars")


# =========================================================================== linear_beta_schedule
@dataclass
class ScheduleRecord(Record):
    """``linear_beta_schedule(*args)`` for each of the grader's argument lists."""
    kind = "calls"
    results: list       # per argument list: the returned betas, float (timesteps,)
    errors: list        # per argument list: what the call raised ("" if nothing)

    @staticmethod
    def spec(inputs):
        return {"results": [Obs((int(a[0]),)) for a in inputs["args"]], "errors": [Text()] * len(inputs["args"])}

    @classmethod
    def probe(cls, fn, inputs):
        results, errors, _ = call_each(fn, inputs["args"])
        return cls(results, errors)


def judge_schedule(rec: ScheduleRecord, inputs: dict, exp: dict) -> str:
    for k, (args, got, err, want) in enumerate(zip(inputs["args"], rec.results, rec.errors, exp["results"])):
        call = f"linear_beta_schedule{tuple(args)}"
        got = expect(got, call, raised=err and f"{call} raised {err}.", shape_hint=" \u2014 one \u03b2 per timestep",
                     none="linear_beta_schedule returned None \u2014 " + FILL_IN + " (`return None`): return the "
                          "`timesteps` values of \u03b2 spaced evenly from beta_start to beta_end (hint: torch.linspace).")
        b0, bT = got[0].item(), got[-1].item()
        if k and not close(got, want, atol=1e-7, rtol=1e-5):     # the first call had the defaults right
            fail(f"{call} does not give the expected schedule \u2014 use the arguments timesteps, beta_start and "
                 "beta_end instead of fixed numbers.")
        if abs(b0 - want[0].item()) > 1e-8 + 1e-6 * abs(want[0].item()):
            fail(f"wrong endpoint: {call}[0] = {b0:.6g}, expected beta_start = {want[0].item():.6g}.")
        if abs(bT - want[-1].item()) > 1e-7 + 1e-6 * abs(want[-1].item()):
            fail(f"wrong endpoint: {call}[-1] = {bT:.6g}, expected beta_end = {want[-1].item():.6g} "
                 "(the last \u03b2 must be beta_end itself, not one step before it).")
        if len(got) > 2:
            steps = got.double().diff()
            if not torch.allclose(steps, steps.mean().expand_as(steps), atol=1e-8):
                fail("the betas are not evenly spaced: consecutive differences range from "
                     f"{steps.min().item():.3g} to {steps.max().item():.3g}; a linear schedule has one constant step.")
        if not close(got, want, atol=1e-7, rtol=1e-5):
            fail(f"{call} does not give the expected schedule \u2014 use the arguments timesteps, beta_start and "
                 "beta_end instead of fixed numbers.")
    first = exp["results"][0]
    return (f"linear_beta_schedule: {len(first)} values from {first[0].item():.1e} to {first[-1].item():.1e}, "
            "evenly spaced; other lengths and ranges right too.")


# =========================================================================== q_sample
@dataclass
class QSampleRecord(Record):
    """``q_sample(x0, t, noise)`` on the grader's batch, with the grader's schedule in the notebook globals: its
    result and two named locals; the same call with x0 = 0 (the pure-noise part, for the variance hint); and
    ``q_sample(x0, t)``, whose ``torch.randn_like`` draw is the grader's ``fresh_noise``."""
    kind = "q_sample"
    out: object
    error: str
    sqrt_alpha_bar: object
    sqrt_one_minus_alpha_bar: object
    zero_out: object
    zero_error: str
    fresh_out: object
    fresh_error: str

    @staticmethod
    def spec(inputs):
        img = Obs(tuple(inputs["x0"].shape))
        coef = Obs(tuple(inputs["x0"].shape), fit="broadcast")
        return {"out": img, "error": Text(), "sqrt_alpha_bar": coef, "sqrt_one_minus_alpha_bar": coef,
                "zero_out": img, "zero_error": Text(), "fresh_out": img, "fresh_error": Text()}

    @classmethod
    def probe(cls, fn, inputs):
        s = {k: fresh(inputs[k]) for k in SCHEDULE_GLOBALS}
        x0, t, noise = inputs["x0"], inputs["t"], inputs["noise"]
        with patched_globals(fn, **s):
            out, loc, err = capture_locals(fn, fresh(x0), fresh(t), fresh(noise), names=_Q_LOCALS)
            zero_out, zero_err = call(fn, torch.zeros_like(x0), fresh(t), fresh(noise))
            with grader_draws(inputs["fresh_noise"]):
                fresh_out, fresh_err = call(fn, fresh(x0), fresh(t))
        return cls(out, err_text(err), local(loc, "sqrt_alpha_bar"), local(loc, "sqrt_one_minus_alpha_bar"),
                   zero_out, err_text(zero_err), fresh_out, err_text(fresh_err))


_Q_LOCALS = ("sqrt_alpha_bar", "sqrt_one_minus_alpha_bar")
_Q_HINT = {"sqrt_alpha_bar": "\u1fb1_t", "sqrt_one_minus_alpha_bar": "1 - \u1fb1_t"}


def _judge_coefficient(name: str, rec: QSampleRecord, inputs: dict, exp: dict) -> None:
    value, shape = getattr(rec, name), tuple(inputs["x0"].shape)
    if value is ABSENT:
        if rec.error:
            fail(f"q_sample raised {rec.error} before it set {name}.")
        if close(rec.out, exp["out"]):
            return                      # the line was folded into the return, which is right: so is this blank
        fail(f"q_sample no longer sets {name}: keep the blank's line `{name} = ...` so it can be judged on its "
             "own (or return the right x_t).")
    v = expect(value, name, shape_hint=" \u2014 it should be (B, 1, 1, 1), which is what extract returns, so that it "
               "broadcasts against the images",
               none=f"{name} is still None \u2014 {FILL_IN}: pick the right value for each image's timestep t "
                    "(hint: extract(..., t, x_start.shape)).")
    v = torch.broadcast_to(v.double(), shape)
    target = torch.broadcast_to(exp[name].double(), shape)
    if torch.allclose(v, target, atol=1e-5, rtol=1e-4):
        return
    t, ab = inputs["t"], exp["alpha_bar"]
    k = len(t) - 1
    hint = f" It looks like {_Q_HINT[name]} without the square root." if torch.allclose(
        v, target ** 2, atol=1e-5, rtol=1e-4) else ""
    fail(f"{name} has the wrong values: at t = {t[k].item()} it is {v[k].flatten()[0].item():.4f}, expected "
         f"{target[k].flatten()[0].item():.4f} (\u1fb1_t = {ab[k].item():.4f}).{hint}")


def _judge_q_return(rec: QSampleRecord, inputs: dict, exp: dict) -> None:
    out = expect(rec.out, "q_sample's result", raised=rec.error and f"q_sample raised {rec.error}.",
                 shape_hint=" (the shape of x_start)",
                 none="q_sample returned None \u2014 " + FILL_IN + " (`return None`): return x_t, the noised images.")
    if close(out, exp["out"]):
        if rec.fresh_error or not close(rec.fresh_out, exp["fresh_out"]):
            fail("q_sample(x_start, t) without noise should draw noise = torch.randn_like(x_start) and return "
                 "sqrt(\u1fb1_t)\u00b7x_0 + sqrt(1 - \u1fb1_t)\u00b7noise with it"
                 + (f" (it raised {rec.fresh_error})." if rec.fresh_error else "."))
        return
    msg = "q_sample's result differs from sqrt(\u1fb1_t)\u00b7x_0 + sqrt(1 - \u1fb1_t)\u00b7\u03b5"
    out0, k = rec.zero_out, min(2, len(inputs["t"]) - 1)
    if usable(out0):      # x_0 = 0 leaves sqrt(1 - ᾱ_t) ε: variance 1 - ᾱ_t
        var, want_var = out0[k].double().var().item(), exp["zero_var"][k].item()
        msg += (f"; with x_0 = 0 at t = {inputs['t'][k].item()} your x_t has variance {var:.4f} but it should be "
                f"1 - \u1fb1_t = {want_var:.4f} (off by {100 * (var / want_var - 1):+.1f}%)")
    fail(msg + ". Combine the two coefficients with x_start and noise.")


def judge_q_sample(part: str, rec: QSampleRecord, inputs: dict, exp: dict) -> str:
    """One blank of ``q_sample``: ``sqrt_alpha_bar``, ``sqrt_one_minus_alpha_bar`` or ``return``."""
    if part == "return":
        _judge_q_return(rec, inputs, exp)
        k = len(inputs["t"]) - 1
        return (f"q_sample: shape {tuple(inputs['x0'].shape)}; at t = {inputs['t'][k].item()}, sqrt(\u1fb1_t) = "
                f"{exp['sqrt_alpha_bar'][k].item():.4f} and sqrt(1 - \u1fb1_t) = "
                f"{exp['sqrt_one_minus_alpha_bar'][k].item():.4f} \u2014 x_t is right.")
    _judge_coefficient(part, rec, inputs, exp)
    return f"{part} is right for every image's timestep."


# =========================================================================== the blanks, declared once, and their self-checks
LINEAR_BETA_SCHEDULE = Blank(ScheduleRecord, judge_schedule, "results", "linear_beta_schedule: the returned betas")
Q_SAMPLE_SQRT_ALPHA_BAR = Blank(QSampleRecord, functools.partial(judge_q_sample, "sqrt_alpha_bar"), "sqrt_alpha_bar",
                                "q_sample: sqrt_alpha_bar")
Q_SAMPLE_SQRT_ONE_MINUS_ALPHA_BAR = Blank(QSampleRecord, functools.partial(judge_q_sample, "sqrt_one_minus_alpha_bar"),
                                          "sqrt_one_minus_alpha_bar", "q_sample: sqrt_one_minus_alpha_bar")
Q_SAMPLE_RETURN = Blank(QSampleRecord, functools.partial(judge_q_sample, "return"), "out", "q_sample: the returned x_t")

LINEAR_BETA_SCHEDULE_CHECK = SelfCheck("linear_beta_schedule", (LINEAR_BETA_SCHEDULE,))
Q_SAMPLE_CHECK = SelfCheck("q_sample", (Q_SAMPLE_SQRT_ALPHA_BAR, Q_SAMPLE_SQRT_ONE_MINUS_ALPHA_BAR, Q_SAMPLE_RETURN))
CHECKS = (LINEAR_BETA_SCHEDULE_CHECK, Q_SAMPLE_CHECK)


def check_linear_beta_schedule(fn, quiet: bool = False) -> None:
    """Self-check for ``linear_beta_schedule(timesteps, beta_start=1e-4, beta_end=0.02)``."""
    LINEAR_BETA_SCHEDULE_CHECK.run(fn, quiet)


def check_q_sample(fn, quiet: bool = False) -> None:
    """Self-check for ``q_sample(x_start, t, noise=None)``: x_t = sqrt(\u1fb1_t) x_0 + sqrt(1 - \u1fb1_t) \u03b5."""
    Q_SAMPLE_CHECK.run(fn, quiet)
