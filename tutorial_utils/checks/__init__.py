"""Self-checks for the student blanks, and the probes, records and judges behind them, one module per notebook
stage (``diffusion`` for notebook 2, ``training`` 4, ``sampling`` 5, ``conditional`` 6, ``beyond`` 7, ``flow`` 8) and what they
share in ``core`` (the record and its validation, the judge ladder, the tools that run the student's code).

Every blank in a notebook is followed by a visible self-check cell that calls one ``check_*`` function here.
A self-check runs the student's code through the stage's probe on fixed inputs, reads the record back against
its declared fields and shapes (``Record.from_plain``), and judges it against **expected values stored as data**
(``check_data.pt``, written by the instructor tooling from the reference solutions:
``python -m ddpm_instructor.graded --write-check-data``).  It never calls the reference, which a student's copy of
the course does not have.  The values of the common mistakes a judge names in its hints (the mask flipped, a sign,
x0_pred instead of the step) come with the expected values too (``exp["hints"]``): a judge only compares, so one
called on inputs of someone's choosing computes nothing that could be a blank's answer
(tests/test_judge_oracle.py).

Each graded blank is declared once, in its stage module, as a ``Blank`` (``blank.py``): its record (the probe and
the declared fields), its judge (which compares one record with one set of expected values and raises
``SelfCheckError`` with a message that says what to fix), the record field that holds its answer, and its name in
the notebook.  Each ``check_*`` function is one call of its ``SelfCheck`` (the blanks of one probe, and the name
of their stored data; ``check_unet_cond`` runs two).  The grader uses the very same ``Blank`` objects, with inputs, random draws and expected values of its
own, and reads the record outside the student's kernel (``ddpm_instructor.graded``).

**A deleted named line.**  Each blank is judged by the value its line names (``sqrt_alpha_bar``, ``x_t``,
``y_emb``...).  If a student removes that line but writes the same computation inline, the blank is judged by
what the next step used instead (the function's result, the model's input, the loss): right there means right.
"""
from __future__ import annotations

from . import applications, beyond, conditional, diffusion, flow, lab2d, sampling, score1d, training
from .applications import check_ddim_invert_step, check_merge_known, check_slerp
from .beyond import check_cosine_beta_schedule, check_ddim_step, check_guided_eps
from .blank import CHECK_DATA, Blank, SelfCheck
from .conditional import check_unet_cond
from .core import ABSENT, Record, RecordError, SelfCheckError, Unusable
from .diffusion import check_linear_beta_schedule, check_q_sample
from .flow import check_euler_step, check_flow_interpolant, check_guided_velocity, check_heun_step, \
    check_velocity_target
from .lab2d import check_eps_to_velocity, check_mixture_velocity, check_straightness
from .sampling import check_p_sample_DDPM
from .score1d import check_mixture_score, check_pf_ode_step
from .training import check_loss_fn, check_training_loop

__all__ = [
    "SelfCheckError", "check_linear_beta_schedule", "check_q_sample", "check_loss_fn", "check_training_loop",
    "check_p_sample_DDPM", "check_unet_cond", "check_cosine_beta_schedule", "check_ddim_step", "check_guided_eps",
    "check_mixture_score", "check_pf_ode_step", "check_merge_known", "check_ddim_invert_step", "check_slerp",
    "check_eps_to_velocity", "check_mixture_velocity", "check_straightness", "check_flow_interpolant",
    "check_velocity_target", "check_euler_step", "check_heun_step", "check_guided_velocity",
    "Blank", "SelfCheck", "SELF_CHECKS", "BLANKS", "RECORDS", "Record", "RecordError", "ABSENT", "Unusable",
    "CHECK_DATA",
]

STAGES = (score1d, diffusion, training, sampling, conditional, beyond, lab2d, flow, applications)
# every self-check, and through them every graded blank (each blank is judged by exactly one self-check:
# tests/test_blank_declarations.py)
SELF_CHECKS: tuple[SelfCheck, ...] = tuple(check for stage in STAGES for check in stage.CHECKS)
BLANKS: tuple[Blank, ...] = tuple(blank for check in SELF_CHECKS for blank in check.blanks)
# the wire format only: a record's kind (written once, on its class) -> the class that reads it back
RECORDS: dict[str, type[Record]] = {blank.kind: blank.record for blank in BLANKS}
