"""Reference solutions for the DDPM-on-MNIST course: one module per notebook stage, the seed's names and signatures.

    from solutions import linear_beta_schedule, extract, q_sample, Unet, UNet_cond, p_sample_DDPM

``STAGES`` says which assignment each module answers (``None``: graded nowhere, always public).  A student
bundle (``./course instructor release``) carries only the modules of public stages; importing a name from a
stage that is not in the bundle raises an ``ImportError`` that says which assignment it belongs to.
"""
from __future__ import annotations

import importlib
import os

# module -> the assignment whose graded answers it holds (None: helpers, graded nowhere)
STAGES = {
    "helpers": None,                          # extract, forward_diffuse_1d (notebook 1)
    "score1d": "01_forward_1d",               # mixture_score, tweedie_eps, reverse_sde_step, pf_ode_step (notebook 1)
    "model": None,                            # SinusoidalPositionEmbeddings, ConvBlock, Unet (notebook 3)
    "diffusion": "02_forward_closed_form",    # linear_beta_schedule, Schedule, default_schedule, q_sample
    "training": "04_training",                # p_losses, train_step, train
    "sampling": "05_sampling",                # ddpm_reverse_step, p_sample_DDPM, p_sample_loop_DDPM, ..._cDDPM
    "conditional": "06_conditional",          # UNet_cond
    "beyond": "07_beyond",                    # cosine_beta_schedule, guided_eps, ddim_step, ddim_sample_loop, ...
    "flow": "08_flow_matching",               # flow_interpolant, velocity_target, euler_step, guided_velocity, ...
    "applications": "09_applications",        # merge_known, ddim_invert_step, slerp, inpaint_loop, sdedit, ...
}
# what each module needs besides itself
REQUIRES = {"diffusion": ["helpers"], "training": ["diffusion", "helpers"], "sampling": ["diffusion", "helpers"],
            "conditional": ["model"], "beyond": ["diffusion", "helpers", "sampling"],
            "flow": ["beyond", "diffusion", "helpers", "sampling"],
            "applications": ["beyond", "diffusion", "helpers", "sampling"]}
NAMES = {
    "helpers": ["extract", "forward_diffuse_1d"],
    "score1d": ["mixture_score", "tweedie_eps", "reverse_sde_step", "pf_ode_step", "reverse_1d"],
    "model": ["SinusoidalPositionEmbeddings", "ConvBlock", "Unet"],
    "diffusion": ["linear_beta_schedule", "Schedule", "default_schedule", "q_sample"],
    "training": ["p_losses", "train_step", "train"],
    "sampling": ["ddpm_reverse_step", "p_sample_DDPM", "p_sample_loop_DDPM", "p_sample_cDDPM", "p_sample_loop_cDDPM"],
    "conditional": ["UNet_cond"],
    "beyond": ["cosine_alpha_bars", "cosine_beta_schedule", "guided_eps", "ddim_step", "ddim_sample_loop", "p_sample_loop_cfg",
               "dpm_solver_2m_sample_loop"],
    "flow": ["flow_interpolant", "velocity_target", "flow_matching_loss", "guided_velocity", "euler_step", "heun_step",
             "flow_sample_loop"],
    "applications": ["merge_known", "inpaint_loop", "sdedit", "ddim_invert_step", "ddim_invert", "ddim_decode", "slerp",
                     "nearest_distances"],
}
MODULE_OF = {name: module for module, names in NAMES.items() for name in names}

# The per-blank decision (docs/INSTRUCTORS.md, "No answer in the kernel"), keyed by the probe of the blank's
# declaration (its record's ``kind``: ``tutorial_utils.checks`` ``Blank.kind``; tests/test_blank_declarations.py
# checks that every key is a declared blank's and every function exists).  A function of an earlier, public stage
# that computes the blank in one call is either REFUSED or allowed on purpose (REUSE, with the reason).
#
# REFUSED means *absent*: no guard inside the grading kernel can hold (the kernel runs the student's code, which can
# unwrap, reload or patch anything there), so the bundle of the assignment that grades the blank ships the module
# with that function replaced by a stub that only raises ``DelegationRefused`` with the reason below
# (``ddpm_instructor.bundle.refuse_functions``); the grading kernel sees that bundle.  Other assignments' bundles
# ship the function whole (notebook 4 samples with ``reverse_sde_step``).  tests/test_bundle_answers.py proves that
# nothing else a bundle ships computes a graded blank.
REFUSED = {
    "reverse_step": {"score1d.reverse_sde_step": "notebook 5 is where you write Algorithm 2 yourself; notebook 1's "
                                                 "reverse_sde_step with the score -eps / sqrt(1 - alpha_bar_t) is "
                                                 "that step, so it is not part of this assignment's copy"},
    "guided_velocity": {"beyond._guided_model_eps": "notebook 8 asks you to write the guided prediction (one call of "
                                                    "the model on a batch of 2B, then the mix); stage 07's helper "
                                                    "that does both is not part of this assignment's copy"},
}
REUSE = {
    "train_step": {"diffusion.q_sample": "notebook 4's x_t blank is a call of notebook 2's q_sample: the loop is "
                                          "built on the forward process the student wrote"},
    "guided_velocity": {"beyond.guided_eps": "the mix v_u + w (v_c - v_u) is notebook 7's guidance, the student's own "
                                             "earlier blank; the one 2B call is notebook 8's"},
    "ddim_invert_step": {"beyond.ddim_step": "DDIM inversion is notebook 7's deterministic DDIM step (the student's "
                                             "own x0_pred and x_prev blanks there) run upwards in t: seeing that "
                                             "the same deterministic update runs both ways is the lesson, so "
                                             "calling it with t_next > t (eta = 0, no clipping) earns the blank"},
}


class DelegationRefused(RuntimeError):
    """Raised by the stub a bundle ships in place of a function the per-blank decision refuses (``REFUSED``)."""


__all__ = []
for _module in STAGES:
    if not os.path.isfile(os.path.join(os.path.dirname(__file__), f"{_module}.py")):
        continue                                  # a student bundle without this (graded, not yet public) stage
    _m = importlib.import_module(f".{_module}", __name__)
    for _name in NAMES[_module]:
        globals()[_name] = getattr(_m, _name)
        __all__.append(_name)


def __getattr__(name):
    module = MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'solutions' has no attribute {name!r}")
    raise ImportError(f"solutions.{name} is the answer of assignment {STAGES[module]}, which is not public in this "
                      f"copy of the course: use your own {name} from that notebook.", name=name)
