"""Notebook 8: inputs and expected values of the flow-matching blanks (the interpolant, the velocity target, the
Euler and Heun steps, the guided velocity), from ``solutions.flow``."""
from __future__ import annotations

import torch

from solutions import flow
from tutorial_utils.checks import flow as checks

from .case import CheckData, Graded, calls, images


def inputs_interpolant(seed: int, sizes=(5, 3)) -> dict:
    g = torch.Generator().manual_seed(seed)
    ts = [torch.cat([torch.tensor([0.0, 1.0]), torch.rand(B - 2, generator=g)]) for B in sizes]   # both ends, between
    return {"args": [[images(g, B, uniform=True), images(g, B), t] for B, t in zip(sizes, ts)]}


def expected_interpolant(inputs) -> dict:
    out = []
    for x0, noise, t in inputs["args"]:
        tb = t.view(-1, 1, 1, 1)
        out.append({"reversed": tb * x0 + (1 - tb) * noise, "square_roots": (1 - tb).sqrt() * x0 + tb.sqrt() * noise})
    return {"results": [flow.flow_interpolant(*a) for a in inputs["args"]], "hints": out}   # checks.INTERPOLANT_HINTS


def inputs_target(seed: int, sizes=(3, 2)) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"args": [[images(g, n, uniform=True), images(g, n)] for n in sizes]}


def expected_target(inputs) -> dict:
    return {"results": [flow.velocity_target(*a) for a in inputs["args"]],
            "hints": [{"flipped": x0 - noise} for x0, noise in inputs["args"]]}


def inputs_euler(seed: int, steps, B: int = 3) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"args": [[images(g, B), images(g, B), float(t), float(tn)] for t, tn in steps]}


def expected_euler(inputs) -> dict:
    return {"results": [flow.euler_step(*a) for a in inputs["args"]],
            "hints": [{"wrong_way": x + (t - tn) * v, "plus_v": x + v, "minus_v": x - v}        # checks.EULER_HINTS
                      for x, v, t, tn in inputs["args"]]}


def inputs_heun(seed: int, a: float, b: float, steps, B: int = 3) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"x": images(g, B), "a": a, "b": b, "steps": [[float(t), float(tn)] for t, tn in steps]}


def expected_heun(inputs) -> dict:
    a, b = float(inputs["a"]), float(inputs["b"])
    field = lambda x, t: a * x + b * float(t)                              # the probe's LinearField(a, b)
    return {"results": [flow.heun_step(field, inputs["x"], t, tn) for t, tn in inputs["steps"]],
            "hints": [hints_heun(inputs, float(t), float(tn)) for t, tn in inputs["steps"]]}


def hints_heun(inputs, t: float, tn: float) -> dict:
    """The values of the Heun step's common mistakes (``checks.HEUN_HINTS``) with ``LinearField(a, b)``."""
    a, b, x = float(inputs["a"]), float(inputs["b"]), inputs["x"]
    h, v = tn - t, a * x + b * t
    x_pred = x + h * v
    return {"x_pred": x_pred, "not_halved": x + h * (v + a * x_pred + b * tn),
            "second_at_t": x + h / 2 * (v + a * x_pred + b * t), "from_x_pred": x_pred + h / 2 * (v + a * x_pred + b * tn)}


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
            "results": [flow.flow_velocity(_spy(inputs), x, t, y, w=w, null_class=null) for w in inputs["ws"]],
            "hints": [{"other_convention": v_c + w * (v_c - v_u), "reversed": v_u + w * (v_u - v_c)}   # checks.GUIDED_VELOCITY_HINTS
                      for w in inputs["ws"]]}


FLOW = "tutorial_utils.checks.flow"


def operands_heun(inputs, exp):
    return [({"velocity_fn": {"__make__": f"{FLOW}:LinearField", "args": [inputs["a"], inputs["b"]]}, "x_t": inputs["x"],
              "t": t, "t_next": tn}, {"result": res}) for (t, tn), res in zip(inputs["steps"], exp["results"])]


def operands_guided_velocity(inputs, exp):
    """Each w: the spy model (as notebook 8's velocity calls it), x_t, t, the labels, w and the null class."""
    x, y = inputs["x"], inputs["y"]
    spy = {"__make__": f"{FLOW}:SpyVelocity", "args": [inputs["a"], inputs["b"], inputs["c"]]}
    return [({"model": {"__partial__": f"{FLOW}:_velocity", "args": [spy]}, "x": x, "x_t": x,
              "t": torch.full((x.shape[0],), inputs["t"]), "y": y, "w": w, "null_class": int(inputs["null_class"])},
             {"result": res}) for w, res in zip(inputs["ws"], exp["results"])]


TESTS = (
    Graded("test_flow_interpolant", checks.FLOW_INTERPOLANT, lambda: inputs_interpolant(81), expected_interpolant,
           calls("x_0", "noise", "t")),
    Graded("test_velocity_target", checks.VELOCITY_TARGET, lambda: inputs_target(82), expected_target,
           calls("x_0", "noise")),
    Graded("test_euler_step", checks.EULER_STEP, lambda: inputs_euler(83, [(1.0, 0.75), (0.3, 0.1), (0.2, 0.6)]),
           expected_euler, calls("x_t", "v", "t", "t_next")),
    Graded("test_heun_step", checks.HEUN_STEP, lambda: inputs_heun(84, -0.7, 1.3, [(1.0, 0.8), (0.45, 0.2)]),
           expected_heun, operands_heun),
    Graded("test_guided_velocity", checks.GUIDED_VELOCITY, lambda: inputs_guided_velocity(85, [0.0, 1.0, 2.5, 6.0]),
           expected_guided_velocity, operands_guided_velocity),
)

SELF_CHECKS = (
    CheckData(checks.FLOW_INTERPOLANT_CHECK, lambda: inputs_interpolant(0, sizes=(3,)), expected_interpolant),
    CheckData(checks.VELOCITY_TARGET_CHECK, lambda: inputs_target(0, sizes=(2,)), expected_target),
    CheckData(checks.EULER_STEP_CHECK, lambda: inputs_euler(0, [(1.0, 0.5), (0.5, 0.25), (0.0, 0.25)], B=1),
              expected_euler),
    CheckData(checks.HEUN_STEP_CHECK, lambda: inputs_heun(0, 0.4, -0.9, [(1.0, 0.5), (0.5, 0.0)], B=2), expected_heun),
    CheckData(checks.GUIDED_VELOCITY_CHECK, lambda: inputs_guided_velocity(0, [0.0, 1.0, 3.0], B=3),
              expected_guided_velocity),
)
