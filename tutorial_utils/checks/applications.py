"""Notebook 9 (what a trained model can do): the inpainting merge, the inverted DDIM step and spherical interpolation
-- their probes, records, judges and self-checks.  Timesteps as in notebooks 2-7: t = 0 ... T-1, and t = -1 stands
for the clean image (ᾱ = 1)."""
from __future__ import annotations

from .core import FILL_IN, CallsRecord, call_each, close, expect, fail, first_hint, patched_globals

from .blank import Blank, SelfCheck
__all__ = ["MergeRecord", "InvertRecord", "SlerpRecord", "judge_merge", "judge_invert", "judge_slerp",
           "check_merge_known", "check_ddim_invert_step", "check_slerp"]


def _worst(got, want) -> float:
    return (got.double() - want.double()).abs().max().item()


def _each(rec, inputs, exp, call_text, label, none, shape_hint):
    for args, got, err, want in zip(inputs["args"], rec.results, rec.errors, exp["results"]):
        text = call_text(args)
        yield args, expect(got, label, raised=err and f"{text} raised {err}.", shape_hint=shape_hint, none=none), \
            want, text


# =========================================================================== the inpainting merge
class MergeRecord(CallsRecord):
    """``merge_known(x, x_known, mask, t, noise)`` for each of the grader's argument lists (its noise included)."""
    kind = "merge_known"


# the common mistakes, in the order they are tried; their values: ddpm_instructor.graded.applications.hints_merge
MERGE_HINTS = (
    ("mask_flipped", " The mask is the other way round: mask = 1 marks a known pixel, which takes the noised known image."),
    ("known_clean", " The known pixels went in clean; at timestep t the model expects them noised to t: "
                    "q_sample(x_known, t, noise)."),
    ("noised_everywhere", " That is the noised known image everywhere; keep x where mask = 0."),
    ("rest_lost", " The pixels where mask = 0 are lost: add (1 - mask)\u00b7x."),
)


def judge_merge(rec: MergeRecord, inputs: dict, exp: dict) -> str:
    """m ⊙ q_sample(x_known, t, noise) + (1 - m) ⊙ x."""
    for i, ((x, known, mask, t, noise), got, want, text) in enumerate(_each(
            rec, inputs, exp, lambda a: f"merge_known(x, x_known, mask, t={a[3].tolist()}, noise)", "x_merged",
            "x_merged is still None \u2014 " + FILL_IN + " (`x_merged = None`): the known pixels noised to t "
            "(q_sample with the noise given), the others from x.", " (the shape of x)")):
        if close(got, want, atol=1e-5):
            continue
        hint = first_hint(got, exp["hints"][i], MERGE_HINTS, atol=1e-5)
        fail(f"{text}: x_merged differs from mask\u00b7q_sample(x_known, t, noise) + (1 - mask)\u00b7x by up to "
             f"{_worst(got, want):.4f}.{hint}")
    return "merge_known: the known pixels noised to t with the noise given, the rest of x untouched."


# =========================================================================== the inverted DDIM step
class InvertRecord(CallsRecord):
    """``ddim_invert_step(x_t, eps, t, t_next)`` with the grader's ``alpha_bars`` in the notebook globals, for each
    of the grader's argument lists."""
    kind = "ddim_invert_step"

    @classmethod
    def probe(cls, fn, inputs):
        args = [[x, e, int(t), int(tn)] for x, e, t, tn in inputs["args"]]
        with patched_globals(fn, alpha_bars=inputs["alpha_bars"].clone()):
            results, errors, _ = call_each(fn, args)
        return cls(results, errors)


# the common mistakes, in the order they are tried; their values: ddpm_instructor.graded.applications.hints_invert
INVERT_HINTS = (
    ("x0_pred", " That is x0_pred; the step goes on to x_{t_next} = sqrt(\u1fb1_{t_next})\u00b7x0_pred + sqrt(1 - \u1fb1_{t_next})\u00b7eps."),
    ("x_t_as_x0", " x_t was used as if it were the clean image: first solve x_t = sqrt(\u1fb1_t)\u00b7x_0 + sqrt(1 - \u1fb1_t)\u00b7eps for x_0."),
    ("off_by_one", " \u1fb1 is off by one index: alpha_bars[t] belongs to timestep t."),
    ("eps_missing", " The eps term is missing from x_next: the step keeps the same noise, sqrt(1 - \u1fb1_{t_next})\u00b7eps."),
)


def judge_invert(rec: InvertRecord, inputs: dict, exp: dict) -> str:
    """sqrt(ᾱ_{t_next}) x̂_0 + sqrt(1 - ᾱ_{t_next}) ε with x̂_0 = (x_t - sqrt(1 - ᾱ_t) ε) / sqrt(ᾱ_t)."""
    for i, ((x, eps, t, tn), got, want, text) in enumerate(_each(
            rec, inputs, exp, lambda a: f"ddim_invert_step(x_t, eps, t={int(a[2])}, t_next={int(a[3])})", "x_next",
            "x_next is still None \u2014 " + FILL_IN + " (`x_next = None`): x0_pred from x_t and eps, then the "
            "deterministic DDIM step to t_next.", " (the shape of x_t)")):
        if close(got, want, atol=1e-4):
            continue
        hint = first_hint(got, exp["hints"][i], INVERT_HINTS, atol=1e-4)
        fail(f"{text}: x_next differs from the inverted DDIM step by up to {_worst(got, want):.4f}.{hint}")
    return "ddim_invert_step: x0_pred from x_t, then the same deterministic step, upwards to t_next."


# =========================================================================== spherical interpolation
class SlerpRecord(CallsRecord):
    """``slerp(z0, z1, alpha)`` for each of the grader's argument lists."""
    kind = "slerp"

    @classmethod
    def probe(cls, fn, inputs):
        results, errors, _ = call_each(fn, [[z0, z1, float(a)] for z0, z1, a in inputs["args"]])
        return cls(results, errors)


# the common mistakes, in the order they are tried; their values: ddpm_instructor.graded.applications.hints_slerp
SLERP_HINTS = (
    ("straight_line", " That is the straight line between them; slerp walks along the arc (question 2 asks why)."),
    ("ends_swapped", " The ends are swapped: alpha = 0 must give z0 and alpha = 1 give z1."),
)


def judge_slerp(rec: SlerpRecord, inputs: dict, exp: dict) -> str:
    """sin((1 - α) θ) / sin θ · z0 + sin(α θ) / sin θ · z1, θ the angle between z0 and z1, per image."""
    for i, ((z0, z1, alpha), got, want, text) in enumerate(_each(
            rec, inputs, exp, lambda a: f"slerp(z0, z1, alpha={float(a[2]):g})", "z",
            "z is still None \u2014 " + FILL_IN + " (`z = None`): the two weights sin((1 - alpha)\u00b7theta) / sin(theta) "
            "and sin(alpha\u00b7theta) / sin(theta).", " (the shape of z0)")):
        if close(got, want, atol=1e-5):
            continue
        hint = first_hint(got, exp["hints"][i], SLERP_HINTS, atol=1e-5)
        fail(f"{text}: z differs from the spherical interpolation by up to {_worst(got, want):.4f}.{hint}")
    return "slerp: z0 at alpha = 0, z1 at alpha = 1, along the arc between them."


# =========================================================================== the blanks, declared once, and their self-checks
MERGE_KNOWN = Blank(MergeRecord, judge_merge, "results", "merge_known: the merged x")
DDIM_INVERT_STEP = Blank(InvertRecord, judge_invert, "results", "ddim_invert_step: x_next")
SLERP = Blank(SlerpRecord, judge_slerp, "results", "slerp: z")

MERGE_KNOWN_CHECK = SelfCheck("merge_known", (MERGE_KNOWN,))
DDIM_INVERT_STEP_CHECK = SelfCheck("ddim_invert_step", (DDIM_INVERT_STEP,))
SLERP_CHECK = SelfCheck("slerp", (SLERP,))
CHECKS = (MERGE_KNOWN_CHECK, DDIM_INVERT_STEP_CHECK, SLERP_CHECK)


def check_merge_known(fn, quiet: bool = False) -> None:
    """Self-check for ``merge_known(x, x_known, mask, t, noise)`` (notebook 9)."""
    MERGE_KNOWN_CHECK.run(fn, quiet)


def check_ddim_invert_step(fn, quiet: bool = False) -> None:
    """Self-check for ``ddim_invert_step(x_t, eps, t, t_next)`` (notebook 9), from the clean image (t = -1) too."""
    DDIM_INVERT_STEP_CHECK.run(fn, quiet)


def check_slerp(fn, quiet: bool = False) -> None:
    """Self-check for ``slerp(z0, z1, alpha)`` (notebook 9): both ends and points between."""
    SLERP_CHECK.run(fn, quiet)
