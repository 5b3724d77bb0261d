"""The seed notebook's call forms of the samplers work and give what the course's forms give (same seed).

    p_sample_DDPM(model, x_t, t_index)                      # an int timestep, no t tensor
    p_sample_loop_DDPM(model, n_samples=16, seed=1337)      # no shape
    p_sample_loop_cDDPM(model, y, seed=1337)                # the labels in place of the shape
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from solutions import Schedule, p_sample_DDPM, p_sample_cDDPM, p_sample_loop_DDPM, p_sample_loop_cDDPM

SCHED = Schedule.linear(12)     # a short chain: the loops are exercised end to end in milliseconds


class TinyEps(nn.Module):
    """A deterministic stand-in for ε_θ that depends on x, t (and y)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(0.3))

    def forward(self, x, t, y=None):
        out = self.w * x + 0.01 * t.float().view(-1, 1, 1, 1)
        return out if y is None else out + 0.05 * y.float().view(-1, 1, 1, 1)


@pytest.mark.parametrize("t_index", [0, 1, 7, 11])
def test_p_sample_ddpm_with_an_int_timestep(t_index):
    model, x = TinyEps(), torch.randn(3, 1, 28, 28)
    t = torch.full((3,), t_index, dtype=torch.long)
    torch.manual_seed(5)
    expected = p_sample_DDPM(model, x, t, t_index, schedule=SCHED)
    torch.manual_seed(5)
    seed_form = p_sample_DDPM(model, x, t_index, schedule=SCHED)
    torch.manual_seed(5)
    no_index = p_sample_DDPM(model, x, t, schedule=SCHED)          # t_index read from a uniform t
    torch.testing.assert_close(seed_form, expected, rtol=0, atol=0)
    torch.testing.assert_close(no_index, expected, rtol=0, atol=0)


def test_p_sample_ddpm_rejects_ambiguous_timesteps():
    model, x = TinyEps(), torch.randn(2, 1, 28, 28)
    with pytest.raises(ValueError, match="different timesteps"):
        p_sample_DDPM(model, x, torch.tensor([1, 2]), schedule=SCHED)
    with pytest.raises(ValueError, match="disagree"):
        p_sample_DDPM(model, x, 3, 4, schedule=SCHED)


def test_p_sample_cddpm_with_an_int_timestep():
    model, x, y = TinyEps(), torch.randn(4, 1, 28, 28), torch.tensor([0, 3, 6, 9])
    t = torch.full((4,), 5, dtype=torch.long)
    torch.manual_seed(2)
    expected = p_sample_cDDPM(model, x, t, 5, y, schedule=SCHED)
    torch.manual_seed(2)
    seed_form = p_sample_cDDPM(model, x, 5, y, schedule=SCHED)
    torch.testing.assert_close(seed_form, expected, rtol=0, atol=0)


def test_p_sample_loop_ddpm_with_n_samples():
    model = TinyEps()
    expected = p_sample_loop_DDPM(model, (16, 1, 28, 28), schedule=SCHED, seed=1337, progress=False)
    seed_form = p_sample_loop_DDPM(model, n_samples=16, seed=1337, schedule=SCHED, progress=False)
    int_shape = p_sample_loop_DDPM(model, 16, schedule=SCHED, seed=1337, progress=False)
    assert seed_form.shape == (16, 1, 28, 28)
    torch.testing.assert_close(seed_form, expected, rtol=0, atol=0)
    torch.testing.assert_close(int_shape, expected, rtol=0, atol=0)
    with pytest.raises(TypeError, match="n_samples"):
        p_sample_loop_DDPM(model, schedule=SCHED)
    with pytest.raises(ValueError, match="disagrees"):
        p_sample_loop_DDPM(model, (4, 1, 28, 28), n_samples=5, schedule=SCHED)


def test_p_sample_loop_ddpm_seed_form_on_the_default_schedule():
    """The seed's exact call (no schedule: T = 1000), on a model cheap enough to run all 1000 steps."""
    model = TinyEps()
    expected = p_sample_loop_DDPM(model, (2, 1, 28, 28), seed=1337, progress=False)
    seed_form = p_sample_loop_DDPM(model, n_samples=2, seed=1337, progress=False)
    torch.testing.assert_close(seed_form, expected, rtol=0, atol=0)


def test_p_sample_loop_cddpm_with_the_labels_only():
    model, y = TinyEps(), torch.arange(10)
    expected = p_sample_loop_cDDPM(model, (10, 1, 28, 28), y, schedule=SCHED, seed=1337, progress=False)
    seed_form = p_sample_loop_cDDPM(model, y, seed=1337, schedule=SCHED, progress=False)
    keyword = p_sample_loop_cDDPM(model, y=y, shape=None, seed=1337, schedule=SCHED, progress=False)
    torch.testing.assert_close(seed_form, expected, rtol=0, atol=0)
    torch.testing.assert_close(keyword, expected, rtol=0, atol=0)
    x, frames = p_sample_loop_cDDPM(model, y, seed=1337, schedule=SCHED, keep_every=4, progress=False)
    torch.testing.assert_close(x, expected, rtol=0, atol=0)
    assert [t for t, _ in frames] == [12, 8, 4, 0]
    with pytest.raises(ValueError, match="one label per image"):
        p_sample_loop_cDDPM(model, (3, 1, 28, 28), y, schedule=SCHED)
