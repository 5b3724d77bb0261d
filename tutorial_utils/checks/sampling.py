"""Notebook 5 (Algorithm 2): the reverse step ``p_sample_DDPM`` -- its probe, record and judge.  The noise z the
step draws (``torch.randn_like(x)``) is the grader's draw for that step."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .core import FILL_IN, Obs, Record, Text, call, close, err_text, expect, fail, fresh, grader_draws, \
    patched_globals, usable
from .blank import Blank, SelfCheck
from .diffusion import SCHEDULE_GLOBALS


class FixedEps(nn.Module):
    """ε_θ stand-in for the reverse step: ε(x, t) = a · x + b · t / 1000 (a, b given), or 0."""

    def __init__(self, a: float, b: float):
        super().__init__()
        self.a, self.b = float(a), float(b)

    def forward(self, x, t):
        return self.a * x + self.b * (t.float() / 1000).view(-1, 1, 1, 1)


@dataclass
class ReverseRecord(Record):
    """``p_sample_DDPM(model, x, t, t_index)`` for each of the grader's t_index with ``FixedEps(a, b)``, and with
    ε = 0 at x = 0 (which leaves only the noise part σ_t·z); z is the grader's draw ``z[i]``."""
    kind = "reverse_step"
    outs: list
    errors: list
    zero_outs: list
    zero_errors: list

    @staticmethod
    def spec(inputs):
        n, img = len(inputs["t_indices"]), Obs(tuple(inputs["x"].shape))
        return {"outs": [img] * n, "errors": [Text()] * n, "zero_outs": [img] * n, "zero_errors": [Text()] * n}

    @classmethod
    def probe(cls, fn, inputs):
        s = {k: fresh(inputs[k]) for k in SCHEDULE_GLOBALS}
        rec = cls([], [], [], [])
        for i, t_index in enumerate(list(inputs["t_indices"])):
            for outs, errors, x, model in ((rec.outs, rec.errors, inputs["x"], FixedEps(inputs["a"], inputs["b"])),
                                           (rec.zero_outs, rec.zero_errors, torch.zeros_like(inputs["x"]),
                                            FixedEps(0.0, 0.0))):
                t = torch.full((x.shape[0],), int(t_index), dtype=torch.long)
                with patched_globals(fn, **s), grader_draws(inputs["z"][i]):
                    out, err = call(fn, model, fresh(x), t, int(t_index))
                outs.append(out)
                errors.append(err_text(err))
        return rec


def judge_reverse_step(rec: ReverseRecord, inputs: dict, exp: dict) -> str:
    """``p_sample_DDPM`` at each t_index against the expected x_{t-1} = mean + σ_t·z with the grader's z."""
    for i, t_index in enumerate(int(k) for k in inputs["t_indices"]):
        mean, sigma, err = exp["mean"][i], float(exp["sigma"][i]), rec.errors[i]
        call = f"p_sample_DDPM(model, x, t, t_index={t_index})"
        out = expect(rec.outs[i], "x_tm1", raised=err and f"{call} raised {err}.", shape_hint=" (the shape of x)",
                     none="p_sample_DDPM returned None \u2014 " + FILL_IN + " (`x_tm1 = None`): compute x_{t-1} from "
                          "x_t with the model's noise prediction, following Algorithm 2, line 4.")
        if close(out, exp["out"][i], atol=1e-4):
            continue
        if t_index == 0:
            fail("at the last step (t_index = 0) x_tm1 should be the mean "
                 "1/sqrt(\u03b1_t)\u00b7(x_t - \u03b2_t/sqrt(1 - \u1fb1_t)\u00b7\u03b5_\u03b8) with no noise added; "
                 f"yours differs from it by up to {(out.double() - mean).abs().max().item():.4f}.")
        if close(out, mean, atol=1e-4):
            fail(f"at t_index = {t_index} x_tm1 is just the mean: add \u03c3_t\u00b7z (\u03c3_t = sqrt(\u03b2_t)) with the "
                 "z the step draws (keep the line that draws z).")
        msg = f"x_tm1 is not the Algorithm 2 update at t_index = {t_index}"
        out0 = rec.zero_outs[i]                 # ε = 0 at x = 0 leaves σ_t·z: its std should be σ_t
        if usable(out0):
            std = out0.double().std().item()
            if abs(std / sigma - 1) > 0.05:
                msg += (f"; its noise part has std {std:.4f} but should have \u03c3_t = sqrt(\u03b2_t) = "
                        f"{sigma:.4f} (variance off by {100 * ((std / sigma) ** 2 - 1):+.0f}%)")
            else:
                msg += "; the noise part \u03c3_t\u00b7z is right, so look at the mean"
        fail(msg + ".")
    return ("x_{t-1} matches Algorithm 2 at t_index = " + ", ".join(str(int(i)) for i in inputs["t_indices"])
            + "; the last step adds no noise.")


# =========================================================================== the blanks, declared once, and their self-checks
REVERSE_STEP = Blank(ReverseRecord, judge_reverse_step, "outs", "p_sample_DDPM: the returned x_{t-1}")

REVERSE_STEP_CHECK = SelfCheck("reverse_step", (REVERSE_STEP,))
CHECKS = (REVERSE_STEP_CHECK,)


def check_p_sample_DDPM(fn, quiet: bool = False) -> None:
    """Self-check for ``p_sample_DDPM(model, x, t, t_index)``."""
    REVERSE_STEP_CHECK.run(fn, quiet)
