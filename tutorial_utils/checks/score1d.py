"""Notebook 1, part 2 (the score of the noised 1-D mixture, one probability-flow ODE step): probes, records, judges."""
from __future__ import annotations

import functools
from dataclasses import dataclass

from .core import ABSENT, FILL_IN, CallsRecord, Obs, Record, Text, call_each, close, expect, fail, first_hint, usable


from .blank import Blank, SelfCheck
# =========================================================================== the score of a Gaussian mixture
@dataclass
class ScoreRecord(Record):
    """``mixture_score(x, alpha_bar, means, stds, weights)`` for each of the grader's argument lists: the result
    (the shape of x) and the blanks' locals ``m`` and ``v`` (one entry per component)."""
    kind = "mixture_score"
    results: list
    errors: list
    m: list
    v: list

    @staticmethod
    def spec(inputs):
        args = inputs["args"]
        per_comp = [Obs(tuple(a[2].shape)) for a in args]              # one entry per component
        return {"results": [Obs(tuple(a[0].shape)) for a in args], "errors": [Text()] * len(args),
                "m": per_comp, "v": list(per_comp)}

    @classmethod
    def probe(cls, fn, inputs):
        results, errors, locs = call_each(fn, inputs["args"], names=("m", "v"))
        return cls(results, errors, [loc.get("m", ABSENT) for loc in locs], [loc.get("v", ABSENT) for loc in locs])


_NONE = {"m": "m is still None \u2014 " + FILL_IN + " (`m = None`): m_k = sqrt(\u1fb1_t)\u00b7\u03bc_k.",
         "v": "v is still None \u2014 " + FILL_IN + " (`v = None`): v_k = \u1fb1_t\u00b7\u03c3_k\u00b2 + 1 - \u1fb1_t.",
         "return": "mixture_score returned None \u2014 " + FILL_IN + " (`return None`): "
                   "\u03a3_k r_k(x)\u00b7(-(x - m_k)/v_k)."}


def _judge_m(m, want, hints, text) -> None:
    want = want.double()
    m = expect(m, "m", none=_NONE["m"], shape_hint=" (one mean per component)")
    if not close(m.double().expand(want.shape), want, atol=1e-6):
        hint = " It looks like \u1fb1_t\u00b7\u03bc_k: the mean scales by sqrt(\u1fb1_t)." if close(
            m.double().expand(want.shape), hints["m_unscaled"], atol=1e-6) else ""
        fail(f"{text}: m, the components' means at step t, should be sqrt(\u1fb1_t)\u00b7\u03bc_k.{hint}")


def _judge_v(v, want, hints, text) -> None:
    want = want.double()
    v = expect(v, "v", none=_NONE["v"], shape_hint=" (one variance per component)")
    if not close(v.double().expand(want.shape), want, atol=1e-6):
        got = v.double().expand(want.shape)
        hint = (" It looks like a standard deviation: v is the variance." if close(got, want.sqrt(), atol=1e-6) else
                " The data's spread shrinks too: \u1fb1_t\u00b7\u03c3_k\u00b2, not \u03c3_k\u00b2." if close(
                    got, hints["v_unscaled"], atol=1e-6) else "")
        fail(f"{text}: v, the components' variances at step t, should be \u1fb1_t\u00b7\u03c3_k\u00b2 + 1 - \u1fb1_t.{hint}")


def judge_mixture_score(part: str, rec: ScoreRecord, inputs: dict, exp: dict) -> str:
    """One blank of ``mixture_score``: ``m`` (sqrt(ᾱ) μ_k), ``v`` (ᾱ σ_k² + 1 - ᾱ) or the returned score
    Σ_k r_k(x) (-(x - m_k)/v_k).  A blank whose line was folded into the return is judged by the score.  The
    expected m and v come with the expected values (``exp["m"]``, ``exp["v"]``), never from a formula here."""
    for args, got, err, m, v, want, want_m, want_v, hints in zip(inputs["args"], rec.results, rec.errors, rec.m, rec.v,
                                                                 exp["results"], exp["m"], exp["v"], exp["hints"]):
        text = f"mixture_score(x, alpha_bar={float(args[1]):g}, ...)"
        right = not err and close(got, want, atol=1e-4, rtol=1e-4)
        if part in ("m", "v"):
            value = m if part == "m" else v
            if value is ABSENT and right:
                continue                            # computed inline, and the score is right: so is this blank
            if value is ABSENT:
                fail(f"{text}{' raised ' + err if err else ''}: mixture_score no longer sets {part}; keep the blank's "
                     f"line `{part} = ...` so it can be judged on its own (or return the right score).")
            (_judge_m if part == "m" else _judge_v)(value, want_m if part == "m" else want_v, hints, text)
            continue
        if m is None or v is None:                  # the first blanks first: a None there breaks what follows
            fail(_NONE["m" if m is None else "v"])
        got = expect(got, "the score", raised=err and f"{text} raised {err}.", none=_NONE["return"],
                     shape_hint=" (one score per entry of x)")
        if right:
            continue
        if usable(m):
            _judge_m(m, want_m, hints, text)
        if usable(v):
            _judge_v(v, want_v, hints, text)
        hint = " The sign is flipped: the score points towards the data, -(x - m_k)/v_k." if close(
            got, -want, atol=1e-4, rtol=1e-4) else ""
        fail(f"{text} differs from the exact score \u03a3_k r_k(x)\u00b7(-(x - m_k)/v_k) by up to "
             f"{(got.double() - want).abs().max().item():.4g}.{hint}")
    return {"m": "m = sqrt(\u1fb1_t)\u00b7\u03bc_k, for every mixture and step tested.",
            "v": "v = \u1fb1_t\u00b7\u03c3_k\u00b2 + 1 - \u1fb1_t, for every mixture and step tested.",
            "return": "mixture_score: the exact score of the noised mixture, for every x and step tested."}[part]


# =========================================================================== one Euler step of the PF ODE
class PFODERecord(CallsRecord):
    """``pf_ode_step(x, score, beta)`` for each of the grader's argument lists (results: the shape of x)."""
    kind = "pf_ode_step"


# the common mistakes, in the order they are tried; their values: ddpm_instructor.graded.score1d (the judge only compares)
PF_ODE_HINTS = (
    ("no_half", " It is missing the \u00bd of the probability-flow ODE (dx/dt = -\u00bd\u03b2(x + score))."),
    ("wrong_way", " The step goes the wrong way: backwards in t, x_{t-1} = x_t + \u00bd\u03b2(x_t + score)."),
    ("sde_mean", " That is the reverse SDE's mean (with \u03b2 instead of \u00bd\u03b2 and no noise); the ODE step is x + \u00bd\u03b2(x + score)."),
)


def judge_pf_ode_step(rec: PFODERecord, inputs: dict, exp: dict) -> str:
    """x_{t-1} = x_t + ½ β (x_t + s)."""
    for (x, score, beta), got, err, want, hints in zip(inputs["args"], rec.results, rec.errors, exp["results"],
                                                      exp["hints"]):
        text = f"pf_ode_step(x, score, beta={float(beta):g})"
        got = expect(got, "x_{t-1}", raised=err and f"{text} raised {err}.", shape_hint=" (the shape of x)",
                     none="pf_ode_step returned None \u2014 " + FILL_IN + " (`return None`): x + \u00bd\u03b2\u00b7(x + score).")
        if close(got, want, atol=1e-6):
            continue
        hint = first_hint(got, hints, PF_ODE_HINTS, atol=1e-6)
        fail(f"{text} differs from x + \u00bd\u03b2\u00b7(x + score) by up to "
             f"{(got.double() - want).abs().max().item():.4g}.{hint}")
    return "pf_ode_step: x_{t-1} = x_t + \u00bd\u03b2\u00b7(x_t + score), one Euler step of the probability-flow ODE."


# =========================================================================== the blanks, declared once, and their self-checks
MIXTURE_SCORE_M = Blank(ScoreRecord, functools.partial(judge_mixture_score, "m"), "m", "mixture_score: m")
MIXTURE_SCORE_V = Blank(ScoreRecord, functools.partial(judge_mixture_score, "v"), "v", "mixture_score: v")
MIXTURE_SCORE_RETURN = Blank(ScoreRecord, functools.partial(judge_mixture_score, "return"), "results",
                             "mixture_score: the returned score")
PF_ODE_STEP = Blank(PFODERecord, judge_pf_ode_step, "results", "pf_ode_step: the returned x_{t-1}")

MIXTURE_SCORE_CHECK = SelfCheck("mixture_score", (MIXTURE_SCORE_M, MIXTURE_SCORE_V, MIXTURE_SCORE_RETURN))
PF_ODE_STEP_CHECK = SelfCheck("pf_ode_step", (PF_ODE_STEP,))
CHECKS = (MIXTURE_SCORE_CHECK, PF_ODE_STEP_CHECK)


def check_mixture_score(fn, quiet: bool = False) -> None:
    """Self-check for ``mixture_score(x, alpha_bar, means, stds, weights)`` (notebook 1): the exact score."""
    MIXTURE_SCORE_CHECK.run(fn, quiet)


def check_pf_ode_step(fn, quiet: bool = False) -> None:
    """Self-check for ``pf_ode_step(x, score, beta)`` (notebook 1): x + \u00bd \u03b2 (x + score)."""
    PF_ODE_STEP_CHECK.run(fn, quiet)
