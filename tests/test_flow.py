"""Notebook 8's math (solutions/flow.py) against closed forms.

The fields used here have exact solutions:
* point data x_0 = μ: the velocity E[ε - x_0 | x_t = x] is (x - μ) / t, and every ODE path is a straight line to μ;
* Gaussian data x_0 ~ N(0, s²): x_t ~ N(0, σ_t²), σ_t² = (1-t)² s² + t², the velocity is linear,
  v(x, t) = x (t - (1-t) s²) / σ_t², and the ODE maps x_1 to x_0 = s x_1 (σ_t / σ_1 scaling);
* its DDPM twin: ε(x, t) = sqrt(1-ᾱ_t) x / (ᾱ_t s² + 1 - ᾱ_t), and the probability-flow ODE maps x_T to
  x_T s / sqrt(ᾱ_T s² + 1 - ᾱ_T).
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from solutions import flow
from solutions.beyond import ddim_sample_loop, dpm_solver_2m_sample_loop, logsnr_timesteps
from solutions.diffusion import default_schedule


class Field(nn.Module):
    """A stand-in 'network' with a known velocity (or ε) field; remembers its calls."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.dummy = nn.Parameter(torch.zeros(()))
        self.calls = []

    def forward(self, x, t_in, y):
        self.calls.append((x.shape[0], t_in.clone(), y.clone()))
        return self.fn(x, t_in, y)


def gaussian_velocity(s):
    def v(x, t_in, y):
        t = (t_in / flow.TIME_SCALE).view(-1, 1, 1, 1)
        return x * (t - (1 - t) * s ** 2) / ((1 - t) ** 2 * s ** 2 + t ** 2)
    return v


def test_the_interpolant_has_the_marginal_moments_of_its_closed_form():
    torch.manual_seed(0)
    x_0 = torch.full((4, 1, 100, 100), 0.7).repeat(1, 1, 1, 1)
    noise = torch.randn(4, 1, 100, 100)
    t = torch.tensor([0.0, 0.25, 0.6, 1.0])
    x_t = flow.flow_interpolant(x_0, noise, t)
    for i, ti in enumerate(t.tolist()):
        assert x_t[i].mean().item() == pytest.approx((1 - ti) * 0.7, abs=4 * ti / 100 + 1e-6)      # E = (1-t) x_0
        assert x_t[i].std().item() == pytest.approx(ti, rel=0.03, abs=1e-6)                        # sd = t
    assert torch.equal(x_t[0], x_0[0]) and torch.allclose(x_t[3], noise[3])                      # t=0 data, t=1 noise


def test_the_velocity_target_is_the_time_derivative_of_the_path():
    g = torch.Generator().manual_seed(1)
    x_0, noise = torch.randn(3, 1, 28, 28, generator=g), torch.randn(3, 1, 28, 28, generator=g)
    t, dt = torch.tensor([0.1, 0.5, 0.9]), 1e-3
    fd = (flow.flow_interpolant(x_0, noise, t + dt) - flow.flow_interpolant(x_0, noise, t - dt)) / (2 * dt)
    assert torch.allclose(fd, flow.velocity_target(x_0, noise), atol=1e-3)
    assert torch.allclose(flow.velocity_target(x_0, noise), noise - x_0)


def _integrate(step, a, n):
    """dx/dt = a x from t = 1 to t = 0 in n steps of ``step``; returns x(0) for x(1) = 1."""
    field = lambda x, t: a * x
    x, ts = torch.ones(1, dtype=torch.float64), flow.flow_times(n)
    for t, t_next in zip(ts[:-1], ts[1:]):
        x = step(field, x, t, t_next)
    return x.item()


@pytest.mark.parametrize("a", [1.5, -2.0])
def test_euler_is_first_order_and_heun_second_order_on_a_linear_field(a):
    exact = math.exp(-a)                                             # x(0) = x(1) e^{a (0 - 1)}
    euler = lambda f, x, t, tn: flow.euler_step(x, f(x, t), t, tn)
    err = {name: [abs(_integrate(st, a, n) - exact) for n in (16, 32, 64)]
           for name, st in (("euler", euler), ("heun", flow.heun_step))}
    for name, order in (("euler", 1), ("heun", 2)):
        ratios = [err[name][i] / err[name][i + 1] for i in range(2)]
        assert all(2 ** order * 0.85 < r < 2 ** order * 1.15 for r in ratios), (name, ratios)
    assert _integrate(euler, a, 1) == pytest.approx(1 - a)          # one Euler step: x_1 + (0 - 1) a x_1


def test_the_sampler_walks_from_noise_at_t1_to_the_data_at_t0():
    mu = 0.3
    model = Field(lambda x, t_in, y: (x - mu) / (t_in / flow.TIME_SCALE).view(-1, 1, 1, 1))
    y = torch.zeros(5, dtype=torch.long)
    for method in ("euler", "heun"):
        x = flow.flow_sample_loop(model, (5, 1, 28, 28), y, n_steps=1 if method == "euler" else 3, method=method, seed=0)
        assert torch.allclose(x, torch.full_like(x, mu), atol=1e-5)  # straight lines: exact in any number of steps
    assert model.calls[0][1].tolist() == [flow.TIME_SCALE] * 5       # the first call is at t = 1, scaled


def test_the_sampler_maps_noise_to_gaussian_data_as_the_exact_ode_does():
    """x_0 = s x_1 exactly; each sampler's gain x_0 / x_1 approaches s at its order, with its count of calls."""
    s, err = 0.5, {}
    for method, steps in (("euler", (16, 32)), ("heun", (8, 16))):
        for n in steps:
            model = Field(gaussian_velocity(s))
            noise = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(3))
            x = flow.flow_sample_loop(model, noise.shape, torch.zeros(4, dtype=torch.long), n_steps=n,
                                      method=method, noise=noise)
            gain = x / noise
            assert torch.allclose(gain, gain.flatten()[0].expand_as(gain), atol=1e-4)      # a linear map
            err[method, n] = abs(gain.mean().item() - s)
            assert len(model.calls) == flow.network_calls(method, n)
    assert 1.7 < err["euler", 16] / err["euler", 32] < 2.3, err     # first order
    assert err["heun", 8] / err["heun", 16] > 3.4, err              # second order
    assert err["heun", 16] < 0.005 < err["euler", 32], err


def test_guidance_mixes_the_two_velocities_in_one_call_of_batch_2B():
    g = torch.Generator().manual_seed(2)
    vc, vu = torch.randn(2, 1, 28, 28, generator=g), torch.randn(2, 1, 28, 28, generator=g)
    assert torch.equal(flow.guided_velocity(vc, vu, 0.0), vu)
    assert torch.allclose(flow.guided_velocity(vc, vu, 1.0), vc, atol=1e-6)
    assert torch.allclose(flow.guided_velocity(vc, vu, 3.0), vu + 3 * (vc - vu))
    model = Field(lambda x, t_in, y: x * (1 + y.float().view(-1, 1, 1, 1)))        # v depends on the label
    x, y = torch.randn(3, 1, 28, 28, generator=g), torch.tensor([2, 5, 7])
    v = flow.flow_velocity(model, x, 0.4, y, w=2.5, null_class=10)
    assert len(model.calls) == 1 and model.calls[0][0] == 6
    assert model.calls[0][2].tolist() == [2, 5, 7, 10, 10, 10]
    vc, vu = x * (1 + y.float().view(-1, 1, 1, 1)), x * 11
    assert torch.allclose(v, vu + 2.5 * (vc - vu))


def test_logsnr_timesteps_are_distinct_decreasing_and_end_at_0():
    sched = default_schedule()
    for n in (2, 8, 32, 1000):
        ts = logsnr_timesteps(sched, n)
        assert len(ts) == n and ts[0] == 999 and ts[-1] == 0 and all(a > b for a, b in zip(ts, ts[1:]))
    ab = sched.alpha_bars.double()
    lam = (0.5 * torch.log(ab / (1 - ab)))[logsnr_timesteps(sched, 8)]
    gaps = lam[1:] - lam[:-1]
    assert gaps.max() / gaps.min() < 1.3                             # evenly spaced in λ, up to integer t


def test_network_calls_per_sampler():
    assert [flow.network_calls("heun", n) for n in (1, 2, 8)] == [1, 3, 15]
    assert [flow.network_calls(s, 8) for s in ("euler", "ddim", "dpm2m")] == [8, 8, 8]


def test_dpm_solver_2m_solves_the_probability_flow_ode_better_than_ddim():
    s = 0.5
    sched = default_schedule()

    def eps(x, t_in, y):
        ab = sched.alpha_bars[t_in.long()].view(-1, 1, 1, 1)
        return (1 - ab).sqrt() * x / (ab * s ** 2 + 1 - ab)

    ab_T = sched.alpha_bars[-1]
    scale = s / math.sqrt(ab_T * s ** 2 + 1 - ab_T)                  # x_0 = x_T s / sqrt(ᾱ_T s² + 1 - ᾱ_T)
    y = torch.zeros(4, dtype=torch.long)
    torch.manual_seed(5)
    x_T = torch.randn(4, 1, 28, 28)
    errors = {}
    samplers = {"dpm": lambda m, n: dpm_solver_2m_sample_loop(m, x_T.shape, y, n_steps=n, seed=5),
                "ddim": lambda m, n: ddim_sample_loop(m, x_T.shape, n_steps=n, y=y, seed=5)}
    for name, sample in samplers.items():
        for n in (10, 20):
            model = Field(eps)
            x = sample(model, n)                                     # the same x_T: both draw it with seed 5
            assert len(model.calls) == n
            errors[name, n] = abs((x / x_T).mean().item() - scale)     # the gain x_0 / x_T against the exact
    assert errors["dpm", 10] < errors["ddim", 10] / 3, errors      # measured: 0.016 against 0.14
    assert errors["dpm", 20] < errors["dpm", 10] and errors["dpm", 20] < 0.01, errors



# ============================================================================ notebook 8's grading
# A simulated class, judged as the grader judges it (probe on the grader's inputs, judge against solutions.flow):
# each solution cell of the source notebook as handed in right, blank, and with each plausible mistake.
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from ddpm_instructor import graded  # noqa: E402
from graded_cells import cell_object, graded_cell_tests, handed_in  # noqa: E402
from tutorial_utils.checks import SelfCheckError  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NB8 = ROOT / "notebooks" / "source" / "08_flow_matching" / "08_flow_matching.ipynb"
# grade id -> the solution cell it judges
CELL = {"test_flow_interpolant": "flow_interpolant", "test_velocity_target": "velocity_target",
        "test_euler_step": "euler_step", "test_heun_step": "heun_step", "test_guided_velocity": "guided_velocity"}
# grade id -> (what a student might write instead of the solution's line(s), words the verdict must say)
MISTAKES = {
    "test_flow_interpolant": [("x_t = t * x_0 + (1 - t) * noise", "runs the other way"),
                              ("x_t = (1 - t).sqrt() * x_0 + t.sqrt() * noise", "square roots")],
    "test_velocity_target": [("target = x_0 - noise", "sign is flipped"), ("target = noise", "DDPM's target")],
    "test_euler_step": [("x_next = x_t + (t - t_next) * v", "wrong way"), ("x_next = x_t - v", "Multiply")],
    "test_heun_step": [("x_next = x_pred", "Euler's guess"),
                       ("x_next = x_t + h * (v + velocity_fn(x_pred, t_next))", "h/2, not h"),
                       ("x_next = x_t + h / 2 * (v + velocity_fn(x_pred, t))", "end of the step")],
    "test_guided_velocity": [
        ("v_cond, v_uncond = velocity(model, torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([y, null])).chunk(2)\n"
         "v = v_cond + w * (v_cond - v_uncond)", "other convention"),
        ("v_cond, v_uncond = velocity(model, x_t, t, y), velocity(model, x_t, t, null)\n"
         "v = v_uncond + w * (v_cond - v_uncond)", "called 2 time(s)")],
}


def _object(cell_id: str, answer: str | None):
    return cell_object(NB8, cell_id, answer)


test_notebook8_the_reference_passes_and_the_blank_fails, test_notebook8_each_plausible_mistake_fails_with_its_hint = \
    graded_cell_tests(NB8, CELL, MISTAKES)


def test_notebook8_self_checks_pass_the_reference_and_name_a_mistake():
    from tutorial_utils import checks

    for cell_id in CELL.values():
        getattr(checks, f"check_{cell_id}")(_object(cell_id, None), quiet=True)
    with pytest.raises(SelfCheckError, match="sign is flipped"):
        checks.check_velocity_target(_object("velocity_target", "target = x_0 - noise"))


def test_notebook8_delegating_to_the_reference_fails_in_the_bundle(tmp_path):
    """The bundle of 08_flow_matching lacks solutions.flow (its own stage), even with every other stage public; a
    blank that imports the answer from there raises in the grading kernel, and the grader says which assignment."""
    from ddpm_instructor.bundle import ASSIGNMENT_STAGES, bundle_modules

    modules = bundle_modules("08_flow_matching", ASSIGNMENT_STAGES - {"08_flow_matching"})
    assert "flow" not in modules and "beyond" in modules and "conditional" in modules
    sol = tmp_path / "solutions"
    sol.mkdir()
    for m in ["__init__"] + modules:
        (sol / f"{m}.py").write_text((ROOT / "solutions" / f"{m}.py").read_text())
    gid = "test_velocity_target"
    inputs = tmp_path / "inputs.pt"
    torch.save(graded.TESTS[gid].make_inputs(), inputs)
    src = handed_in(NB8, "velocity_target", "from solutions import velocity_target as reference\n"
                                            "target = reference(x_0, noise)")
    kernel = f"""
import sys, torch
sys.path[:0] = [{str(tmp_path)!r}, {str(ROOT)!r}]
from tutorial_utils.checks.flow import VELOCITY_TARGET
exec(compile({src!r}, "<cell>", "exec"))
inputs = torch.load({str(inputs)!r}, weights_only=True)
torch.save(VELOCITY_TARGET.record.probe(velocity_target, inputs).to_plain(inputs), {str(tmp_path / 'rec.pt')!r})
"""
    subprocess.run([sys.executable, "-c", kernel], check=True, cwd=tmp_path, timeout=120)
    ok, message = graded.judge_record(gid, torch.load(tmp_path / "rec.pt", weights_only=True))
    assert not ok and "is the answer of assignment 08_flow_matching, which is not public" in message, message
