"""Notebook 8 (flow matching): the straight path, its velocity target, the Euler and Heun steps and the guided
velocity -- their probes, records and judges.  Convention (notebook 8's): t = 0 is the data, t = 1 the noise."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .core import (FILL_IN, CallsRecord, Num, Obs, Record, Text, call, close, err_text, expect, fail, first_hint, fresh,
                   patched_globals)

from .blank import Blank, SelfCheck
TIME_SCALE = 1000.0          # what notebook 8's `velocity` multiplies t by (the embedding's range)


def _each(rec, inputs, exp, call_text, label, none):
    """Yield (args, the usable result, the expected result) for each argument list, failing on errors and None."""
    for args, got, err, want in zip(inputs["args"], rec.results, rec.errors, exp["results"]):
        text = call_text(args)
        yield args, expect(got, label, raised=err and f"{text} raised {err}.", shape_hint=" (the shape of the images)",
                           none=none), want, text


# =========================================================================== the interpolant
class InterpolantRecord(CallsRecord):
    kind = "flow_interpolant"


# the common mistakes, in the order they are tried; their values: ddpm_instructor.graded.flow (the judges only compare)
INTERPOLANT_HINTS = (
    ("reversed", " That path runs the other way (noise at t = 0): in this notebook t = 0 is the data and t = 1 the noise."),
    ("square_roots", " Those are square roots of the weights (a variance-preserving arc); the straight path uses 1 - t and t."),
)


def judge_interpolant(rec: InterpolantRecord, inputs: dict, exp: dict) -> str:
    """``flow_interpolant(x_0, noise, t)`` = (1 - t) x_0 + t ε."""
    for i, ((x0, noise, t), got, want, text) in enumerate(_each(
            rec, inputs, exp, lambda a: f"flow_interpolant(x_0, noise, t={[round(v, 3) for v in a[2].tolist()]})",
            "x_t", "x_t is still None \u2014 " + FILL_IN + " (`x_t = None`): (1 - t)\u00b7x_0 + t\u00b7noise.")):
        if close(got, want, atol=1e-5):
            continue
        hint = first_hint(got, exp["hints"][i], INTERPOLANT_HINTS, atol=1e-5)
        fail(f"{text}: x_t differs from (1 - t)\u00b7x_0 + t\u00b7noise by up to "
             f"{(got.double() - want).abs().max().item():.4f}.{hint}")
    return "flow_interpolant: x_t right; x_0 at t = 0, the noise at t = 1, a straight line in between."


# =========================================================================== the velocity target
class TargetRecord(CallsRecord):
    kind = "velocity_target"


def judge_target(rec: TargetRecord, inputs: dict, exp: dict) -> str:
    """``velocity_target(x_0, noise)`` = ε - x_0."""
    for i, ((x0, noise), got, want, text) in enumerate(_each(
            rec, inputs, exp, lambda a: "velocity_target(x_0, noise)", "target",
            "target is still None \u2014 " + FILL_IN + " (`target = None`): d x_t / dt of (1 - t)\u00b7x_0 + t\u00b7noise.")):
        if close(got, want, atol=1e-5):
            continue
        hint = ""
        if close(got, exp["hints"][i]["flipped"], atol=1e-5):
            hint = (" The sign is flipped: x_t moves from x_0 (t = 0) towards the noise (t = 1), so its velocity "
                    "is noise - x_0.")
        elif close(got, noise, atol=1e-5):
            hint = " That is DDPM's target, the noise itself; flow matching predicts the velocity d x_t / dt."
        fail(f"{text}: target is not d x_t / dt = noise - x_0.{hint}")
    return "velocity_target: u = noise - x_0, the same at every t."


# =========================================================================== the Euler step
class EulerRecord(CallsRecord):
    kind = "euler_step"


EULER_HINTS = (
    ("wrong_way", " The step goes the wrong way: h = t_next - t (negative when sampling from t = 1 to t = 0)."),
    ("plus_v", " Multiply the velocity by the step h = t_next - t."),
    ("minus_v", " Multiply the velocity by the step h = t_next - t."),
)


def judge_euler(rec: EulerRecord, inputs: dict, exp: dict) -> str:
    """``euler_step(x_t, v, t, t_next)`` = x_t + (t_next - t) v."""
    for i, ((x, v, t, tn), got, want, text) in enumerate(_each(
            rec, inputs, exp, lambda a: f"euler_step(x_t, v, t={a[2]:g}, t_next={a[3]:g})", "x_next",
            "x_next is still None \u2014 " + FILL_IN + " (`x_next = None`): x_t + (t_next - t)\u00b7v.")):
        if close(got, want, atol=1e-5):
            continue
        hint = first_hint(got, exp["hints"][i], EULER_HINTS, atol=1e-5)
        fail(f"{text}: x_next differs from x_t + (t_next - t)\u00b7v by up to "
             f"{(got.double() - want).abs().max().item():.4f}.{hint}")
    return "euler_step: x_next = x_t + (t_next - t)\u00b7v, backwards and forwards in time."


# =========================================================================== the Heun step
class LinearField:
    """A velocity field stand-in: v(x, t) = a·x + b·t, with a and b given; counts its calls."""

    def __init__(self, a: float, b: float):
        self.a, self.b, self.calls = float(a), float(b), 0

    def __call__(self, x, t):
        self.calls += 1
        return self.a * x + self.b * float(t)


@dataclass
class HeunRecord(Record):
    """``heun_step(field, x_t, t, t_next)`` for each of the grader's (t, t_next), with ``LinearField(a, b)``:
    the results and how often each step called the field."""
    kind = "heun_step"
    results: list
    errors: list
    calls: list

    @staticmethod
    def spec(inputs):
        n = len(inputs["steps"])
        return {"results": [Obs(tuple(inputs["x"].shape))] * n, "errors": [Text()] * n, "calls": [Num(int)] * n}

    @classmethod
    def probe(cls, fn, inputs):
        rec = cls([], [], [])
        for t, t_next in list(inputs["steps"]):
            field = LinearField(inputs["a"], inputs["b"])
            out, err = call(fn, field, fresh(inputs["x"]), float(t), float(t_next))
            rec.results.append(out)
            rec.errors.append(err_text(err))
            rec.calls.append(int(field.calls))
        return rec


HEUN_HINTS = (
    ("x_pred", " That is Euler's guess x_pred; Heun averages the velocities at both ends of the step."),
    ("not_halved", " Average the two velocities: h/2, not h."),
    ("second_at_t", " Evaluate the second velocity at the end of the step, (x_pred, t_next), not at t."),
    ("from_x_pred", " Start the corrected step from x_t, not from x_pred."),
)


def judge_heun(rec: HeunRecord, inputs: dict, exp: dict) -> str:
    """``heun_step``: x_t + h/2 (v(x_t, t) + v(x̃, t_next)) with the Euler guess x̃ = x_t + h v(x_t, t)."""
    for i, (t, tn) in enumerate(inputs["steps"]):
        t, tn = float(t), float(tn)
        text = f"heun_step(field, x_t, t={t:g}, t_next={tn:g})"
        got = expect(rec.results[i], "x_next", raised=rec.errors[i] and f"{text} raised {rec.errors[i]}.",
                     shape_hint=" (the shape of x_t)", none="x_next is still None \u2014 " + FILL_IN +
                     " (`x_next = None`): x_t + h/2\u00b7(v + velocity_fn(x_pred, t_next)).")
        if close(got, exp["results"][i], atol=1e-5):
            continue
        hint = first_hint(got, exp["hints"][i], HEUN_HINTS, atol=1e-5)
        fail(f"{text}: x_next differs from x_t + h/2\u00b7(v(x_t, t) + v(x_pred, t_next)) by up to "
             f"{(got.double() - exp['results'][i]).abs().max().item():.4f}.{hint}")
    return "heun_step: x_next right, two velocities per step, averaged."


# =========================================================================== the guided velocity
class SpyVelocity(nn.Module):
    """A stand-in for the flow model: v(x, s, y) = a·x + b·s/1000 + c[y] (s: the scaled time input), c one value
    per label; remembers the batch size of every call."""

    def __init__(self, a: float, b: float, c):
        super().__init__()
        self.a, self.b, self.c = float(a), float(b), c.clone().double()
        self.batches: list = []

    def forward(self, x, s, y):
        self.batches.append(int(x.shape[0]))
        return self.a * x + self.b * (s.float() / TIME_SCALE).view(-1, 1, 1, 1) + self.c[y].float().view(-1, 1, 1, 1)


def _velocity(model, x_t, t, y):
    return model(x_t, TIME_SCALE * t, y)


@dataclass
class GuidedVelocityRecord(Record):
    """``guided_velocity(model, x_t, t, y, w)`` with ``SpyVelocity`` for each of the grader's w, with the
    notebook's ``velocity`` and ``NULL_CLASS`` as the grader gives them: results, calls and the largest batch."""
    kind = "guided_velocity"
    results: list
    errors: list
    calls: list
    largest_batch: list

    @staticmethod
    def spec(inputs):
        n = len(inputs["ws"])
        return {"results": [Obs(tuple(inputs["x"].shape))] * n, "errors": [Text()] * n, "calls": [Num(int)] * n,
                "largest_batch": [Num(int)] * n}

    @classmethod
    def probe(cls, fn, inputs):
        rec = cls([], [], [], [])
        for w in list(inputs["ws"]):
            model = SpyVelocity(inputs["a"], inputs["b"], inputs["c"])
            with patched_globals(fn, velocity=_velocity, NULL_CLASS=int(inputs["null_class"]),
                                 TIME_SCALE=TIME_SCALE):
                out, err = call(fn, model, fresh(inputs["x"]), float(inputs["t"]), fresh(inputs["y"]), float(w))
            rec.results.append(out)
            rec.errors.append(err_text(err))
            rec.calls.append(len(model.batches))
            rec.largest_batch.append(max(model.batches, default=0))
        return rec


GUIDED_VELOCITY_HINTS = (
    ("other_convention", " That is the other convention, v_c + w\u00b7(v_c - v_u); this notebook uses v_u + w\u00b7(v_c - v_u), "
                         "so w = 1 means no guidance."),
    ("reversed", " The difference points the wrong way: v_c - v_u, from unconditional to conditional."),
)


def judge_guided_velocity(rec: GuidedVelocityRecord, inputs: dict, exp: dict) -> str:
    """ṽ = v_u + w (v_c - v_u), from one call of the model on a batch of 2B."""
    B = int(inputs["x"].shape[0])
    for i, w in enumerate(float(w) for w in inputs["ws"]):
        text = f"guided_velocity(model, x_t, t, y, w={w:g})"
        got = expect(rec.results[i], "v", raised=rec.errors[i] and f"{text} raised {rec.errors[i]}.",
                     shape_hint=" (the shape of x_t)", none="v is still None \u2014 " + FILL_IN + " (`v = None`): "
                     "v_cond and v_uncond from one call of velocity(...) on 2B images, then v_u + w\u00b7(v_c - v_u).")
        if not close(got, exp["results"][i], atol=1e-5):
            hint = first_hint(got, exp["hints"][i], GUIDED_VELOCITY_HINTS, atol=1e-5)
            fail(f"{text} is not v_u + w\u00b7(v_c - v_u).{hint}")
        if rec.calls[i] != 1 or rec.largest_batch[i] != 2 * B:
            fail(f"{text}: the value is right, but the model was called {rec.calls[i]} time(s) with at most "
                 f"{rec.largest_batch[i]} images; make ONE call on a batch of 2B = {2 * B} (the images twice, the "
                 "labels y then null) and split it with .chunk(2).")
    return "guided_velocity = v_u + w\u00b7(v_c - v_u), both from one call of batch 2B."


# =========================================================================== the blanks, declared once, and their self-checks
FLOW_INTERPOLANT = Blank(InterpolantRecord, judge_interpolant, "results", "flow_interpolant: x_t")
VELOCITY_TARGET = Blank(TargetRecord, judge_target, "results", "velocity_target: target")
EULER_STEP = Blank(EulerRecord, judge_euler, "results", "euler_step: x_next")
HEUN_STEP = Blank(HeunRecord, judge_heun, "results", "heun_step: x_next")
GUIDED_VELOCITY = Blank(GuidedVelocityRecord, judge_guided_velocity, "results", "guided_velocity: v")

FLOW_INTERPOLANT_CHECK = SelfCheck("flow_interpolant", (FLOW_INTERPOLANT,))
VELOCITY_TARGET_CHECK = SelfCheck("velocity_target", (VELOCITY_TARGET,))
EULER_STEP_CHECK = SelfCheck("euler_step", (EULER_STEP,))
HEUN_STEP_CHECK = SelfCheck("heun_step", (HEUN_STEP,))
GUIDED_VELOCITY_CHECK = SelfCheck("guided_velocity", (GUIDED_VELOCITY,))
CHECKS = (FLOW_INTERPOLANT_CHECK, VELOCITY_TARGET_CHECK, EULER_STEP_CHECK, HEUN_STEP_CHECK, GUIDED_VELOCITY_CHECK)


def check_flow_interpolant(fn, quiet: bool = False) -> None:
    """Self-check for ``flow_interpolant(x_0, noise, t)``: x_t = (1 - t) x_0 + t \u03b5 (notebook 8)."""
    FLOW_INTERPOLANT_CHECK.run(fn, quiet)


def check_velocity_target(fn, quiet: bool = False) -> None:
    """Self-check for ``velocity_target(x_0, noise)``: \u03b5 - x_0."""
    VELOCITY_TARGET_CHECK.run(fn, quiet)


def check_euler_step(fn, quiet: bool = False) -> None:
    """Self-check for ``euler_step(x_t, v, t, t_next)``."""
    EULER_STEP_CHECK.run(fn, quiet)


def check_heun_step(fn, quiet: bool = False) -> None:
    """Self-check for ``heun_step(velocity_fn, x_t, t, t_next)``."""
    HEUN_STEP_CHECK.run(fn, quiet)


def check_guided_velocity(fn, quiet: bool = False) -> None:
    """Self-check for ``guided_velocity(model, x_t, t, y, w)``: the value and one call of batch 2B."""
    GUIDED_VELOCITY_CHECK.run(fn, quiet)
