"""Reference solutions for the DDPM-on-MNIST course.

Everything a student writes in the notebooks, with the seed's names and signatures:

    from solutions import linear_beta_schedule, extract, q_sample, Unet, UNet_cond, p_sample_DDPM
"""
from .diffusion import (Schedule, ddpm_reverse_step, default_schedule, extract, forward_diffuse_1d,
                        linear_beta_schedule, q_sample)
from .model import ConvBlock, SinusoidalPositionEmbeddings, UNet_cond, Unet
from .training import (p_losses, p_sample_cDDPM, p_sample_DDPM, p_sample_loop_cDDPM, p_sample_loop_DDPM,
                       train, train_step)

__all__ = [
    "linear_beta_schedule", "Schedule", "default_schedule", "extract", "forward_diffuse_1d", "q_sample",
    "ddpm_reverse_step", "SinusoidalPositionEmbeddings", "ConvBlock", "Unet", "UNet_cond",
    "p_losses", "train_step", "train", "p_sample_DDPM", "p_sample_loop_DDPM", "p_sample_cDDPM",
    "p_sample_loop_cDDPM",
]
