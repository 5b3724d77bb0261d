"""Notebook 8's parts A and B: the reference answers (solutions/flow.py: eps_to_velocity, mixture_velocity,
straightness) against closed forms, their judges on typical mistakes, and the lab's tools (tutorial_utils/lab2d.py).

Closed forms used:
* on any Gaussian path x_t = α_t x_0 + σ_t ε with known x_0 and ε, the velocity that the true ε implies is the
  path's time derivative α̇ x_0 + σ̇ ε (checked by finite differences on a cosine path);
* one Gaussian N(μ, s² I) on the flow's path: v(x, t) = ((t - (1-t) s²) x - t μ) / ((1-t)² s² + t²), and at t = 1
  the velocity is x - E[x_0] for any mixture;
* the exact velocity's ODE carries N(0, I) at t = 1 to the mixture at t = 0;
* the sliced 2-Wasserstein distance between a cloud and its copy shifted by d is |d| / sqrt(2) in 2-D.
Runtime: a few seconds.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from ddpm_instructor import graded
from solutions import flow
from tutorial_utils import lab2d
from tutorial_utils.checks import SelfCheckError


# --------------------------------------------------------------------------- eps_to_velocity
def test_the_velocity_an_exact_eps_implies_is_the_paths_time_derivative():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(5, 2, generator=g), torch.randn(5, 2, generator=g)
    c, t, dt = math.pi / 2, 0.37, 1e-4
    path = lambda s: math.cos(c * s) * x0 + math.sin(c * s) * eps
    fd = (path(t + dt) - path(t - dt)) / (2 * dt)
    v = flow.eps_to_velocity(path(t), eps, math.cos(c * t), math.sin(c * t), -c * math.sin(c * t), c * math.cos(c * t))
    assert torch.allclose(v, fd, atol=1e-3), (v - fd).abs().max()


def test_on_the_flow_path_the_conversion_is_eps_minus_x0_hat():
    g = torch.Generator().manual_seed(1)
    x_t, eps = torch.randn(4, 1, 28, 28, generator=g), torch.randn(4, 1, 28, 28, generator=g)
    t = torch.tensor([0.1, 0.4, 0.7, 0.95]).view(-1, 1, 1, 1)              # tensors broadcast too
    x0_hat = (x_t - t * eps) / (1 - t)
    assert torch.allclose(flow.eps_to_velocity(x_t, eps, 1 - t, t, -1.0, 1.0), eps - x0_hat, atol=1e-5)


# --------------------------------------------------------------------------- mixture_velocity
def test_one_gaussian_has_the_linear_closed_form_velocity():
    mu, s = torch.tensor([[1.5, -0.5]]), 0.4
    x = torch.randn(7, 2, generator=torch.Generator().manual_seed(2))
    for t in (0.05, 0.3, 0.8, 1.0):
        want = ((t - (1 - t) * s ** 2) * x - t * mu) / ((1 - t) ** 2 * s ** 2 + t ** 2)
        got = flow.mixture_velocity(x, t, mu, s, torch.ones(1))
        assert torch.allclose(got, want, atol=1e-5), (t, (got - want).abs().max())


def test_at_t_1_the_velocity_is_x_minus_the_data_mean():
    ring = lab2d.ring_of_gaussians(k=5, radius=1.0, std=0.2)
    weights = torch.tensor([0.1, 0.2, 0.3, 0.15, 0.25])
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(3))
    got = flow.mixture_velocity(x, 1.0, ring.means, ring.std, weights)
    assert torch.allclose(got, x - weights @ ring.means, atol=1e-5)


def test_the_exact_velocitys_ode_carries_the_noise_to_the_mixture():
    ring = lab2d.ring_of_gaussians(k=4, radius=2.0, std=0.2)
    z = torch.randn(3000, 2, generator=torch.Generator().manual_seed(4))
    field = lambda x, t: flow.mixture_velocity(x, t, ring.means, ring.std, ring.weights)
    end = lab2d.integrate(field, z, torch.linspace(1, 0, 201))[-1]
    data = ring.sample(3000, seed=5)
    floor = lab2d.sliced_wasserstein(ring.sample(3000, seed=6), data)
    assert lab2d.sliced_wasserstein(end, data) < 1.5 * floor             # within the distance of two data samples
    assert lab2d.sliced_wasserstein(z, data) > 3 * floor                 # which the noise itself is not


# --------------------------------------------------------------------------- straightness
def test_straightness_is_1_on_a_segment_and_the_chord_over_the_length_otherwise():
    seg = torch.linspace(0, 1, 6).view(-1, 1, 1) * torch.tensor([[[3.0, 4.0]]])          # a straight segment
    corner = torch.tensor([[[0.0, 0.0]], [[1.0, 0.0]], [[1.0, 1.0]]])                    # a right angle
    back = torch.tensor([[[0.0, 0.0]], [[2.0, 0.0]], [[1.0, 0.0]]])                      # out and half back
    got = flow.straightness(torch.cat([seg[[0, 2, 5]], corner, back], 1))
    assert torch.allclose(got, torch.tensor([1.0, 1 / math.sqrt(2), 1 / 3]), atol=1e-6)


# --------------------------------------------------------------------------- the judges on typical mistakes
@pytest.mark.parametrize("gid, wrong, words", [
    ("test_eps_to_velocity", lambda x, e, a, s, da, ds: e - (x - s * e) / a, "only"),
    ("test_eps_to_velocity", lambda x, e, a, s, da, ds: (x - s * e) / a, "x0_hat itself"),
    ("test_eps_to_velocity", lambda x, e, a, s, da, ds: da * (x + s * e) / a + ds * e, "subtracted"),
    ("test_mixture_velocity", lambda *a: -flow.mixture_velocity(*a), "sign is flipped"),
    ("test_straightness", lambda p: 1 / flow.straightness(p), "Upside down"),
    ("test_straightness", lambda p: flow.straightness(p).mean(), "wrong shape"),
])
def test_a_typical_mistake_fails_with_a_hint(gid, wrong, words):
    with pytest.raises(SelfCheckError, match=words):
        graded.run_in_process(gid, wrong)


def test_unweighted_components_fail_with_their_hint():
    def unweighted(x, t, means, std, weights):
        a, var = 1 - t, (1 - t) ** 2 * std ** 2 + t ** 2
        diff = x[:, None, :] - a * means[None]
        return (t / var * diff - (means[None] + a * std ** 2 / var * diff)).mean(1)
    with pytest.raises(SelfCheckError, match="resp"):
        graded.run_in_process("test_mixture_velocity", unweighted)


@pytest.mark.parametrize("gid, right", [("test_eps_to_velocity", flow.eps_to_velocity),
                                        ("test_mixture_velocity", flow.mixture_velocity),
                                        ("test_straightness", flow.straightness)])
def test_the_reference_passes_its_graded_test(gid, right):
    assert graded.run_in_process(gid, right)


# --------------------------------------------------------------------------- the lab's tools
def test_sliced_wasserstein_of_a_shift_is_its_length_over_root_2():
    a = torch.randn(500, 2, generator=torch.Generator().manual_seed(7))
    d = torch.tensor([0.6, -0.8])
    assert lab2d.sliced_wasserstein(a, a) == 0.0
    assert lab2d.sliced_wasserstein(a, a + d, n_proj=20000) == pytest.approx(1 / math.sqrt(2), rel=0.02)
    with pytest.raises(ValueError, match="same shape"):
        lab2d.sliced_wasserstein(a, a[:10])


def test_integrate_keeps_every_point_and_takes_euler_steps():
    x = torch.ones(3, 2)
    path = lab2d.integrate(lambda x_, t: -x_, x, [1.0, 0.5, 0.0])       # dx/dt = -x, backwards in time
    assert path.shape == (3, 3, 2)
    assert torch.allclose(path[:, 0, 0], torch.tensor([1.0, 1.5, 2.25]))


def test_the_ring_has_its_means_and_spread_and_the_same_seed_gives_the_same_points():
    ring = lab2d.ring_of_gaussians(k=8, radius=2.0, std=0.15)
    assert torch.allclose(ring.means.norm(dim=1), torch.full((8,), 2.0))
    x = ring.sample(4000, seed=1)
    assert torch.equal(x, ring.sample(4000, seed=1)) and not torch.equal(x, ring.sample(4000, seed=2))
    nearest = torch.cdist(x, ring.means).min(1).values
    assert nearest.pow(2).mean().sqrt().item() == pytest.approx(0.15 * math.sqrt(2), rel=0.05)


def test_the_mlp_takes_a_number_or_one_time_per_point():
    net = lab2d.TimeMLP(hidden=16)
    x = torch.randn(5, 2)
    assert torch.allclose(net(x, 0.3), net(x, torch.full((5,), 0.3)))
    assert not torch.allclose(net(x, 0.3), net(x, 0.7))


# --------------------------------------------------------------------------- the notebook's own cells (tests/graded_cells.py)
from graded_cells import graded_cell_tests  # noqa: E402

NB8 = Path(__file__).resolve().parent.parent / "notebooks" / "source" / "08_flow_matching" / "08_flow_matching.ipynb"

CELL = {"test_eps_to_velocity": "eps_to_velocity", "test_mixture_velocity": "mixture_velocity",
        "test_straightness": "straightness"}
# grade id -> (what a student might write in the notebook cell instead of the solution's lines, words the verdict says)
MISTAKES = {
    "test_eps_to_velocity": [("x0_hat = (x_t - sigma * eps) / alpha\nv = eps - x0_hat", "only"),
                             ("v = d_alpha * x_t + d_sigma * eps", "needs the clean image, not x_t")],
    "test_mixture_velocity": [("x0_k = means[None] + a * std ** 2 / var * diff\neps_k = t / var * diff\n"
                               "v = (resp[..., None] * (x0_k - eps_k)).sum(1)", "sign is flipped"),
                              ("eps_k = t / var * diff\nv = (resp[..., None] * (eps_k - means[None])).sum(1)",
                               "not the component's mean")],
    "test_straightness": [("length = (path[1:] - path[:-1]).norm(dim=-1).sum(0)\nratio = length / chord", "Upside down"),
                          ("length = (path[1:] - path[:-1]).norm(dim=-1).sum(0)\nratio = (chord / length).mean()",
                           "one number per trajectory")],
}


test_the_notebook_solution_passes_and_its_blank_fails, test_a_mistake_in_the_notebook_cell_earns_nothing_and_is_named = \
    graded_cell_tests(NB8, CELL, MISTAKES)
