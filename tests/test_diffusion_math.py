"""The schedule, the forward process and the reverse step, checked against the DDPM equations.

Statistical checks use tolerances derived from the sample size (k standard errors), with fixed seeds.
"""
import math

import numpy as np
import pytest
import torch

from solutions import (Schedule, ddpm_reverse_step, default_schedule, extract, forward_diffuse_1d,
                       linear_beta_schedule, p_sample_DDPM, q_sample)

K_SIGMA = 5.0  # how many standard errors a statistic may stray before the test fails


def paper_schedule(T=1000, b0=1e-4, b1=0.02):
    """β_t, α_t, ᾱ_t computed independently in float64 NumPy."""
    betas = np.array([b0 + (b1 - b0) * i / (T - 1) for i in range(T)])
    alphas = 1 - betas
    return betas, alphas, np.cumprod(alphas)


# --------------------------------------------------------------------------- schedule
def test_linear_schedule_endpoints_and_length():
    betas = linear_beta_schedule(1000)
    assert betas.shape == (1000,)
    assert betas[0].item() == pytest.approx(1e-4, rel=1e-6)
    assert betas[-1].item() == pytest.approx(0.02, rel=1e-6)
    assert torch.all(betas[1:] > betas[:-1])
    np.testing.assert_allclose(betas.double().numpy(), paper_schedule()[0], rtol=1e-5)


def test_schedule_alpha_bars_strictly_decreasing_and_match_products():
    s = Schedule.linear(1000)
    ab = s.alpha_bars
    assert torch.all(ab[1:] < ab[:-1]), "ᾱ_t must shrink at every step"
    assert 0 < ab[-1].item() < 1e-4, "after T=1000 steps almost no signal is left"
    np.testing.assert_allclose(ab.double().numpy(), paper_schedule()[2], rtol=1e-4)
    np.testing.assert_allclose(s.alphas.numpy(), 1 - s.betas.numpy())


def test_schedule_with_other_length_and_range():
    s = Schedule.linear(50, 1e-3, 0.05)
    assert s.T == 50 and s.betas[0].item() == pytest.approx(1e-3) and s.betas[-1].item() == pytest.approx(0.05)
    with pytest.raises(ValueError, match="positive"):
        linear_beta_schedule(0)


# --------------------------------------------------------------------------- extract
def test_extract_picks_per_sample_values_and_broadcasts():
    a = torch.arange(10.0) * 10
    t = torch.tensor([0, 3, 9])
    out = extract(a, t, (3, 1, 28, 28))
    assert out.shape == (3, 1, 1, 1)
    assert out.flatten().tolist() == [0.0, 30.0, 90.0]
    assert extract(a, t, (3, 5)).shape == (3, 1)
    assert (out * torch.ones(3, 1, 28, 28)).shape == (3, 1, 28, 28)


devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", devices)
def test_extract_returns_on_timestep_device(device):
    a = torch.linspace(0, 1, 1000)            # schedule tensors live on the CPU
    t = torch.tensor([5, 7], device=device)
    assert extract(a, t, (2, 1, 28, 28)).device.type == device


def test_extract_rejects_non_vector_t():
    with pytest.raises(ValueError, match="1-D"):
        extract(torch.arange(10.0), torch.tensor(3), (1, 1, 28, 28))


# --------------------------------------------------------------------------- forward process
@pytest.mark.parametrize("t", [0, 25, 100, 500, 999])
def test_q_sample_moments_match_closed_form(t):
    """x_t | x_0 ~ N(sqrt(ᾱ_t) x_0, (1-ᾱ_t) I): check mean and variance per pixel value."""
    torch.manual_seed(t)
    _, _, ab = paper_schedule()
    n = 20000
    x0_values = torch.tensor([-1.0, -0.3, 0.5, 1.0])
    x0 = x0_values.repeat(n, 1).reshape(n, 1, 2, 2)   # n copies of a 2x2 "image"
    xt = q_sample(x0, torch.full((n,), t, dtype=torch.long)).reshape(n, 4).double()
    mean_expected = math.sqrt(ab[t]) * x0_values.double()
    var_expected = 1 - ab[t]
    se_mean = math.sqrt(var_expected / n)
    se_var = var_expected * math.sqrt(2 / (n - 1))
    assert torch.all((xt.mean(0) - mean_expected).abs() < K_SIGMA * se_mean), (xt.mean(0), mean_expected)
    assert torch.all((xt.var(0) - var_expected).abs() < K_SIGMA * se_var), (xt.var(0), var_expected)


def test_q_sample_uses_given_noise_exactly():
    x0 = torch.rand(3, 1, 28, 28) * 2 - 1
    noise = torch.randn_like(x0)
    t = torch.tensor([0, 10, 999])
    _, _, ab = paper_schedule()
    expected = torch.stack([math.sqrt(ab[i]) * x0[k] + math.sqrt(1 - ab[i]) * noise[k]
                            for k, i in enumerate(t.tolist())])
    torch.testing.assert_close(q_sample(x0, t, noise), expected, rtol=1e-5, atol=1e-5)


def test_q_sample_respects_a_passed_schedule():
    s = Schedule.linear(10, 0.1, 0.5)
    x0 = torch.ones(1, 1, 28, 28)
    noise = torch.zeros_like(x0)
    out = q_sample(x0, torch.tensor([9]), noise, schedule=s)
    expected = math.sqrt(np.prod(1 - np.linspace(0.1, 0.5, 10)))
    assert out.mean().item() == pytest.approx(expected, rel=1e-5)


def test_x_T_is_close_to_standard_normal():
    torch.manual_seed(0)
    x0 = torch.rand(512, 1, 28, 28) * 2 - 1          # any data in [-1, 1]
    xT = q_sample(x0, torch.full((512,), 999, dtype=torch.long)).double().flatten()
    n = xT.numel()
    assert abs(xT.mean().item()) < math.sqrt(4.4e-5) + K_SIGMA / math.sqrt(n)
    assert abs(xT.var().item() - 1) < K_SIGMA * math.sqrt(2 / n)
    # and the shape of the distribution: quantiles of N(0, 1)
    for q, z in [(0.025, -1.95996), (0.5, 0.0), (0.975, 1.95996)]:
        assert abs(torch.quantile(xT[:1_000_000].float(), q).item() - z) < 0.02


def test_q_sample_rejects_mismatched_noise():
    with pytest.raises(ValueError, match="noise has shape"):
        q_sample(torch.zeros(2, 1, 28, 28), torch.tensor([1, 2]), torch.zeros(2, 1, 14, 14))


def test_forward_1d_chain_converges_to_standard_normal():
    g = torch.Generator().manual_seed(0)
    n = 20000
    x0 = torch.cat([torch.full((n // 2,), -2.0), torch.full((n // 2,), 2.0)])
    xs = forward_diffuse_1d(x0, beta=0.05, n_steps=200, generator=g)
    assert xs.shape == (201, n)
    # After k steps: mean = (1-β)^{k/2} x0, var = 1 - (1-β)^k  -> at k=200 essentially N(0, 1)
    last = xs[-1].double()
    assert abs(last.mean().item()) < K_SIGMA / math.sqrt(n)
    assert abs(last.var().item() - (1 - 0.95 ** 200) - 0.95 ** 200 * 4) < K_SIGMA * math.sqrt(2 / n) * 1.0


# --------------------------------------------------------------------------- reverse step (Algorithm 2)
class ConstantEps(torch.nn.Module):
    """A stand-in for ε_θ that returns a fixed prediction."""

    def __init__(self, eps):
        super().__init__()
        self.eps = eps

    def forward(self, x, t):
        return self.eps


@pytest.mark.parametrize("t_index", [999, 500, 1])
def test_reverse_step_matches_algorithm_2(t_index):
    betas, alphas, ab = paper_schedule()
    x = torch.randn(2, 1, 28, 28)
    eps = torch.randn_like(x)
    t = torch.full((2,), t_index, dtype=torch.long)
    torch.manual_seed(123)
    out = p_sample_DDPM(ConstantEps(eps), x, t, t_index)
    torch.manual_seed(123)
    z = torch.randn_like(x)
    b, a, abar = betas[t_index], alphas[t_index], ab[t_index]
    expected = (x - b / math.sqrt(1 - abar) * eps) / math.sqrt(a) + math.sqrt(b) * z
    torch.testing.assert_close(out, expected.float(), rtol=1e-4, atol=1e-5)


def test_reverse_step_at_t0_adds_no_noise():
    betas, alphas, ab = paper_schedule()
    x = torch.randn(3, 1, 28, 28)
    eps = torch.randn_like(x)
    t = torch.zeros(3, dtype=torch.long)
    torch.manual_seed(1)
    a = p_sample_DDPM(ConstantEps(eps), x, t, 0)
    torch.manual_seed(2)
    b = p_sample_DDPM(ConstantEps(eps), x, t, 0)
    torch.testing.assert_close(a, b)
    expected = (x - betas[0] / math.sqrt(1 - ab[0]) * eps) / math.sqrt(alphas[0])
    torch.testing.assert_close(a, expected.float(), rtol=1e-4, atol=1e-5)


def test_reverse_step_with_true_noise_recovers_x0_in_expectation():
    """If ε_θ is the true ε, the step's mean is the posterior mean μ̃(x_t, x_0) of q(x_{t-1} | x_t, x_0)."""
    betas, alphas, ab = paper_schedule()
    t_index = 300
    x0 = torch.rand(4, 1, 28, 28) * 2 - 1
    eps = torch.randn_like(x0)
    t = torch.full((4,), t_index, dtype=torch.long)
    xt = q_sample(x0, t, eps)
    mean = ddpm_reverse_step(xt, eps, t, 0)   # t_index=0 -> no noise, returns the mean itself
    ab_prev = ab[t_index - 1]
    mu_tilde = (math.sqrt(ab_prev) * betas[t_index] / (1 - ab[t_index])) * x0 + \
               (math.sqrt(alphas[t_index]) * (1 - ab_prev) / (1 - ab[t_index])) * xt
    torch.testing.assert_close(mean, mu_tilde.float(), rtol=1e-3, atol=1e-4)


def test_default_schedule_is_cached_per_device_and_not_shared_mutable_state():
    s = default_schedule("cpu")
    assert s is default_schedule("cpu") and s.T == 1000
    with pytest.raises(Exception):
        s.betas = torch.zeros(3)  # frozen dataclass: callers cannot silently change the default
