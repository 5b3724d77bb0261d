"""Notebook 8: inputs and expected values of the flow-matching blanks (the interpolant, the velocity target, the
Euler and Heun steps, the guided velocity), from ``solutions.flow``."""
from __future__ import annotations

import torch

from solutions import flow

from .case import Case, images


def inputs_interpolant(seed: int, sizes=(5, 3)) -> dict:
    g = torch.Generator().manual_seed(seed)
    ts = [torch.cat([torch.tensor([0.0, 1.0]), torch.rand(B - 2, generator=g)]) for B in sizes]   # both ends, between
    return {"args": [[images(g, B, uniform=True), images(g, B), t] for B, t in zip(sizes, ts)]}


def expected_interpolant(inputs) -> dict:
    return {"results": [flow.flow_interpolant(*a) for a in inputs["args"]]}


def inputs_target(seed: int, sizes=(3, 2)) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"args": [[images(g, n, uniform=True), images(g, n)] for n in sizes]}


def expected_target(inputs) -> dict:
    return {"results": [flow.velocity_target(*a) for a in inputs["args"]]}


def inputs_euler(seed: int, steps, B: int = 3) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"args": [[images(g, B), images(g, B), float(t), float(tn)] for t, tn in steps]}


def expected_euler(inputs) -> dict:
    return {"results": [flow.euler_step(*a) for a in inputs["args"]]}


def inputs_heun(seed: int, a: float, b: float, steps, B: int = 3) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"x": images(g, B), "a": a, "b": b, "steps": [[float(t), float(tn)] for t, tn in steps]}


def expected_heun(inputs) -> dict:
    a, b = float(inputs["a"]), float(inputs["b"])
    field = lambda x, t: a * x + b * float(t)                              # the probe's LinearField(a, b)
    return {"results": [flow.heun_step(field, inputs["x"], t, tn) for t, tn in inputs["steps"]]}


def inputs_guided_velocity(seed: int, ws, B: int = 4, null_class: int = 10) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"x": images(g, B), "t": float(torch.rand((), generator=g)), "y": torch.randint(0, null_class, (B,), generator=g),
            "a": 0.5 + float(torch.rand((), generator=g)), "b": 1.0 + float(torch.rand((), generator=g)),
            "c": torch.randn(null_class + 1, generator=g), "null_class": null_class, "ws": [float(w) for w in ws]}


def _spy(inputs):
    from tutorial_utils.checks.flow import SpyVelocity
    return SpyVelocity(inputs["a"], inputs["b"], inputs["c"])


def expected_guided_velocity(inputs) -> dict:
    x, t, y, null = inputs["x"], inputs["t"], inputs["y"], int(inputs["null_class"])
    tt = torch.full((x.shape[0],), t)
    v_c, v_u = flow.velocity(_spy(inputs), x, tt, y), flow.velocity(_spy(inputs), x, tt, torch.full_like(y, null))
    return {"v_cond": v_c, "v_uncond": v_u,
            "results": [flow.flow_velocity(_spy(inputs), x, t, y, w=w, null_class=null) for w in inputs["ws"]]}


TESTS = {
    "test_flow_interpolant": Case("flow_interpolant", "flow_interpolant", lambda: inputs_interpolant(81),
                                  expected_interpolant),
    "test_velocity_target": Case("velocity_target", "velocity_target", lambda: inputs_target(82), expected_target),
    "test_euler_step": Case("euler_step", "euler_step", lambda: inputs_euler(83, [(1.0, 0.75), (0.3, 0.1), (0.2, 0.6)]),
                            expected_euler),
    "test_heun_step": Case("heun_step", "heun_step", lambda: inputs_heun(84, -0.7, 1.3, [(1.0, 0.8), (0.45, 0.2)]),
                           expected_heun),
    "test_guided_velocity": Case("guided_velocity", "guided_velocity",
                                 lambda: inputs_guided_velocity(85, [0.0, 1.0, 2.5, 6.0]), expected_guided_velocity),
}

SELF_CHECKS = {
    "flow_interpolant": Case("flow_interpolant", "", lambda: inputs_interpolant(0, sizes=(3,)), expected_interpolant),
    "velocity_target": Case("velocity_target", "", lambda: inputs_target(0, sizes=(2,)), expected_target),
    "euler_step": Case("euler_step", "", lambda: inputs_euler(0, [(1.0, 0.5), (0.5, 0.25), (0.0, 0.25)], B=1),
                       expected_euler),
    "heun_step": Case("heun_step", "", lambda: inputs_heun(0, 0.4, -0.9, [(1.0, 0.5), (0.5, 0.0)], B=2),
                       expected_heun),
    "guided_velocity": Case("guided_velocity", "", lambda: inputs_guided_velocity(0, [0.0, 1.0, 3.0], B=3),
                            expected_guided_velocity),
}
