"""Shared helpers for the DDPM-on-MNIST notebooks: data, plots, device, seeds and run profiles."""
from .data import (DatasetNotFoundError, TensorBatches, get_dataloaders, load_mnist_tensors, mnist_dataset,
                   resolve_data_root)
from .plotting import (animate_reverse, imshow, plot_class_grid, plot_forward_1d, plot_losses, plot_reverse_1d, plot_score_1d,
                       plot_noising_grid, plot_pixel_histogram, plot_real_vs_generated, plot_reverse_strip,
                       show_images)
from .runtime import PROFILES, RunProfile, get_device, get_profile, seed_everything, set_profile
from .checkpoints import CheckpointError, load_pretrained, pretrained_available
from .display import install as _install_selfcheck_display

_install_selfcheck_display()     # in a notebook, a failed self-check shows as its one-line message
