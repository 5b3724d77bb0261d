"""solutions.beyond (notebook 7) against the mathematics: the cosine schedule's ᾱ_t, classifier-free guidance,
DDIM's step (eq. 12 of Song et al. 2021) and its DDPM limit (η = 1, every step)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import solutions
from solutions import Schedule, cosine_beta_schedule, ddim_sample_loop, ddim_step, guided_eps, p_sample_loop_cfg


# ------------------------------------------------------------------ cosine schedule
@pytest.mark.parametrize("T", [10, 1000])
def test_cosine_alpha_bar_is_the_cos2_formula(T):
    s = 0.008
    betas = cosine_beta_schedule(T, s=s, dtype=torch.float64)
    assert betas.shape == (T,) and betas.dtype == torch.float64
    alpha_bar = torch.cumprod(1 - betas, 0)
    f = [math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2 for t in range(T + 1)]
    want = torch.tensor([f[t] / f[0] for t in range(1, T + 1)], dtype=torch.float64)
    clipped = betas >= 0.999
    assert clipped.sum() <= 1 and (not clipped.any() or clipped[-1])   # only the very last β hits the clip
    n = T - int(clipped.sum())
    torch.testing.assert_close(alpha_bar[:n], want[:n], rtol=1e-12, atol=1e-15)


def test_cosine_betas_bounded_and_monotone():
    betas = cosine_beta_schedule(1000)
    assert betas.dtype == torch.float32
    assert (betas > 0).all() and (betas <= 0.999).all()
    assert betas[-1] == pytest.approx(0.999)
    assert (betas[1:] >= betas[:-1]).all()                            # β_t grows with t
    assert (torch.diff(torch.cumprod(1 - betas.double(), 0)) < 0).all()


# ------------------------------------------------------------------ guidance
def test_guided_eps_endpoints_and_linearity():
    g = torch.Generator().manual_seed(0)
    ec, eu = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    torch.testing.assert_close(guided_eps(ec, eu, 0.0), eu)
    torch.testing.assert_close(guided_eps(ec, eu, 1.0), ec)
    for w in (0.5, 2.0, 3.0):
        torch.testing.assert_close(guided_eps(ec, eu, w), (1 - w) * eu + w * ec)
    # linear in w: the step from w to w+1 is always ε_c - ε_u
    torch.testing.assert_close(guided_eps(ec, eu, 3.0) - guided_eps(ec, eu, 2.0), ec - eu)
    # the paper's convention ε_c + w'(ε_c - ε_u) is ours with w = w' + 1
    torch.testing.assert_close(ec + 2.0 * (ec - eu), guided_eps(ec, eu, 3.0))


# ------------------------------------------------------------------ DDIM step
def _lin64():
    return Schedule(torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64))


@pytest.mark.parametrize("t,t_prev", [(999, 979), (500, 499), (300, 0), (10, -1)])
def test_ddim_eta0_with_true_noise_lands_on_q(t, t_prev):
    """x_t = sqrt(ᾱ_t) x_0 + sqrt(1-ᾱ_t) ε with the true ε: the step gives sqrt(ᾱ_{t'}) x_0 + sqrt(1-ᾱ_{t'}) ε."""
    s = _lin64()
    ab = torch.cumprod(1 - s.betas, 0)
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(4, 1, 5, 5, generator=g, dtype=torch.float64) * 2 - 1
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    x_t = ab[t].sqrt() * x0 + (1 - ab[t]).sqrt() * eps
    a_prev = ab[t_prev] if t_prev >= 0 else torch.tensor(1.0, dtype=torch.float64)
    want = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    got = ddim_step(x_t, eps, t, t_prev, s, eta=0.0)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-10)
    got_tensor_t = ddim_step(x_t, eps, torch.full((4,), t), torch.full((4,), t_prev), s, eta=0.0)
    torch.testing.assert_close(got_tensor_t, want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("t", [1, 10, 500, 999])
def test_ddim_eta1_is_the_ddpm_posterior(t):
    """η = 1, t' = t - 1: mean μ̃_t(x_t, x̂_0) and standard deviation sqrt(β̃_t) of q(x_{t-1} | x_t, x_0)."""
    s = _lin64()
    beta = s.betas
    alpha = 1 - beta
    ab = torch.cumprod(alpha, 0)
    g = torch.Generator().manual_seed(2)
    x_t = torch.randn(3, 1, 4, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(x_t.shape, generator=g, dtype=torch.float64)
    z = torch.randn(x_t.shape, generator=g, dtype=torch.float64)
    x0_hat = (x_t - (1 - ab[t]).sqrt() * eps) / ab[t].sqrt()
    mean = (ab[t - 1].sqrt() * beta[t] / (1 - ab[t])) * x0_hat + (alpha[t].sqrt() * (1 - ab[t - 1]) / (1 - ab[t])) * x_t
    beta_tilde = (1 - ab[t - 1]) / (1 - ab[t]) * beta[t]
    torch.testing.assert_close(ddim_step(x_t, eps, t, t - 1, s, eta=1.0, noise=torch.zeros_like(z)), mean,
                               rtol=0, atol=1e-9)
    torch.testing.assert_close(ddim_step(x_t, eps, t, t - 1, s, eta=1.0, noise=z), mean + beta_tilde.sqrt() * z,
                               rtol=0, atol=1e-9)


class _ZeroEps(nn.Module):
    """ε_θ ≡ 0; records every x_t it is called with."""

    def __init__(self):
        super().__init__()
        self.p = nn.Parameter(torch.zeros(()))
        self.seen = []

    def forward(self, x, t, y=None):
        self.seen.append((int(t[0]), x.clone()))
        return torch.zeros_like(x)


def test_ddim_loop_all_steps_eta1_has_the_ddpm_variance_at_each_step():
    """n_steps = T, η = 1: with ε_θ = 0 a step is x_{t-1} = sqrt(ᾱ_{t-1}/ᾱ_t) x_t + σ z, and σ² must be β̃_t."""
    T = 50
    betas = torch.linspace(1e-3, 0.2, T, dtype=torch.float64)
    s = Schedule(betas.float())
    ab = torch.cumprod(1 - betas, 0)
    model = _ZeroEps()
    x0 = ddim_sample_loop(model, (32, 1, 28, 28), n_steps=T, eta=1.0, schedule=s, seed=0, clip_x0=False)
    seen = model.seen + [(-1, x0)]
    assert [t for t, _ in model.seen] == list(range(T - 1, -1, -1))    # every timestep, once, in order
    for (t, x_t), (_, x_prev) in zip(seen[:-1], seen[1:]):
        a_prev = ab[t - 1] if t > 0 else torch.tensor(1.0, dtype=torch.float64)
        resid = x_prev.double() - (a_prev / ab[t]).sqrt() * x_t.double()
        var = resid.pow(2).mean()
        if t == 0:
            assert var < 1e-10                                        # the last step adds no noise
            continue
        beta_tilde = ((1 - ab[t - 1]) / (1 - ab[t]) * betas[t]).item()
        assert var.item() == pytest.approx(beta_tilde, rel=0.06), t   # 25088 draws: ~1 % standard error


def test_ddim_clip_x0_uses_the_eps_of_the_clamped_x0():
    """clip_x0: x̂_0 clamped to [-1, 1], then eq. 12 with ε' = (x_t - sqrt(ᾱ_t) x̂_0) / sqrt(1-ᾱ_t)."""
    s = _lin64()
    ab = torch.cumprod(1 - s.betas, 0)
    g = torch.Generator().manual_seed(3)
    x_t = 3 * torch.randn(2, 1, 4, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(x_t.shape, generator=g, dtype=torch.float64)
    t, tp = 400, 350
    x0 = ((x_t - (1 - ab[t]).sqrt() * eps) / ab[t].sqrt()).clamp(-1, 1)
    eps2 = (x_t - ab[t].sqrt() * x0) / (1 - ab[t]).sqrt()
    want = ab[tp].sqrt() * x0 + (1 - ab[tp]).sqrt() * eps2
    torch.testing.assert_close(ddim_step(x_t, eps, t, tp, s, clip_x0=True), want, rtol=0, atol=1e-10)
    # an x̂_0 already in range is left alone
    x0 = torch.rand(x_t.shape, generator=g, dtype=torch.float64) * 2 - 1
    x_t = ab[t].sqrt() * x0 + (1 - ab[t]).sqrt() * eps
    torch.testing.assert_close(ddim_step(x_t, eps, t, tp, s, clip_x0=True), ddim_step(x_t, eps, t, tp, s),
                               rtol=0, atol=1e-10)


def test_ddim_timesteps_evenly_spaced():
    from solutions.beyond import ddim_timesteps

    assert ddim_timesteps(1000, 1000) == list(range(999, -1, -1))
    ts = ddim_timesteps(1000, 50)
    assert len(ts) == 50 and ts[0] == 999 and ts[-1] == 0
    gaps = [a - b for a, b in zip(ts, ts[1:])]
    assert max(gaps) - min(gaps) <= 1


# ------------------------------------------------------------------ guided sampling loops
class _LabelEps(nn.Module):
    """ε_θ(x, t, y) = c_y (a constant per label); records the labels of every call."""

    def __init__(self, n_classes=11):
        super().__init__()
        self.c = nn.Parameter(torch.linspace(-0.5, 0.5, n_classes))
        self.labels = []

    def forward(self, x, t, y):
        self.labels.append(y.clone())
        return self.c[y].view(-1, 1, 1, 1).expand_as(x)


def test_guided_loops_mix_conditional_and_null():
    y = torch.tensor([0, 3])
    model = _LabelEps()
    ddim_sample_loop(model, (2, 1, 4, 4), n_steps=5, y=y, w=3.0, null_class=10, seed=0)
    assert len(model.labels) == 5 and all(l.tolist() == [0, 3, 10, 10] for l in model.labels)
    # DDPM with guidance: the same as the plain reverse step fed the guided ε (checked against the formula)
    T = 4
    s = Schedule(torch.linspace(0.1, 0.4, T))
    model = _LabelEps()
    w = 2.5
    out = p_sample_loop_cfg(model, (2, 1, 3, 3), y, w, 10, schedule=s, progress=False, seed=7)
    torch.manual_seed(7)
    x = torch.randn(2, 1, 3, 3)
    c = model.c.detach()
    eps = (c[10] + w * (c[y] - c[10])).view(-1, 1, 1, 1)
    alpha, ab = 1 - s.betas, torch.cumprod(1 - s.betas, 0)
    for t in reversed(range(T)):
        mean = (x - s.betas[t] / (1 - ab[t]).sqrt() * eps) / alpha[t].sqrt()
        x = mean + (s.betas[t].sqrt() * torch.randn_like(x) if t > 0 else 0)
    torch.testing.assert_close(out, x)
    with pytest.raises(ValueError, match="null_class"):
        ddim_sample_loop(model, (2, 1, 3, 3), n_steps=2, y=y, w=2.0)
    with pytest.raises(ValueError, match="labels"):
        ddim_sample_loop(model, (2, 1, 3, 3), n_steps=2, w=2.0)


def test_ddim_loop_runs_the_real_unet():
    torch.manual_seed(0)
    model = solutions.UNet_cond(ch=8, n_classes=11)
    x = ddim_sample_loop(model, (2, 1, 28, 28), n_steps=3, y=torch.tensor([1, 2]), w=2.0, null_class=10, seed=0)
    assert x.shape == (2, 1, 28, 28) and torch.isfinite(x).all()
    assert model.training                                             # the loop restores the mode


# ------------------------------------------------------------------ the judge (tutorial_utils.judge)
def test_frechet_distance_of_gaussians():
    """Two samples of the same Gaussian: ~0; shifted mean by m: ~‖m‖² (equal covariances cancel)."""
    from tutorial_utils.judge import frechet_distance

    g = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 3, generator=g, dtype=torch.float64)
    b = torch.randn(4000, 3, generator=g, dtype=torch.float64)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(a, b) < 0.02
    shift = torch.tensor([1.0, 2.0, 0.0], dtype=torch.float64)
    assert frechet_distance(a, b + shift) == pytest.approx(5.0, abs=0.15)
    # scaled covariance: Tr(Σ1 + Σ2 - 2(Σ1Σ2)^½) = 3 (1 + 4 - 2·2) = 3 for σ1 = 1, σ2 = 2
    assert frechet_distance(a, 2 * b) == pytest.approx(3.0, abs=0.2)


def test_judge_reads_real_digits_and_benchmarks_share_it():
    from tutorial_utils.judge import CLASSIFIER_PATH, judge_samples

    if not CLASSIFIER_PATH.is_file():
        pytest.skip("checkpoints/mnist_classifier.pt is missing")
    from tutorial_utils.data import load_mnist_tensors

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x, y = load_mnist_tensors(train=False, limit=200)
        r = judge_samples(x, y)
    finally:
        torch.set_num_threads(threads)
    assert r["n_samples"] == 200 and r["accuracy"] >= 0.97
    assert set(r["per_class_accuracy"]) == set(y.unique().tolist())
    assert sum(r["predicted_counts"]) == 200
    assert 0 < r["frechet_distance"] < 3 * r["frechet_floor"] + 1     # real test digits: near the real floor
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "common.py"
    spec = importlib.util.spec_from_file_location("bench_common_beyond", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    import tutorial_utils.judge as judge
    assert mod.classify is judge.classify and mod.frechet_distance is judge.frechet_distance
    assert mod.MnistClassifier is judge.MnistClassifier and mod.load_classifier is judge.load_classifier


# ------------------------------------------------------------------ the shipped checkpoint has a null class
def test_shipped_unet_cond_learned_the_null_class():
    """Trained with label dropout: the null class gives a usable unconditional ε (much better than an untrained
    net's ~1), worse than the true label (the label carries information), and the json records the recipe."""
    import json

    from tutorial_utils import load_pretrained, pretrained_available
    from tutorial_utils.checkpoints import CHECKPOINT_DIR, PRETRAINED
    from tutorial_utils.data import load_mnist_tensors

    spec = PRETRAINED["unet_cond"]
    null = spec["recipe"].get("null_class")
    if null is None or not pretrained_available("unet_cond"):
        pytest.skip("the shipped unet_cond has no null class")
    assert null == spec["kwargs"]["n_classes"] - 1 and spec["recipe"]["p_uncond"] > 0
    meta = json.loads((CHECKPOINT_DIR / "unet_cond.json").read_text())
    assert meta["recipe"]["null_class"] == null and meta["recipe"]["p_uncond"] == spec["recipe"]["p_uncond"]
    model = load_pretrained("unet_cond")
    x0, y = load_mnist_tensors(train=False, limit=256)
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(x0.shape, generator=g)
    t = torch.full((x0.shape[0],), 500)
    xt = solutions.q_sample(x0, t, noise)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            right = ((model(xt, t, y) - noise) ** 2).mean()
            uncond = ((model(xt, t, torch.full_like(y, null)) - noise) ** 2).mean()
    finally:
        torch.set_num_threads(threads)
    assert uncond < 0.5, uncond.item()
    assert right < 0.9 * uncond, (right.item(), uncond.item())
