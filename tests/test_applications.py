"""Notebook 9's math (solutions/applications.py) against closed forms and its own inverses, with stand-in models:
fast, no checkpoint."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from solutions import applications as apps
from solutions import ddim_step, default_schedule, q_sample


class Eps(nn.Module):
    """A stand-in ε-model: ε(x, t) = a·x + b·t/1000 (labels ignored)."""

    def __init__(self, a=0.3, b=0.5):
        super().__init__()
        self.a, self.b, self.w = a, b, nn.Parameter(torch.zeros(1))

    def forward(self, x, t, y=None):
        return self.a * x + self.b * (t.float() / 1000).view(-1, 1, 1, 1)


def _imgs(seed, n=3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 28, 28, generator=g, dtype=torch.float64)


def test_merge_known_noises_exactly_the_known_pixels():
    x, known, noise = _imgs(0), _imgs(1).clamp(-1, 1), _imgs(2)
    mask = (torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(3)) < 0.3).double()
    t = torch.tensor([0, 400, 999])
    out = apps.merge_known(x, known, mask, t, noise)
    assert torch.equal(out[mask == 0], x[mask == 0])
    assert torch.allclose(out[mask == 1], q_sample(known, t, noise)[mask == 1])


def test_the_inverted_step_undoes_the_deterministic_ddim_step_for_the_same_eps():
    """With the same ε both ways, one step up then one DDIM step (η = 0) down returns x_t (and from t = -1, x_0)."""
    x, eps = _imgs(4), _imgs(5)
    for t, t_next in [(-1, 49), (100, 300), (700, 999)]:
        up = apps.ddim_invert_step(x, eps, t, t_next)
        assert torch.allclose(ddim_step(up, eps, t_next, t), x, atol=1e-10)
    ab = default_schedule().alpha_bars.double()      # and it is the closed form of the notebook
    want = ab[300].sqrt() * (x - (1 - ab[100]).sqrt() * eps) / ab[100].sqrt() + (1 - ab[300]).sqrt() * eps
    assert torch.allclose(apps.ddim_invert_step(x, eps, 100, 300), want, atol=1e-5)


def test_slerp_ends_norm_and_angle():
    z0, z1 = _imgs(6), _imgs(7)
    z1 = z1 * (z0.flatten(1).norm(dim=1) / z1.flatten(1).norm(dim=1)).view(-1, 1, 1, 1)     # equal norms
    assert torch.allclose(apps.slerp(z0, z1, 0.0), z0) and torch.allclose(apps.slerp(z0, z1, 1.0), z1)
    for a in (0.25, 0.5, 0.8):
        z = apps.slerp(z0, z1, a)
        assert torch.allclose(z.flatten(1).norm(dim=1), z0.flatten(1).norm(dim=1))          # stays on the sphere
        cos = lambda u, v: (u.flatten(1) * v.flatten(1)).sum(1) / (u.flatten(1).norm(dim=1) * v.flatten(1).norm(dim=1))
        theta = cos(z0, z1).acos()
        assert torch.allclose(cos(z0, z).acos(), a * theta)                                  # evenly in angle
    lerp_mid = (z0 + z1) / 2                                                                  # what slerp is not
    assert (lerp_mid.flatten(1).norm(dim=1) < 0.8 * z0.flatten(1).norm(dim=1)).all()
    assert torch.allclose(apps.slerp(z0, z0, 0.3), z0)                                       # parallel: no 0/0


def test_inversion_then_decoding_with_many_steps_returns_the_image():
    """The linear stand-in model's ε varies slowly, so ε(x_t, t_next) ≈ ε(x_next, t_next) and the error shrinks with
    the number of steps."""
    model, x0 = Eps(), _imgs(8).clamp(-1, 1).float()
    err = {n: (apps.ddim_decode(model, apps.ddim_invert(model, x0, n), n) - x0).abs().max().item() for n in (10, 200)}
    assert err[200] < err[10] / 10 and err[200] < 0.2, err


def test_inpainting_keeps_the_known_pixels_and_sdedit_at_t0_0_keeps_the_guide():
    model, known = Eps(), _imgs(9).clamp(-1, 1).float()
    mask = torch.zeros_like(known)
    mask[..., :14, :] = 1
    out = apps.inpaint_loop(model, known, mask, n_steps=5, seed=0)
    assert torch.equal(out[mask == 1], known[mask == 1]) and not torch.equal(out, known)
    assert torch.allclose(apps.sdedit(model, known, 0, n_steps=1, seed=0), apps.sdedit(model, known, 0, n_steps=1, seed=0))


def test_nearest_distances_agree_with_brute_force_across_chunks():
    bank, x = _imgs(10, 50).float(), _imgs(11, 4).float()
    x[2] = bank[37]                                                     # an exact copy is found at distance 0
    d, i = apps.nearest_distances(x, bank, chunk=16)
    full = torch.cdist(x.flatten(1).double(), bank.flatten(1).double())
    assert torch.allclose(d.double(), full.min(1).values, atol=1e-4) and torch.equal(i, full.argmin(1))
    assert d[2] == 0 and i[2] == 37


# --------------------------------------------------------------------------- the judges on typical mistakes
def _invert_x0(x_t, eps, t, t_next):
    ab = default_schedule().alpha_bars
    a_t = ab[t] if t >= 0 else torch.tensor(1.0)
    return (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()


def _invert_as_clean(x_t, eps, t, t_next):
    a_next = default_schedule().alpha_bars[t_next]
    return a_next.sqrt() * x_t + (1 - a_next).sqrt() * eps


MISTAKES = [
    ("test_merge_known", lambda x, known, mask, t, noise: mask * known + (1 - mask) * x, "went in clean"),
    ("test_merge_known", lambda x, known, mask, t, noise: (1 - mask) * q_sample(known, t, noise) + mask * x,
     "the other way round"),
    ("test_merge_known", lambda x, known, mask, t, noise: mask * q_sample(known, t), "x_merged differs"),
    ("test_merge_known", lambda x, known, mask, t, noise: None, "x_merged is still None"),
    ("test_ddim_invert_step", _invert_x0, "That is x0_pred"),
    ("test_ddim_invert_step", _invert_as_clean, "as if it were the clean image"),
    ("test_slerp", lambda z0, z1, a: (1 - a) * z0 + a * z1, "the straight line"),
    ("test_slerp", lambda z0, z1, a: apps.slerp(z1, z0, a), "The ends are swapped"),
    ("test_slerp", lambda z0, z1, a: z0[:1] * a, "wrong shape"),
]


@pytest.mark.parametrize("gid, fn, words", MISTAKES)
def test_each_judge_names_the_typical_mistake(gid, fn, words):
    from ddpm_instructor.graded import run_in_process
    from tutorial_utils.checks import SelfCheckError
    with pytest.raises(SelfCheckError, match=words):
        run_in_process(gid, fn)


def test_the_reference_passes_every_graded_test():
    from ddpm_instructor.graded import run_in_process
    for gid, fn in [("test_merge_known", apps.merge_known), ("test_slerp", apps.slerp),
                    ("test_ddim_invert_step", apps.ddim_invert_step)]:
        assert run_in_process(gid, fn)
