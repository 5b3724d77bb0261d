"""Notebook 4 (Algorithm 1): ``loss_fn`` and the three blanks of the training loop -- their probes, records and
judges.  The loop's draws (t, ε) are the grader's: while the loop runs, ``torch.randint`` and ``torch.randn_like``
hand it the grader's tensors, and ``x_t`` is judged against what those draws give, never against what the record
says the loop drew.  The blanks after it (``pred_noise``, ``loss``) are judged on the loop's own x_t, t and noise, so
that a wrong ``x_t`` blank, even one that changes t or the noise, costs only its own points."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .core import (ABSENT, FILL_IN, Num, Obs, Record, Text, call, capture_locals, close, err_text, expect, fail, fresh,
                   grader_draws, local, patched_globals, usable)

from .blank import Blank, SelfCheck
SPY_LR = 0.1            # the learning rate of the SGD step the probe takes with the stand-in model


class SpyModel(nn.Module):
    """The stand-in for the UNet the probe hands the loop: ε_spy(x, t) = scale · x + shift[t], with learnable
    ``scale`` and ``shift`` (given by the inputs); remembers its calls.  Calling it is what the ``pred_noise`` blank
    does; what the grader expects after the loop's step is computed outside the kernel
    (``ddpm_instructor.graded.training``)."""

    def __init__(self, scale: Tensor, shift: Tensor):
        super().__init__()
        self.scale = nn.Parameter(scale.clone())
        self.shift = nn.Parameter(shift.clone())
        self.calls: list = []

    def forward(self, x, t):
        self.calls.append((x.detach().clone(), t.detach().clone()))
        return self.scale * x + self.shift[t.long()].view(-1, 1, 1, 1)


# =========================================================================== loss_fn
@dataclass
class LossRecord(Record):
    """What ``loss_fn`` is, and ``loss_fn(a, b)`` on the grader's two batches."""
    kind = "loss_fn"
    is_none: bool
    is_class: bool
    class_name: str
    callable: bool
    value: object
    error: str

    @staticmethod
    def spec(inputs):
        return {"is_none": Num(bool), "is_class": Num(bool), "class_name": Text(80), "callable": Num(bool),
                "value": Obs((), fit="scalar"), "error": Text()}

    @classmethod
    def probe(cls, loss_fn, inputs):
        is_class = isinstance(loss_fn, type)
        value, error = None, ""
        if loss_fn is not None and not is_class and callable(loss_fn):
            value, e = call(loss_fn, fresh(inputs["a"]), fresh(inputs["b"]))
            error = err_text(e)
        return cls(loss_fn is None, is_class, getattr(loss_fn, "__name__", type(loss_fn).__name__)[:80],
                   callable(loss_fn), value, error)


def judge_loss_fn(rec: LossRecord, inputs: dict, exp: dict) -> str:
    if rec.is_none:
        fail("loss_fn is None \u2014 " + FILL_IN + " (`loss_fn = None`): Algorithm 1 minimises the mean "
             "squared error between the true noise and the predicted noise (hint: torch.nn has one).")
    if rec.is_class:
        fail(f"loss_fn is the class {rec.class_name} itself; create the loss object by calling it: {rec.class_name}().")
    if not rec.callable:
        fail(f"loss_fn should be callable, like a torch.nn loss module; it is a {rec.class_name}.")
    val = expect(rec.value, "loss_fn(prediction, target)", raised=rec.error and f"loss_fn(prediction, target) "
                 f"raised {rec.error}.", none="loss_fn(prediction, target) returned None; it should return the loss.",
                 shape_hint=" (a 0-d tensor)").double()
    if not torch.allclose(val.reshape(()), exp["mse"].double(), rtol=1e-5):
        hint = ""
        if torch.allclose(val.reshape(()), exp["sse"].double(), rtol=1e-5):
            hint = " It is the sum of the squared errors; take the mean."
        elif torch.allclose(val.reshape(()), exp["l1"].double(), rtol=1e-5):
            hint = " It is the mean absolute error (L1); the DDPM loss is squared (L2)."
        fail(f"loss_fn gives {val.item():.4f} where the mean squared error is {exp['mse'].item():.4f}.{hint}")
    return "loss_fn is the mean squared error \u2016\u03b5 - \u03b5_\u03b8\u2016\u00b2."


# =========================================================================== the training loop
_TRAIN_LOCALS = ("t", "noise", "x_t", "pred_noise", "loss")


@dataclass
class TrainRecord(Record):
    """One step of the student's loop on the grader's batch with ``SpyModel``: its named locals (``ABSENT`` if
    never set), the error it raised, the model's last call, and the model's weights after the step."""
    kind = "train_step"
    t: object
    noise: object
    x_t: object
    pred_noise: object
    loss: object
    error: str
    n_calls: int
    call_x: object
    call_t: object
    scale_after: object
    shift_after: object

    @staticmethod
    def spec(inputs):
        B, img = inputs["x0"].shape[0], Obs(tuple(inputs["x0"].shape))
        return {"t": Obs((B,), "int"), "noise": img, "x_t": img, "pred_noise": img, "loss": Obs((), fit="scalar"),
                "error": Text(), "n_calls": Num(int), "call_x": img, "call_t": Obs((B,), "int"),
                "scale_after": Obs(()), "shift_after": Obs(tuple(inputs["spy_shift"].shape))}

    @classmethod
    def probe(cls, train_fn, inputs):
        x0 = inputs["x0"]
        model = SpyModel(inputs["spy_scale"], inputs["spy_shift"])
        optimizer = torch.optim.SGD(model.parameters(), lr=SPY_LR)
        fixes = {"device": torch.device("cpu"), "T": int(inputs["T"]), "loss_fn": nn.MSELoss()}
        with patched_globals(train_fn, **fixes), grader_draws(inputs["t"], inputs["noise"]):
            _, loc, err = capture_locals(train_fn, model, optimizer, [(fresh(x0), torch.full((x0.shape[0],), 6))], 1,
                                         max_steps=1, progress=False, names=_TRAIN_LOCALS)
        last = model.calls[-1] if model.calls else (ABSENT, ABSENT)
        return cls(*(local(loc, k) for k in _TRAIN_LOCALS), err_text(err), len(model.calls), *last,
                   model.scale.detach(), model.shift.detach())


def _drew_other(rec: TrainRecord, inputs: dict) -> str:
    """A hint when the loop's t or noise is not what it drew (changed after the draw, or drawn another way)."""
    t_ok = usable(rec.t) and torch.equal(rec.t.long(), inputs["t"])
    n_ok = usable(rec.noise) and close(rec.noise, inputs["noise"], atol=0, rtol=0)
    if t_ok and n_ok:
        return ""
    which = " and ".join(n for n, ok in (("t", t_ok), ("noise", n_ok)) if not ok)
    return (f" The loop's {which} {'are' if not (t_ok or n_ok) else 'is'} not what its handed-out line drew "
            "(t = torch.randint(0, T, ...), "
            "noise = torch.randn_like(x_0)): keep those lines and use what they draw.")


def _judge_x_t(rec: TrainRecord, inputs: dict, exp: dict) -> str:
    x_t = rec.x_t if rec.x_t is not ABSENT else rec.call_x     # a deleted line: judged by what the model was given
    x_t = expect(x_t, "x_t", raised=rec.x_t is ABSENT and rec.error and not rec.n_calls
                 and f"the training loop raised {rec.error} before it set x_t.",
                 absent="the training loop never set x_t nor called the model.", shape_hint=" (the shape of the batch)",
                 none="x_t is still None \u2014 " + FILL_IN + " (`x_t = None`): noise the clean batch x_0 to timestep t "
                      "with the noise you drew (the forward process, in closed form).")
    if not close(x_t, exp["x_t"]):
        hint = " It equals x_0: you have not added any noise." if close(x_t, inputs["x0"]) else ""
        fail("x_t is not sqrt(\u1fb1_t)\u00b7x_0 + sqrt(1 - \u1fb1_t)\u00b7\u03b5 with the t and noise drawn in the loop "
             "(use those, don't draw new ones)." + hint + _drew_other(rec, inputs))
    return "x_t = sqrt(\u1fb1_t)\u00b7x_0 + sqrt(1 - \u1fb1_t)\u00b7\u03b5."


def _loop_t(rec: TrainRecord, inputs: dict) -> Tensor:
    """The t the loop held when it called the model: the blanks after x_t are judged on the loop's own values, so
    a wrong x_t blank (even one that changes t or the noise) costs only its own points."""
    return rec.t.long() if usable(rec.t) else inputs["t"]


def _spy_on_call(rec: TrainRecord, inputs: dict, exp: dict) -> Tensor:
    """The model's output for its last input and timesteps (which must lie in 0 .. T-1), as the grader computed it
    (``exp["model_out"]``: for the record's own call when grading, the right call's in the stored self-check data)."""
    t = rec.call_t.long()
    if bool(((t < 0) | (t >= inputs["spy_shift"].shape[0])).any()):
        fail(f"the model was called with timesteps outside 0 .. {inputs['spy_shift'].shape[0] - 1}: pass the t drawn "
             "for this batch.")
    return exp["model_out"].double()


def _model_call(rec: TrainRecord, inputs: dict, exp: dict) -> Tensor:
    """ε_spy on the model's last input and timesteps; fails unless the model got the loop's x_t and t."""
    if not rec.n_calls or not (usable(rec.call_x) and usable(rec.call_t)):
        fail("the model was never called on the batch: pred_noise is the model's output for (x_t, t).")
    if not torch.equal(rec.call_t.long(), _loop_t(rec, inputs)):
        fail("the model was called with timesteps other than the loop's t: pass the t drawn for this batch."
             + _drew_other(rec, inputs))
    x_t = rec.x_t if usable(rec.x_t) else exp["x_t"]
    if not close(rec.call_x, x_t):
        fail("the model was called on something other than x_t: it must see the noisy images.")
    return _spy_on_call(rec, inputs, exp)


def _loss_right(rec: TrainRecord, exp: dict) -> bool:
    """The loss the grader expects: the mean squared error of the model's output (its last call) and the loop's ε."""
    return usable(rec.loss) and torch.allclose(rec.loss.double().reshape(()), exp["loss"].double().reshape(()),
                                               rtol=1e-5, atol=1e-7)


def _judge_pred(rec: TrainRecord, inputs: dict, exp: dict) -> str:
    if rec.pred_noise is ABSENT and rec.error and not rec.n_calls:
        fail(f"the training loop raised {rec.error} before it set pred_noise.")
    if rec.pred_noise is None:
        fail("pred_noise is still None \u2014 " + FILL_IN + " (`pred_noise = None`): ask the model for its "
             "estimate of the noise in x_t at timestep t.")
    spy_out = _model_call(rec, inputs, exp)
    if rec.pred_noise is ABSENT:                # a deleted line: judged by the loss it went into
        if _loss_right(rec, exp):
            return "pred_noise is right (computed inline in the loss)."
        fail("the loop no longer sets pred_noise: keep the blank's line `pred_noise = ...`.")
    pred = expect(rec.pred_noise, "pred_noise", none="", shape_hint=" (the shape of the batch)")
    if not close(pred, spy_out):
        fail("pred_noise should be exactly what the model returns for (x_t, t).")
    return "pred_noise is the model's output for (x_t, t)."


def _judge_loss(rec: TrainRecord, inputs: dict, exp: dict) -> str:
    loss = expect(rec.loss, "loss", raised=rec.loss is ABSENT and rec.error and f"computing the loss raised "
                  f"{rec.error} \u2014 {FILL_IN} (`loss = loss_fn(None)`): compare the model's prediction with the "
                  "noise that was added.", none="loss is None: it should be loss_fn(prediction, target).",
                  shape_hint=": loss_fn(prediction, target) is a single number")
    if not (usable(rec.call_x) and usable(rec.call_t)):
        fail("the loss needs the model's prediction; fill in pred_noise first.")
    _spy_on_call(rec, inputs, exp)
    if not _loss_right(rec, exp):
        want = exp["loss"].double()
        hint = " It compares the prediction with x_0; the target is the noise." if torch.allclose(
            loss.double().reshape(()), exp["loss_vs_x0"].double().reshape(()), rtol=1e-5) else ""
        fail(f"loss is {loss.double().sum().item():.5f} but the mean squared error between the model's prediction "
             f"for (x_t, t) and the noise drawn in the loop is {want.item():.5f}.{hint}" + _drew_other(rec, inputs))
    if rec.error:
        fail(f"the training step raised {rec.error} after computing the loss.")
    scale, shift = exp["scale_after"], exp["shift_after"]
    if not (close(rec.scale_after, scale) and close(rec.shift_after, shift)):
        unchanged = close(rec.scale_after, inputs["spy_scale"], 0, 0) and close(rec.shift_after, inputs["spy_shift"], 0, 0)
        fail("the loss is right but " + ("the model's weights did not change: the loss must be the tensor that "
             ".backward() is called on (don't convert it to a float first)." if unchanged else
             "the optimiser step did not move the weights as one step on that loss would."))
    return f"loss = MSE(pred_noise, noise) = {loss.double().sum().item():.4f}, and one optimiser step changed the weights."


def judge_train(part: str, rec: TrainRecord, inputs: dict, exp: dict) -> str:
    """One blank of the training loop: ``x_t``, ``pred_noise`` or ``loss``."""
    if rec.t is ABSENT or rec.noise is ABSENT:
        fail("the training loop did not get as far as drawing t and the noise for the batch x_0"
             + (f"; it raised {rec.error}." if rec.error else "."))
    return {"x_t": _judge_x_t, "pred_noise": _judge_pred, "loss": _judge_loss}[part](rec, inputs, exp)


# =========================================================================== the blanks, declared once, and their self-checks
LOSS_FN = Blank(LossRecord, judge_loss_fn, "value", "loss_fn")
TRAIN_X_T = Blank(TrainRecord, functools.partial(judge_train, "x_t"), "x_t", "train_ddpm: x_t")
TRAIN_PRED_NOISE = Blank(TrainRecord, functools.partial(judge_train, "pred_noise"), "pred_noise", "train_ddpm: pred_noise")
TRAIN_LOSS = Blank(TrainRecord, functools.partial(judge_train, "loss"), "loss", "train_ddpm: loss")

LOSS_FN_CHECK = SelfCheck("loss_fn", (LOSS_FN,))
TRAIN_STEP_CHECK = SelfCheck("train_step", (TRAIN_X_T, TRAIN_PRED_NOISE, TRAIN_LOSS))
CHECKS = (LOSS_FN_CHECK, TRAIN_STEP_CHECK)


def check_loss_fn(loss_fn, quiet: bool = False) -> None:
    """Self-check for ``loss_fn``: the mean squared error of Algorithm 1."""
    LOSS_FN_CHECK.run(loss_fn, quiet)


def check_training_loop(train_fn, quiet: bool = False) -> None:
    """Self-check for the three blanks of the training loop (x_t, pred_noise, loss), in order."""
    TRAIN_STEP_CHECK.run(train_fn, quiet)
