"""Notebook 8, parts A and B (one view of the parameterisations; the 2-D lab): the conversion ε̂ -> v on a Gaussian
path, the exact velocity of a Gaussian mixture and the straightness of a trajectory -- their probes, records and
judges.  Convention (notebook 8's): t = 0 is the data, t = 1 the noise; x_t = α_t x_0 + σ_t ε."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .core import FILL_IN, CallsRecord, Obs, Text, close, expect, fail


from .blank import Blank, SelfCheck
def _each(rec, inputs, exp, call_text, label, none, shape_hint):
    """(args, the usable result, the expected result, the call's text) for each argument list."""
    for args, got, err, want in zip(inputs["args"], rec.results, rec.errors, exp["results"]):
        text = call_text(args)
        yield args, expect(got, label, raised=err and f"{text} raised {err}.", shape_hint=shape_hint,
                           none=none), want, text


def _gap(got, want) -> str:
    return f"{(got.double() - want.double()).abs().max().item():.4g}"


# =========================================================================== ε̂ -> v on a Gaussian path
class ConversionRecord(CallsRecord):
    kind = "eps_to_velocity"


def judge_eps_to_velocity(rec: ConversionRecord, inputs: dict, exp: dict) -> str:
    """``eps_to_velocity(x_t, eps, alpha, sigma, d_alpha, d_sigma)`` = α'·(x_t - σ ε̂)/α + σ'·ε̂."""
    for (x, eps, a, s, da, ds), got, want, text in _each(
            rec, inputs, exp,
            lambda g: f"eps_to_velocity(x_t, eps, alpha={g[2]:.3g}, sigma={g[3]:.3g}, d_alpha={g[4]:.3g}, "
                      f"d_sigma={g[5]:.3g})", "v",
            "v is still None \u2014 " + FILL_IN + " (`v = None`): x0_hat from x_t and eps, then "
            "d_alpha\u00b7x0_hat + d_sigma\u00b7eps.", " (the shape of x_t)"):
        if close(got, want, atol=1e-4):
            continue
        x0_hat = (x - s * eps) / a
        hint = ""
        if close(got, x0_hat, atol=1e-4):
            hint = " That is x0_hat itself; the velocity is d_alpha\u00b7x0_hat + d_sigma\u00b7eps."
        elif close(got, eps - x0_hat, atol=1e-4):
            hint = (" eps - x0_hat is the velocity of the flow's path (alpha = 1 - t, sigma = t) only; on a general "
                    "path weight them by the derivatives: d_alpha\u00b7x0_hat + d_sigma\u00b7eps.")
        elif close(got, da * x + ds * eps, atol=1e-4):
            hint = (" The velocity d_alpha\u00b7x_0 + d_sigma\u00b7eps needs the clean image, not x_t: first recover "
                    "x0_hat = (x_t - sigma\u00b7eps)/alpha.")
        elif close(got, da * (x + s * eps) / a + ds * eps, atol=1e-4):
            hint = " x0_hat = (x_t - sigma\u00b7eps)/alpha: the noise is subtracted, not added."
        elif close(got, da * (x - s * eps) + ds * eps, atol=1e-4):
            hint = " Divide by alpha: x0_hat = (x_t - sigma\u00b7eps)/alpha."
        fail(f"{text}: v differs from d_alpha\u00b7x0_hat + d_sigma\u00b7eps by up to {_gap(got, want)}.{hint}")
    return "eps_to_velocity: v = d_alpha\u00b7(x_t - sigma\u00b7eps)/alpha + d_sigma\u00b7eps, on the flow's path and on others."


# =========================================================================== the exact velocity of a mixture
class MixtureVelocityRecord(CallsRecord):
    kind = "mixture_velocity"


def judge_mixture_velocity(rec: MixtureVelocityRecord, inputs: dict, exp: dict) -> str:
    """``mixture_velocity(x, t, means, std, weights)`` = Σ_k P(k | x_t) (E[ε | x_t, k] - E[x_0 | x_t, k])."""
    for (x, t, means, std, weights), got, want, text in _each(
            rec, inputs, exp,
            lambda g: f"mixture_velocity(x, t={g[1]:g}, means of {g[2].shape[0]} components, std={g[3]:g}, weights)",
            "v", "v is still None \u2014 " + FILL_IN + " (`v = None`): E[eps | x_t, k] - E[x_0 | x_t, k] for each "
            "component, weighted by resp.", " (one velocity per point: the shape of x)"):
        if close(got, want, atol=1e-4):
            continue
        a = 1 - t
        var = a ** 2 * std ** 2 + t ** 2
        diff = x[:, None, :].double() - a * means[None].double()
        resp = torch.softmax(torch.log(weights.double()) - (diff ** 2).sum(-1) / (2 * var), dim=1)
        x0_k = means[None].double() + a * std ** 2 / var * diff
        eps_k = t / var * diff
        hint = ""
        if close(got, -want, atol=1e-4):
            hint = (" The sign is flipped: in this notebook x_t moves from the data (t = 0) to the noise (t = 1), so "
                    "v = E[eps - x_0 | x_t].")
        elif close(got, (eps_k - x0_k).mean(1), atol=1e-4):
            hint = " Weight the components by resp = P(k | x_t), not equally."
        elif close(got, (resp[..., None] * x0_k).sum(1), atol=1e-4):
            hint = " That is E[x_0 | x_t] (the denoiser); the velocity is E[eps | x_t] - E[x_0 | x_t]."
        elif close(got, (resp[..., None] * (eps_k - means[None].double())).sum(1), atol=1e-4):
            hint = (" Given its component, x_0 is not the component's mean: E[x_0 | x_t, k] = mu_k + "
                    "(1 - t)\u00b7std\u00b2/var\u00b7diff (x_t still says something about where in the component x_0 was).")
        fail(f"{text}: v differs from E[eps - x_0 | x_t = x] by up to {_gap(got, want)}.{hint}")
    return "mixture_velocity: the exact E[eps - x_0 | x_t = x], near the data (small t) and near the noise."


# =========================================================================== straightness
@dataclass
class StraightnessRecord(CallsRecord):
    """``straightness(path)`` for each of the grader's paths (S + 1, N, D): one number per trajectory."""
    kind = "straightness"

    @staticmethod
    def spec(inputs):
        return {"results": [Obs((int(a[0].shape[1]),)) for a in inputs["args"]],
                "errors": [Text()] * len(inputs["args"])}


def judge_straightness(rec: StraightnessRecord, inputs: dict, exp: dict) -> str:
    """``straightness(path)`` = |end - start| / the length of the polygon, per trajectory."""
    for (path,), got, want, text in _each(
            rec, inputs, exp, lambda g: f"straightness(path of shape {tuple(g[0].shape)})", "ratio",
            "ratio is still None \u2014 " + FILL_IN + " (`ratio = None`): chord / length, one number per trajectory.",
            " (one number per trajectory: path.shape[1])"):
        if close(got, want, atol=1e-5):
            continue
        p = path.double()
        chord = (p[-1] - p[0]).norm(dim=-1)
        length = (p[1:] - p[:-1]).norm(dim=-1).sum(0)
        hint = ""
        if close(got, length / chord, atol=1e-5):
            hint = " Upside down: the chord over the length, so that a straight path scores 1 and a bent one less."
        elif close(got, chord / (p[1:] - p[:-1]).norm(dim=-1).max(0).values, atol=1e-5):
            hint = " The length is the sum of all the segments' lengths, not the longest one."
        elif close(got, ((p[-1] - p[0]) ** 2).sum(-1) / ((p[1:] - p[:-1]) ** 2).sum(-1).sum(0), atol=1e-5):
            hint = " Use lengths (norms), not squared lengths."
        fail(f"{text}: the ratio differs from |end - start| / (sum of the segments' lengths) by up to "
             f"{_gap(got, want)}.{hint}")
    return "straightness: |end - start| / length, 1 for a straight path, less for a bent one."


# =========================================================================== the blanks, declared once, and their self-checks
EPS_TO_VELOCITY = Blank(ConversionRecord, judge_eps_to_velocity, "results", "eps_to_velocity: v")
MIXTURE_VELOCITY = Blank(MixtureVelocityRecord, judge_mixture_velocity, "results", "mixture_velocity: v")
STRAIGHTNESS = Blank(StraightnessRecord, judge_straightness, "results", "straightness: ratio")

EPS_TO_VELOCITY_CHECK = SelfCheck("eps_to_velocity", (EPS_TO_VELOCITY,))
MIXTURE_VELOCITY_CHECK = SelfCheck("mixture_velocity", (MIXTURE_VELOCITY,))
STRAIGHTNESS_CHECK = SelfCheck("straightness", (STRAIGHTNESS,))
CHECKS = (EPS_TO_VELOCITY_CHECK, MIXTURE_VELOCITY_CHECK, STRAIGHTNESS_CHECK)


def check_eps_to_velocity(fn, quiet: bool = False) -> None:
    """Self-check for ``eps_to_velocity(x_t, eps, alpha, sigma, d_alpha, d_sigma)`` (notebook 8, part A)."""
    EPS_TO_VELOCITY_CHECK.run(fn, quiet)


def check_mixture_velocity(fn, quiet: bool = False) -> None:
    """Self-check for ``mixture_velocity(x, t, means, std, weights)`` (notebook 8, part B): the exact velocity."""
    MIXTURE_VELOCITY_CHECK.run(fn, quiet)


def check_straightness(fn, quiet: bool = False) -> None:
    """Self-check for ``straightness(path)`` (notebook 8, part B): chord over length, per trajectory."""
    STRAIGHTNESS_CHECK.run(fn, quiet)
