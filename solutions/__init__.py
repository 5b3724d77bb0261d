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
}
# what each module needs besides itself
REQUIRES = {"diffusion": ["helpers"], "training": ["diffusion", "helpers"], "sampling": ["diffusion", "helpers"],
            "conditional": ["model"], "beyond": ["diffusion", "helpers", "sampling"],
            "flow": ["beyond", "diffusion", "helpers", "sampling"]}
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
}
MODULE_OF = {name: module for module, names in NAMES.items() for name in names}

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
