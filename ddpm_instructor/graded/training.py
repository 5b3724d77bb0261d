"""Notebook 4: inputs (the loop's draws of t and ε included) and expected values of ``loss_fn`` and the loop."""
from __future__ import annotations

import torch
import torch.nn.functional as F

import solutions
from tutorial_utils.checks.core import usable
from tutorial_utils.checks.training import SPY_LR, SpyModel
from tutorial_utils.checks import training as checks

from .case import CheckData, Graded, images


def inputs_loss(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"a": images(g, 4), "b": images(g, 4)}


def expected_loss(inputs) -> dict:
    a, b = inputs["a"], inputs["b"]
    return {"mse": F.mse_loss(a, b), "sse": F.mse_loss(a, b, reduction="sum"), "l1": F.l1_loss(a, b)}


def inputs_train(seed: int, batch: int = 6, T: int = 1000) -> dict:
    g = torch.Generator().manual_seed(seed)
    x0 = images(g, batch, uniform=True)
    return {"x0": x0, "T": T, "spy_scale": torch.tensor(0.5), "spy_shift": torch.linspace(-0.2, 0.2, T) + 0.01 * (seed % 7),
            "t": torch.randint(0, T, (batch,), generator=g), "noise": torch.randn(x0.shape, generator=g)}


def after_call(inputs: dict, x: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> dict:
    """What the blanks after x_t must give when the loop called the stand-in model on (x, t) with the loop's ε:
    the model's output, the loss (and the loss against x_0, for a hint), and the weights after one SGD step, in
    float64.  Computed here, in the grader's process only: no function the kernel can import computes them."""
    model = SpyModel(inputs["spy_scale"].double(), inputs["spy_shift"].double())
    out = model(x.double(), t.long())
    loss = ((out - noise.double()) ** 2).mean()
    loss.backward()
    with torch.no_grad():
        return {"model_out": out.detach(), "loss": loss.detach(), "loss_vs_x0": ((out - inputs["x0"].double()) ** 2).mean(),
                "scale_after": model.scale - SPY_LR * model.scale.grad, "shift_after": model.shift - SPY_LR * model.shift.grad}


def expected_train(inputs) -> dict:
    """x_t from the grader's own draws (the loop's q_sample is the public one, on the default schedule), and what
    follows from the right x_t (the self-checks' stored values)."""
    x_t = solutions.q_sample(inputs["x0"], inputs["t"], inputs["noise"])
    return {"x_t": x_t, **after_call(inputs, x_t, inputs["t"], inputs["noise"])}


def on_train_record(inputs: dict, rec) -> dict:
    """The blanks after x_t are judged on the loop's own values (one wrong blank costs only its own points): what
    the model returned for the loop's last call, the loss against the loop's ε, the step on that loss."""
    if not (usable(rec.call_x) and usable(rec.call_t)):
        return {}
    t = rec.call_t.long()
    if bool(((t < 0) | (t >= inputs["spy_shift"].shape[0])).any()):
        return {}                                   # the judge says why
    noise = rec.noise if usable(rec.noise) else inputs["noise"]
    return after_call(inputs, rec.call_x, t, noise)


def _spy(scale, shift, x, t):                       # the stand-in model, written out independently of SpyModel
    return scale.double() * x.double() + shift.double()[t].view(-1, 1, 1, 1)


def operands_loss(inputs, exp):
    return [({"input": inputs["a"], "target": inputs["b"]}, {"mse": exp["mse"]})]


def operands_train(part: str):
    """A blank of the loop: the batch and the loop's draws (the grader's), and what comes before the blank."""
    def operands(inputs, exp):
        x0, t, noise = inputs["x0"], inputs["t"], inputs["noise"]
        x_t = exp["x_t"]
        scale = inputs["spy_scale"].double().clone().requires_grad_()
        shift = inputs["spy_shift"].double().clone().requires_grad_()
        pred = _spy(scale, shift, x_t, t)
        loss = ((pred - noise.double()) ** 2).mean()
        loss.backward()
        ops = {"x_0": x0, "x_start": x0, "t": t, "noise": noise, "scale": inputs["spy_scale"],
               "shift": inputs["spy_shift"], "inputs": inputs}
        if part == "x_t":
            return [(ops, {"x_t": x_t})]
        if part == "pred_noise":
            return [({**ops, "x_t": x_t, "x": x_t, "model": {"__make__": "tutorial_utils.checks.training:SpyModel",
                                                            "args": [inputs["spy_scale"], inputs["spy_shift"]]}},
                     {"pred_noise": pred.detach()})]
        return [({**ops, "x_t": x_t, "x": x_t, "pred_noise": pred.detach().float()},
                 {"loss": loss.detach(), "scale_after": (scale - SPY_LR * scale.grad).detach(),
                  "shift_after": (shift - SPY_LR * shift.grad).detach()})]
    return operands


TESTS = (
    Graded("test_loss_fn", checks.LOSS_FN, lambda: inputs_loss(11), expected_loss, operands_loss),
    Graded("test_train_x_t", checks.TRAIN_X_T, lambda: inputs_train(2024), expected_train, operands_train("x_t"),
           on_train_record),
    Graded("test_train_pred_noise", checks.TRAIN_PRED_NOISE, lambda: inputs_train(2025), expected_train,
           operands_train("pred_noise"), on_train_record),
    Graded("test_train_loss", checks.TRAIN_LOSS, lambda: inputs_train(2026), expected_train, operands_train("loss"),
           on_train_record),
)

SELF_CHECKS = (
    CheckData(checks.LOSS_FN_CHECK, lambda: inputs_loss(7), expected_loss),
    CheckData(checks.TRAIN_STEP_CHECK, lambda: inputs_train(0), expected_train),
)
