"""Notebook 7 (beyond DDPM): the cosine schedule, the DDIM step and classifier-free guidance -- their probes,
records and judges.  The noise z a DDIM step with η > 0 draws is the grader's draw for that step."""
from __future__ import annotations

import functools
from dataclasses import dataclass

from .core import ABSENT, FILL_IN, CallsRecord, Obs, Record, Text, call_each, capture_locals, close, err_text, \
    expect, fail, first_hint, fresh, grader_draws, local, patched_globals


from .blank import Blank, SelfCheck
# =========================================================================== cosine_beta_schedule
@dataclass
class CosineRecord(Record):
    """``cosine_beta_schedule(*args)`` for each of the grader's argument lists: results, errors, the locals
    ``alpha_bars`` and ``betas`` (``betas`` so that a blank still None is reported as such, not as the error the
    next line raises on it)."""
    kind = "cosine"
    results: list       # per argument list: float (T,)
    errors: list
    alpha_bars: list    # per argument list: the local alpha_bars, float (T + 1,)
    betas: list         # per argument list: the local betas (before the clip), float (T,)

    @staticmethod
    def spec(inputs):
        T = [int(a[0]) for a in inputs["args"]]
        return {"results": [Obs((n,)) for n in T], "errors": [Text()] * len(T), "alpha_bars": [Obs((n + 1,)) for n in T],
                "betas": [Obs((n,)) for n in T]}

    @classmethod
    def probe(cls, fn, inputs):
        results, errors, locs = call_each(fn, inputs["args"], names=("alpha_bars", "betas"))
        return cls(results, errors, [local(loc, "alpha_bars") for loc in locs], [local(loc, "betas") for loc in locs])


def judge_cosine(part: str, rec: CosineRecord, inputs: dict, exp: dict) -> str:
    """``cosine_beta_schedule``: the blank ``alpha_bars`` (ᾱ_0 .. ᾱ_T) or the returned ``betas``."""
    for args, got, err, ab, b, want_b, want_ab in zip(inputs["args"], rec.results, rec.errors, rec.alpha_bars,
                                                     rec.betas, exp["betas"], exp["alpha_bars"]):
        call = f"cosine_beta_schedule{tuple(args)}"
        betas_none = ("betas is still None \u2014 " + FILL_IN + " (`betas = None`): \u03b2_t = 1 - \u1fb1_t / \u1fb1_{t-1}, "
                      "from the T + 1 values of alpha_bars.")
        if part == "alpha_bars":
            if ab is ABSENT and not err and close(got, want_b, atol=1e-6, rtol=1e-4):
                continue                    # computed inline, and the betas are right: so is ᾱ
            ab = expect(ab, "alpha_bars", raised=err and ab is ABSENT and f"{call} raised {err}.",
                        absent="cosine_beta_schedule no longer sets alpha_bars: keep the blank's line `alpha_bars = ...`.",
                        shape_hint=f" (T + 1 = {want_ab.shape[0]} values, t = 0 .. T)",
                        none="alpha_bars is still None \u2014 " + FILL_IN + " (`alpha_bars = None`): f(t)/f(0) with "
                             "f(t) = cos\u00b2(((t/T + s)/(1 + s))\u00b7\u03c0/2), for t = 0 .. T.")
            if not close(ab, want_ab, atol=1e-6, rtol=1e-5):
                hint = " It is not 1 at t = 0: divide by f(0)." if abs(ab[0].item() - 1) > 1e-6 else ""
                fail(f"alpha_bars differs from f(t)/f(0): at t = T/2 it is {ab[len(ab) // 2].item():.5f}, expected "
                     f"{want_ab[len(want_ab) // 2].item():.5f}.{hint}")
            continue
        if b is None and err:               # `betas = None` left as it is: the clip on the next line raised
            fail(betas_none)
        got = expect(got, call, raised=err and f"{call} raised {err}.", shape_hint=f" (T = {want_b.shape[0]} betas)",
                     none=betas_none)
        if not close(got, want_b, atol=1e-6, rtol=1e-4):
            fail(f"{call}: the betas differ from 1 - \u1fb1_t/\u1fb1_(t-1) (clipped at 0.999): the first is "
                 f"{got[0].item():.3g}, expected {want_b[0].item():.3g}; the last is {got[-1].item():.3g}, expected "
                 f"{want_b[-1].item():.3g}.")
    first = exp["betas"][0]
    return (f"cosine schedule: {'alpha_bars' if part == 'alpha_bars' else 'betas'} right; \u03b2 runs from "
            f"{first[0].item():.1e} to {first[-1].item():.3f}.")


# =========================================================================== ddim_step
@dataclass
class DDIMRecord(Record):
    """``ddim_step(x_t, eps, t, t_prev, eta)`` with the grader's ``alpha_bars`` in the notebook globals, for each of
    the grader's (t, t_prev, eta): the result and the local ``x0_pred``; the z it draws is the grader's ``z[i]``."""
    kind = "ddim"
    outs: list
    x0_preds: list
    errors: list

    @staticmethod
    def spec(inputs):
        n, img = len(inputs["steps"]), Obs(tuple(inputs["x_t"].shape))
        return {"outs": [img] * n, "x0_preds": [img] * n, "errors": [Text()] * n}

    @classmethod
    def probe(cls, fn, inputs):
        rec = cls([], [], [])
        for i, (t, t_prev, eta) in enumerate(list(inputs["steps"])):
            with patched_globals(fn, alpha_bars=fresh(inputs["alpha_bars"])), grader_draws(inputs["z"][i]):
                out, loc, err = capture_locals(fn, fresh(inputs["x_t"]), fresh(inputs["eps"]), int(t), int(t_prev),
                                               float(eta), names=("x0_pred",))
            rec.outs.append(out)
            rec.x0_preds.append(local(loc, "x0_pred"))
            rec.errors.append(err_text(err))
        return rec


X0_NONE = ("x0_pred is still None \u2014 " + FILL_IN + " (`x0_pred = None`): solve x_t = sqrt(\u1fb1_t)\u00b7x_0 + "
           "sqrt(1 - \u1fb1_t)\u00b7\u03b5 for x_0, with \u03b5 = eps.")


def judge_ddim(part: str, rec: DDIMRecord, inputs: dict, exp: dict) -> str:
    """``ddim_step``: the blank ``x0_pred`` (the predicted x_0) or ``x_prev`` (the returned step)."""
    for i, (t, t_prev, eta) in enumerate(inputs["steps"]):
        call = f"ddim_step(x_t, eps, t={int(t)}, t_prev={int(t_prev)}, eta={float(eta):g})"
        err, want_x0, want = rec.errors[i], exp["x0_pred"][i], exp["out"][i]
        if err and rec.x0_preds[i] is None:     # `x0_pred = None` left as it is: the lines after it raised
            fail(X0_NONE)
        if err:
            fail(f"{call} raised {err}.")
        if part == "x0_pred" and rec.x0_preds[i] is not ABSENT:     # without the line: judged by the result
            x0 = expect(rec.x0_preds[i], "x0_pred", none=X0_NONE)
            if not close(x0, want_x0, atol=1e-4):
                fail(f"{call}: x0_pred is not (x_t - sqrt(1 - \u1fb1_t)\u00b7eps) / sqrt(\u1fb1_t).")
            continue
        out = expect(rec.outs[i], "x_prev", shape_hint=" (the shape of x_t)",
                     none="ddim_step returned None \u2014 " + FILL_IN + " (`x_prev = None`): sqrt(\u1fb1_prev)\u00b7x0_pred "
                          "+ sqrt(1 - \u1fb1_prev - \u03c3\u00b2)\u00b7eps + \u03c3\u00b7z.")
        if close(out, want, atol=1e-4):
            continue
        if float(eta) > 0 and close(out, exp["mean"][i], atol=1e-4):
            fail(f"{call}: with eta > 0 the step adds \u03c3\u00b7z with the noise z it draws (keep the line that "
                 "draws z).")
        hint = " It equals x0_pred: the step goes to t_prev, not to x_0." if close(out, want_x0, atol=1e-4) else ""
        fail(f"{call}: x_prev differs from sqrt(\u1fb1_prev)\u00b7x\u0302_0 + sqrt(1 - \u1fb1_prev - \u03c3\u00b2)"
             f"\u00b7eps + \u03c3\u00b7z by up to {(out.double() - want).abs().max().item():.4f}." + hint)
    return f"ddim_step: {part} right for " + ", ".join(f"t={int(a)}\u2192{int(b)} (\u03b7={float(e):g})"
                                                      for a, b, e in inputs["steps"]) + "."


# =========================================================================== guided_eps
class GuidedRecord(CallsRecord):
    """``guided_eps(eps_cond, eps_uncond, w)`` for each of the grader's argument lists (results: the shape of eps_cond)."""
    kind = "guided"


# the common mistakes, in the order they are tried; their values: ddpm_instructor.graded.beyond (the judge only compares)
GUIDED_HINTS = (
    ("other_convention", " That is the other convention, \u03b5_c + w\u00b7(\u03b5_c - \u03b5_u) (Ho & Salimans' w is ours "
                         "minus 1); this notebook uses \u03b5_u + w\u00b7(\u03b5_c - \u03b5_u), so w = 1 means no guidance."),
    ("reversed", " The difference points the wrong way: \u03b5_c - \u03b5_u, from unconditional to conditional."),
)


def judge_guided(rec: GuidedRecord, inputs: dict, exp: dict) -> str:
    """``guided_eps(eps_cond, eps_uncond, w)`` = ε_u + w (ε_c - ε_u) for each w."""
    for args, got, err, want, hints in zip(inputs["args"], rec.results, rec.errors, exp["results"], exp["hints"]):
        w = float(args[2])
        got = expect(got, "guided_eps's result", raised=err and f"guided_eps(eps_cond, eps_uncond, w={w:g}) raised {err}.",
                     shape_hint=" (the shape of eps_cond)", none="guided_eps returned None \u2014 " + FILL_IN +
                     " (`eps = None`): \u03b5\u0303 = \u03b5_u + w\u00b7(\u03b5_c - \u03b5_u).")
        if not close(got, want, atol=1e-5):
            hint = first_hint(got, hints, GUIDED_HINTS, atol=1e-5)
            fail(f"guided_eps(\u2026, w={w:g}) is not \u03b5_u + w\u00b7(\u03b5_c - \u03b5_u).{hint}")
    return "guided_eps = \u03b5_u + w\u00b7(\u03b5_c - \u03b5_u): w = 0 gives \u03b5_u, w = 1 gives \u03b5_c, larger w pushes further."


# =========================================================================== the blanks, declared once, and their self-checks
COSINE_ALPHA_BARS = Blank(CosineRecord, functools.partial(judge_cosine, "alpha_bars"), "alpha_bars",
                          "cosine_beta_schedule: alpha_bars")
COSINE_BETAS = Blank(CosineRecord, functools.partial(judge_cosine, "betas"), "results", "cosine_beta_schedule: betas")
DDIM_X0_PRED = Blank(DDIMRecord, functools.partial(judge_ddim, "x0_pred"), "x0_preds", "ddim_step: x0_pred")
DDIM_X_PREV = Blank(DDIMRecord, functools.partial(judge_ddim, "x_prev"), "outs", "ddim_step: x_prev")
GUIDED_EPS = Blank(GuidedRecord, judge_guided, "results", "guided_eps: the returned guided \u03b5")

COSINE_CHECK = SelfCheck("cosine", (COSINE_ALPHA_BARS, COSINE_BETAS))
DDIM_CHECK = SelfCheck("ddim", (DDIM_X0_PRED, DDIM_X_PREV))
GUIDED_CHECK = SelfCheck("guided", (GUIDED_EPS,))
CHECKS = (COSINE_CHECK, DDIM_CHECK, GUIDED_CHECK)


def check_cosine_beta_schedule(fn, quiet: bool = False) -> None:
    """Self-check for ``cosine_beta_schedule(timesteps, s=0.008)``: the blanks alpha_bars and betas."""
    COSINE_CHECK.run(fn, quiet)


def check_ddim_step(fn, quiet: bool = False) -> None:
    """Self-check for ``ddim_step(x_t, eps, t, t_prev, eta=0.0)``: the blanks x0_pred and x_prev."""
    DDIM_CHECK.run(fn, quiet)


def check_guided_eps(fn, quiet: bool = False) -> None:
    """Self-check for ``guided_eps(eps_cond, eps_uncond, w)``."""
    GUIDED_CHECK.run(fn, quiet)
