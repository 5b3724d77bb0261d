"""Notebook 9 (what a trained model can do): the inpainting merge, the inverted DDIM step and spherical interpolation
-- their probes, records, judges and self-checks.  Timesteps as in notebooks 2-7: t = 0 ... T-1, and t = -1 stands
for the clean image (ᾱ = 1)."""
from __future__ import annotations

import torch

from .core import FILL_IN, CallsRecord, call_each, close, expect, fail, patched_globals

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


def _alpha_bar(alpha_bars, t) -> torch.Tensor:
    t = torch.as_tensor(t).long()
    padded = torch.cat([alpha_bars.new_ones(1), alpha_bars.double()])
    return padded[t + 1].view(-1, 1, 1, 1) if t.dim() else padded[int(t) + 1]


# =========================================================================== the inpainting merge
class MergeRecord(CallsRecord):
    """``merge_known(x, x_known, mask, t, noise)`` for each of the grader's argument lists (its noise included)."""
    kind = "merge_known"


def judge_merge(rec: MergeRecord, inputs: dict, exp: dict) -> str:
    """m ⊙ q_sample(x_known, t, noise) + (1 - m) ⊙ x."""
    ab = inputs["alpha_bars"]
    for (x, known, mask, t, noise), got, want, text in _each(
            rec, inputs, exp, lambda a: f"merge_known(x, x_known, mask, t={a[3].tolist()}, noise)", "x_merged",
            "x_merged is still None \u2014 " + FILL_IN + " (`x_merged = None`): the known pixels noised to t "
            "(q_sample with the noise given), the others from x.", " (the shape of x)"):
        if close(got, want, atol=1e-5):
            continue
        a = _alpha_bar(ab, t)
        noised = a.sqrt() * known.double() + (1 - a).sqrt() * noise.double()
        hint = ""
        if close(got, (1 - mask) * noised + mask * x, atol=1e-5):
            hint = " The mask is the other way round: mask = 1 marks a known pixel, which takes the noised known image."
        elif close(got, mask * known + (1 - mask) * x, atol=1e-5):
            hint = (" The known pixels went in clean; at timestep t the model expects them noised to t: "
                    "q_sample(x_known, t, noise).")
        elif close(got, noised, atol=1e-5):
            hint = " That is the noised known image everywhere; keep x where mask = 0."
        elif close(got, mask * noised, atol=1e-5):
            hint = " The pixels where mask = 0 are lost: add (1 - mask)\u00b7x."
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


def judge_invert(rec: InvertRecord, inputs: dict, exp: dict) -> str:
    """sqrt(ᾱ_{t_next}) x̂_0 + sqrt(1 - ᾱ_{t_next}) ε with x̂_0 = (x_t - sqrt(1 - ᾱ_t) ε) / sqrt(ᾱ_t)."""
    ab = inputs["alpha_bars"]
    for (x, eps, t, tn), got, want, text in _each(
            rec, inputs, exp, lambda a: f"ddim_invert_step(x_t, eps, t={int(a[2])}, t_next={int(a[3])})", "x_next",
            "x_next is still None \u2014 " + FILL_IN + " (`x_next = None`): x0_pred from x_t and eps, then the "
            "deterministic DDIM step to t_next.", " (the shape of x_t)"):
        if close(got, want, atol=1e-4):
            continue
        a_t, a_n = _alpha_bar(ab, int(t)), _alpha_bar(ab, int(tn))
        x, eps = x.double(), eps.double()
        x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        hint = ""
        if close(got, x0, atol=1e-4):
            hint = " That is x0_pred; the step goes on to x_{t_next} = sqrt(\u1fb1_{t_next})\u00b7x0_pred + sqrt(1 - \u1fb1_{t_next})\u00b7eps."
        elif close(got, a_n.sqrt() * x + (1 - a_n).sqrt() * eps, atol=1e-4):
            hint = " x_t was used as if it were the clean image: first solve x_t = sqrt(\u1fb1_t)\u00b7x_0 + sqrt(1 - \u1fb1_t)\u00b7eps for x_0."
        elif int(t) >= 0 and close(got, a_n.sqrt() * (x - (1 - a_t).sqrt() * eps) / _alpha_bar(ab, int(t) - 1).sqrt()
                                   + (1 - a_n).sqrt() * eps, atol=1e-4):
            hint = " \u1fb1 is off by one index: alpha_bars[t] belongs to timestep t."
        elif close(got, (a_n / a_t).sqrt() * x, atol=1e-4):
            hint = " The eps term is missing from x_next: the step keeps the same noise, sqrt(1 - \u1fb1_{t_next})\u00b7eps."
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


def judge_slerp(rec: SlerpRecord, inputs: dict, exp: dict) -> str:
    """sin((1 - α) θ) / sin θ · z0 + sin(α θ) / sin θ · z1, θ the angle between z0 and z1, per image."""
    for (z0, z1, alpha), got, want, text in _each(
            rec, inputs, exp, lambda a: f"slerp(z0, z1, alpha={float(a[2]):g})", "z",
            "z is still None \u2014 " + FILL_IN + " (`z = None`): the two weights sin((1 - alpha)\u00b7theta) / sin(theta) "
            "and sin(alpha\u00b7theta) / sin(theta).", " (the shape of z0)"):
        if close(got, want, atol=1e-5):
            continue
        alpha = float(alpha)
        hint = ""
        if close(got, (1 - alpha) * z0 + alpha * z1, atol=1e-5):
            hint = " That is the straight line between them; slerp walks along the arc (question 2 asks why)."
        elif (alpha == 0 and close(got, z1, atol=1e-5)) or (alpha == 1 and close(got, z0, atol=1e-5)):
            hint = " The ends are swapped: alpha = 0 must give z0 and alpha = 1 give z1."
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
