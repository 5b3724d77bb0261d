"""Notebook 1, part 2: the exact score of the noised mixture, Tweedie's formula and the probability-flow ODE step,
checked against independent derivations -- and the grading of its blanks: the reference passes, each plausible
mistake fails the blank it is in with its hint, a blank that imports the answer fails in the bundle."""
from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ddpm_instructor import graded
from solutions.score1d import mixture_score, pf_ode_step, reverse_sde_step, tweedie_eps
from tutorial_utils.checks import SelfCheckError, check_mixture_score, check_pf_ode_step

ROOT = Path(__file__).resolve().parent.parent
MEANS, STDS, WEIGHTS = (torch.tensor(v, dtype=torch.float64) for v in ([-2.0, 1.5], [0.15, 0.15], [0.5, 0.5]))


def log_density(x, alpha_bar, means, stds, weights):
    """log p_t(x) written out: log Σ_k w_k N(x; sqrt(ᾱ) μ_k, ᾱ σ_k² + 1 - ᾱ)."""
    m, v = math.sqrt(alpha_bar) * means, alpha_bar * stds ** 2 + 1 - alpha_bar
    pdf = weights * torch.exp(-(x[..., None] - m) ** 2 / (2 * v)) / torch.sqrt(2 * math.pi * v)
    return torch.log(pdf.sum(-1))


@pytest.mark.parametrize("alpha_bar", [0.999, 0.6, 0.05])
def test_the_score_is_the_gradient_of_the_log_density(alpha_bar):
    x = torch.linspace(-4, 4, 161, dtype=torch.float64).requires_grad_()
    (grad,) = torch.autograd.grad(log_density(x, alpha_bar, MEANS, STDS, WEIGHTS).sum(), x)
    assert torch.allclose(mixture_score(x.detach(), alpha_bar, MEANS, STDS, WEIGHTS), grad, atol=1e-8, rtol=1e-6)


def test_tweedie_gives_the_posterior_mean_of_the_noise_for_a_gaussian():
    """One component N(μ, σ²): E[x_0 | x_t] = μ + σ² sqrt(ᾱ) (x_t - sqrt(ᾱ) μ) / v (Gaussian conditioning), hence
    E[ε | x_t] = (x_t - sqrt(ᾱ) E[x_0 | x_t]) / sqrt(1 - ᾱ); Tweedie's -sqrt(1 - ᾱ)·score must equal it."""
    mu, sigma, ab = torch.tensor([0.7], dtype=torch.float64), torch.tensor([0.4], dtype=torch.float64), 0.3
    x = torch.linspace(-3, 3, 61, dtype=torch.float64)
    v = ab * sigma ** 2 + 1 - ab
    x0_mean = mu + sigma ** 2 * math.sqrt(ab) * (x - math.sqrt(ab) * mu) / v
    eps_mean = (x - math.sqrt(ab) * x0_mean) / math.sqrt(1 - ab)
    got = tweedie_eps(mixture_score(x, ab, mu, sigma, torch.ones(1, dtype=torch.float64)), ab)
    assert torch.allclose(got, eps_mean, atol=1e-10)


@pytest.mark.parametrize("stochastic", [False, True])
def test_walking_back_a_gaussian_recovers_its_spread(stochastic):
    """Data N(0, s²): p_t = N(0, ᾱ s² + 1 - ᾱ).  From x_T ~ p_T, small steps of the ODE (or the SDE) with the exact
    score -x / v_t must end with standard deviation s (to the discretisation and sampling error)."""
    s, beta, n = 0.3, 0.002, 1500
    g = torch.Generator().manual_seed(0)
    var_T = (1 - beta) ** n * s ** 2 + 1 - (1 - beta) ** n
    x = torch.randn(20_000, generator=g, dtype=torch.float64) * math.sqrt(var_T)
    for t in range(n, 0, -1):
        ab = (1 - beta) ** t
        score = -x / (ab * s ** 2 + 1 - ab)
        x = reverse_sde_step(x, score, beta, torch.randn(x.shape, generator=g, dtype=torch.float64)) if stochastic \
            else pf_ode_step(x, score, beta)
    assert abs(x.std().item() / s - 1) < 0.04 and abs(x.mean().item()) < 0.02


# --------------------------------------------------------------------------- the blanks, graded
def _score_fn(m_line="m = math.sqrt(alpha_bar) * means", v_line="v = alpha_bar * stds ** 2 + (1 - alpha_bar)",
              ret="return (r * (-(x - m) / v)).sum(-1)"):
    src = f"""
def mixture_score(x, alpha_bar, means, stds, weights):
    {m_line}
    {v_line}
    x = x.unsqueeze(-1)
    log_joint = torch.log(weights) - 0.5 * (x - m) ** 2 / v - 0.5 * torch.log(2 * math.pi * v)
    r = torch.softmax(log_joint, dim=-1)
    {ret}
"""
    ns = {"torch": torch, "math": math}
    exec(src, ns)
    return ns["mixture_score"]


def _graded(fn, gids) -> dict:
    out = {}
    for gid in gids:
        try:
            graded.run_in_process(gid, fn)
            out[gid] = ""
        except SelfCheckError as e:
            out[gid] = str(e)
    return out


SCORE_TESTS = ["test_mixture_score_m", "test_mixture_score_v", "test_mixture_score_return"]


@pytest.mark.parametrize("change, failing, hint", [
    ({}, set(), ""),
    ({"m_line": "m = None"}, {"m", "return"}, "m is still None"),
    ({"v_line": "v = None"}, {"v", "return"}, "v is still None"),
    ({"ret": "return None"}, {"return"}, "returned None"),
    ({"m_line": "m = alpha_bar * means"}, {"m", "return"}, "It looks like \u1fb1_t\u00b7\u03bc_k"),
    ({"v_line": "v = math.sqrt(alpha_bar) * stds + (1 - alpha_bar) ** 0.5"}, {"v", "return"}, "variances at step t"),
    ({"v_line": "v = (alpha_bar * stds ** 2 + (1 - alpha_bar)).sqrt()"}, {"v", "return"}, "a standard deviation"),
    ({"v_line": "v = stds ** 2 + (1 - alpha_bar)"}, {"v", "return"}, "The data's spread shrinks too"),
    ({"ret": "return (r * ((x - m) / v)).sum(-1)"}, {"return"}, "The sign is flipped"),
])
def test_each_mixture_score_blank_is_judged_on_its_own(change, failing, hint):
    res = _graded(_score_fn(**change), SCORE_TESTS)
    assert {g.rsplit("_", 1)[1] for g, msg in res.items() if msg} == failing, res
    if hint:
        assert any(hint in msg for msg in res.values()), res
        with pytest.raises(SelfCheckError):
            check_mixture_score(_score_fn(**change), quiet=True)
    else:
        check_mixture_score(_score_fn(), quiet=True)


def test_a_score_computed_inline_earns_every_blank():
    """No line named m or v: the blanks m and v are judged by the score that used them (right there is right)."""
    def inline(x, alpha_bar, means, stds, weights):
        mm, vv = math.sqrt(alpha_bar) * means, alpha_bar * stds ** 2 + 1 - alpha_bar
        x = x.unsqueeze(-1)
        r = torch.softmax(torch.log(weights) - 0.5 * (x - mm) ** 2 / vv - 0.5 * torch.log(2 * math.pi * vv), dim=-1)
        return (r * (-(x - mm) / vv)).sum(-1)

    assert _graded(inline, SCORE_TESTS) == {g: "" for g in SCORE_TESTS}

    def inline_wrong(x, alpha_bar, means, stds, weights):
        return inline(x, alpha_bar, means, stds, weights) * 0.5
    res = _graded(inline_wrong, SCORE_TESTS)
    assert all("no longer sets" in res[g] for g in SCORE_TESTS[:2]) and "differs from the exact score" in res[SCORE_TESTS[2]]


@pytest.mark.parametrize("step, hint", [
    (lambda x, s, b: x + 0.5 * b * (x + s), ""),
    (lambda x, s, b: None, "returned None"),
    (lambda x, s, b: x + b * (x + s), "missing the \u00bd"),
    (lambda x, s, b: x - 0.5 * b * (x + s), "wrong way"),
    (lambda x, s, b: (x + b * s) / (1 - b) ** 0.5, "reverse SDE's mean"),
    (lambda x, s, b: x + 0.5 * b * s, "differs from x + \u00bd\u03b2"),
])
def test_each_pf_ode_step_mistake_fails_with_its_hint(step, hint):
    msg = _graded(step, ["test_pf_ode_step"])["test_pf_ode_step"]
    assert (hint in msg and msg) if hint else not msg, msg
    if hint:
        with pytest.raises(SelfCheckError, match=re.escape(hint)):
            check_pf_ode_step(step, quiet=True)


def test_notebook1_delegating_to_the_reference_fails_in_the_bundle(tmp_path):
    """The bundle of 01_forward_1d lacks solutions.score1d (its own stage): importing the answer from there raises
    an ImportError that names the assignment."""
    from ddpm_instructor.bundle import ASSIGNMENT_STAGES, bundle_modules

    modules = bundle_modules("01_forward_1d", ASSIGNMENT_STAGES - {"01_forward_1d"})
    assert "score1d" not in modules and "helpers" in modules
    sol = tmp_path / "solutions"
    sol.mkdir()
    for m in ["__init__"] + modules:
        (sol / f"{m}.py").write_text((ROOT / "solutions" / f"{m}.py").read_text())
    r = subprocess.run([sys.executable, "-c", "from solutions import mixture_score"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert r.returncode != 0 and "is the answer of assignment 01_forward_1d, which is not public" in r.stderr, r.stderr
