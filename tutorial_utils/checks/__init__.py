"""Self-checks for the student blanks, and the probes, records and judges behind them, one module per notebook
stage (``diffusion`` for notebook 2, ``training`` 4, ``sampling`` 5, ``conditional`` 6, ``beyond`` 7, ``flow`` 8) and what they
share in ``core`` (the record and its validation, the judge ladder, the tools that run the student's code).

Every blank in a notebook is followed by a visible self-check cell that calls one ``check_*`` function here.
A self-check runs the student's code through the stage's probe on fixed inputs, reads the record back against
its declared fields and shapes (``Record.from_plain``), and judges it against **expected values stored as data**
(``check_data.pt``, written by the instructor tooling from the reference solutions:
``python -m ddpm_instructor.graded --write-check-data``).  It never calls the reference, which a student's copy of
the course does not have.

The judges (``JUDGES``) compare one record with one set of expected values and raise ``SelfCheckError`` with a
message that says what to fix.  The grader uses the very same probes and judges, with inputs, random draws and
expected values of its own, and reads the record outside the student's kernel (``ddpm_instructor.graded``).

**A deleted named line.**  Each blank is judged by the value its line names (``sqrt_alpha_bar``, ``x_t``,
``y_emb``...).  If a student removes that line but writes the same computation inline, the blank is judged by
what the next step used instead (the function's result, the model's input, the loss): right there means right.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable

import torch

from .applications import InvertRecord, MergeRecord, SlerpRecord, check_ddim_invert_step, check_merge_known, \
    check_slerp, judge_invert, judge_merge, judge_slerp
from .beyond import CosineRecord, DDIMRecord, GuidedRecord, judge_cosine, judge_ddim, judge_guided
from .lab2d import ConversionRecord, MixtureVelocityRecord, StraightnessRecord, check_eps_to_velocity, \
    check_mixture_velocity, check_straightness, judge_eps_to_velocity, judge_mixture_velocity, judge_straightness
from .conditional import ClassEmbRecord, CondRecord, judge_class_emb, judge_cond
from . import core
from .core import ABSENT, Record, RecordError, SelfCheckError, Unusable
from .diffusion import QSampleRecord, ScheduleRecord, judge_q_sample, judge_schedule
from .flow import EulerRecord, GuidedVelocityRecord, HeunRecord, InterpolantRecord, TargetRecord, judge_euler, \
    judge_guided_velocity, judge_heun, judge_interpolant, judge_target
from .sampling import ReverseRecord, judge_reverse_step
from .score1d import PFODERecord, ScoreRecord, judge_mixture_score, judge_pf_ode_step
from .training import LossRecord, TrainRecord, judge_loss_fn, judge_train

__all__ = [
    "SelfCheckError", "check_linear_beta_schedule", "check_q_sample", "check_loss_fn", "check_training_loop",
    "check_p_sample_DDPM", "check_unet_cond", "check_cosine_beta_schedule", "check_ddim_step", "check_guided_eps",
    "check_mixture_score", "check_pf_ode_step", "check_merge_known", "check_ddim_invert_step", "check_slerp", "check_eps_to_velocity", "check_mixture_velocity", "check_straightness", "check_flow_interpolant", "check_velocity_target", "check_euler_step", "check_heun_step", "check_guided_velocity",
    "JUDGES", "RECORDS", "Record", "RecordError", "ABSENT", "Unusable", "probe_record", "CHECK_DATA",
]

CHECK_DATA = Path(__file__).resolve().parent.parent / "check_data.pt"

# probe name (as the graded inputs and the stored self-check data name it) -> its record
RECORDS: dict[str, type[Record]] = {cls.kind: cls for cls in (
    ScoreRecord, PFODERecord, ScheduleRecord, QSampleRecord, LossRecord, TrainRecord, ReverseRecord, ClassEmbRecord, CondRecord,
    CosineRecord, DDIMRecord, GuidedRecord,
    InterpolantRecord, TargetRecord, EulerRecord, HeunRecord, GuidedVelocityRecord,
    ConversionRecord, MixtureVelocityRecord, StraightnessRecord,
    MergeRecord, InvertRecord, SlerpRecord)}

# judge name -> (the record it reads, function(record, inputs, expected) -> message); the grader looks judges up here
JUDGES: dict[str, tuple[type[Record], Callable]] = {
    "schedule": (ScheduleRecord, judge_schedule),
    "q_sample_sqrt_alpha_bar": (QSampleRecord, functools.partial(judge_q_sample, "sqrt_alpha_bar")),
    "q_sample_sqrt_one_minus_alpha_bar": (QSampleRecord, functools.partial(judge_q_sample, "sqrt_one_minus_alpha_bar")),
    "q_sample_return": (QSampleRecord, functools.partial(judge_q_sample, "return")),
    "loss_fn": (LossRecord, judge_loss_fn),
    "train_x_t": (TrainRecord, functools.partial(judge_train, "x_t")),
    "train_pred_noise": (TrainRecord, functools.partial(judge_train, "pred_noise")),
    "train_loss": (TrainRecord, functools.partial(judge_train, "loss")),
    "reverse_step": (ReverseRecord, judge_reverse_step),
    "class_emb": (ClassEmbRecord, judge_class_emb),
    "cond_y_emb": (CondRecord, functools.partial(judge_cond, "y_emb")),
    "cond_cond_emb": (CondRecord, functools.partial(judge_cond, "cond_emb")),
    "cosine_alpha_bars": (CosineRecord, functools.partial(judge_cosine, "alpha_bars")),
    "cosine_betas": (CosineRecord, functools.partial(judge_cosine, "betas")),
    "ddim_x0_pred": (DDIMRecord, functools.partial(judge_ddim, "x0_pred")),
    "ddim_x_prev": (DDIMRecord, functools.partial(judge_ddim, "x_prev")),
    "guided": (GuidedRecord, judge_guided),
    "mixture_score_m": (ScoreRecord, functools.partial(judge_mixture_score, "m")),
    "mixture_score_v": (ScoreRecord, functools.partial(judge_mixture_score, "v")),
    "mixture_score_return": (ScoreRecord, functools.partial(judge_mixture_score, "return")),
    "pf_ode_step": (PFODERecord, judge_pf_ode_step),
    "flow_interpolant": (InterpolantRecord, judge_interpolant),
    "velocity_target": (TargetRecord, judge_target),
    "euler_step": (EulerRecord, judge_euler),
    "heun_step": (HeunRecord, judge_heun),
    "guided_velocity": (GuidedVelocityRecord, judge_guided_velocity),
    "eps_to_velocity": (ConversionRecord, judge_eps_to_velocity),
    "mixture_velocity": (MixtureVelocityRecord, judge_mixture_velocity),
    "straightness": (StraightnessRecord, judge_straightness),
    "merge_known": (MergeRecord, judge_merge),
    "ddim_invert_step": (InvertRecord, judge_invert),
    "slerp": (SlerpRecord, judge_slerp),
}


def probe_record(kind: str, obj, inputs: dict) -> Record:
    """Run the probe ``kind`` on ``obj`` and read its record back as a reader would (shapes checked)."""
    cls = RECORDS[kind]
    with core.refusals(kind):
        rec = cls.probe(obj, inputs)
    return cls.from_plain(rec.to_plain(inputs), inputs)


# =========================================================================== self-checks (stored expected values)
@functools.lru_cache(maxsize=1)
def _check_data() -> dict:
    return torch.load(CHECK_DATA, weights_only=True)


def _self_check(name: str, obj, judges: list[str], quiet: bool) -> None:
    case = _check_data()[name]
    token = core.STUDENT_ERROR.set(None)
    try:
        rec = probe_record(case["probe"], obj, case["inputs"])
        for j in judges:
            try:
                msg = JUDGES[j][1](rec, case["inputs"], case["expected"])
            except SelfCheckError as e:
                raised = core.STUDENT_ERROR.get()       # the student's own error, when the message is about it
                if raised is not None and f"raised {type(raised).__name__}" in str(e):
                    raise e from raised
                raise
            if not quiet:
                print("\u2713 " + msg)
    finally:
        core.STUDENT_ERROR.reset(token)


def check_mixture_score(fn: Callable, quiet: bool = False) -> None:
    """Self-check for ``mixture_score(x, alpha_bar, means, stds, weights)`` (notebook 1): the exact score."""
    _self_check("mixture_score", fn, ["mixture_score_m", "mixture_score_v", "mixture_score_return"], quiet)


def check_pf_ode_step(fn: Callable, quiet: bool = False) -> None:
    """Self-check for ``pf_ode_step(x, score, beta)`` (notebook 1): x + ½ β (x + score)."""
    _self_check("pf_ode_step", fn, ["pf_ode_step"], quiet)


def check_linear_beta_schedule(fn: Callable, quiet: bool = False) -> None:
    """Self-check for ``linear_beta_schedule(timesteps, beta_start=1e-4, beta_end=0.02)``."""
    _self_check("linear_beta_schedule", fn, ["schedule"], quiet)


def check_q_sample(fn: Callable, quiet: bool = False) -> None:
    """Self-check for ``q_sample(x_start, t, noise=None)``: x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε."""
    _self_check("q_sample", fn, ["q_sample_sqrt_alpha_bar", "q_sample_sqrt_one_minus_alpha_bar", "q_sample_return"],
                quiet)


def check_loss_fn(loss_fn, quiet: bool = False) -> None:
    """Self-check for ``loss_fn``: the mean squared error of Algorithm 1."""
    _self_check("loss_fn", loss_fn, ["loss_fn"], quiet)


def check_training_loop(train_fn: Callable, quiet: bool = False) -> None:
    """Self-check for the three blanks of the training loop (x_t, pred_noise, loss), in order."""
    _self_check("train_step", train_fn, ["train_x_t", "train_pred_noise", "train_loss"], quiet)


def check_p_sample_DDPM(fn: Callable, quiet: bool = False) -> None:
    """Self-check for ``p_sample_DDPM(model, x, t, t_index)``."""
    _self_check("reverse_step", fn, ["reverse_step"], quiet)


def check_cosine_beta_schedule(fn: Callable, quiet: bool = False) -> None:
    """Self-check for ``cosine_beta_schedule(timesteps, s=0.008)``: the blanks alpha_bars and betas."""
    _self_check("cosine", fn, ["cosine_alpha_bars", "cosine_betas"], quiet)


def check_ddim_step(fn: Callable, quiet: bool = False) -> None:
    """Self-check for ``ddim_step(x_t, eps, t, t_prev, eta=0.0)``: the blanks x0_pred and x_prev."""
    _self_check("ddim", fn, ["ddim_x0_pred", "ddim_x_prev"], quiet)


def check_guided_eps(fn: Callable, quiet: bool = False) -> None:
    """Self-check for ``guided_eps(eps_cond, eps_uncond, w)``."""
    _self_check("guided", fn, ["guided"], quiet)


def check_unet_cond(cls, quiet: bool = False) -> None:
    """Self-check for the three blanks of ``UNet_cond``."""
    _self_check("class_emb", cls, ["class_emb"], quiet)
    _self_check("cond_forward", cls, ["cond_y_emb", "cond_cond_emb"], quiet)


def check_flow_interpolant(fn: Callable, quiet: bool = False) -> None:
    """Self-check for ``flow_interpolant(x_0, noise, t)``: x_t = (1 - t) x_0 + t ε (notebook 8)."""
    _self_check("flow_interpolant", fn, ["flow_interpolant"], quiet)


def check_velocity_target(fn: Callable, quiet: bool = False) -> None:
    """Self-check for ``velocity_target(x_0, noise)``: ε - x_0."""
    _self_check("velocity_target", fn, ["velocity_target"], quiet)


def check_euler_step(fn: Callable, quiet: bool = False) -> None:
    """Self-check for ``euler_step(x_t, v, t, t_next)``."""
    _self_check("euler_step", fn, ["euler_step"], quiet)


def check_heun_step(fn: Callable, quiet: bool = False) -> None:
    """Self-check for ``heun_step(velocity_fn, x_t, t, t_next)``."""
    _self_check("heun_step", fn, ["heun_step"], quiet)


def check_guided_velocity(fn: Callable, quiet: bool = False) -> None:
    """Self-check for ``guided_velocity(model, x_t, t, y, w)``: the value and one call of batch 2B."""
    _self_check("guided_velocity", fn, ["guided_velocity"], quiet)
