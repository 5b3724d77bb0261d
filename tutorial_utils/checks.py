"""Self-checks for the student blanks, and the judges that say what is wrong with an answer.

Every blank in a notebook is followed by a visible self-check cell that calls one ``check_*`` function here.
A self-check runs the student's code through a probe (``tutorial_utils.probes``) on fixed inputs and compares
the record with **expected values stored as data** (``check_data.pt``, written by the instructor tooling from
the reference solutions: ``python -m ddpm_instructor.graded --write-check-data``).  It never calls the
reference, which a student's copy of the course does not have.

The ``judge_*`` functions compare one record with one set of expected values and raise ``SelfCheckError`` with a
message that says what to fix (a wrong shape, a wrong endpoint, a variance off by how much).  The grader uses
the very same judges, outside the student's kernel, with expected values it computes from its own reference.

**A deleted named line.**  Each blank is judged by the value its line names (``sqrt_alpha_bar``, ``x_t``,
``y_emb``...).  If a student removes that line but writes the same computation inline, the blank is judged by
what the next step used instead (the function's result, the model's input, the loss): right there means right.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from .probes import PROBES

__all__ = [
    "SelfCheckError", "check_linear_beta_schedule", "check_q_sample", "check_loss_fn", "check_training_loop",
    "check_p_sample_DDPM", "check_unet_cond", "check_cosine_beta_schedule", "check_ddim_step", "check_guided_eps",
    "JUDGES",
]

FILL_IN = "fill in the blank"
CHECK_DATA = Path(__file__).with_name("check_data.pt")


class SelfCheckError(AssertionError):
    """A blank is not filled in correctly yet; the message says what is wrong and how to fix it."""


def _fail(message: str) -> None:
    raise SelfCheckError(message)


def _is_tensor(x) -> bool:
    return isinstance(x, Tensor)


def _close(a, b, atol=1e-5, rtol=1e-4) -> bool:
    return (_is_tensor(a) and _is_tensor(b) and a.shape == b.shape
            and bool(torch.allclose(a.float(), b.float(), atol=atol, rtol=rtol)))


def _shape(x) -> str:
    return str(tuple(x.shape)) if _is_tensor(x) else type(x).__name__ if not isinstance(x, dict) else x.get("type", "?")


# =========================================================================== notebook 2
def judge_schedule(rec: dict, inputs: dict, exp: dict) -> str:
    """``linear_beta_schedule(*args)`` for each argument list against the expected schedules."""
    for k, (args, got, err, want) in enumerate(zip(inputs["args"], rec["results"], rec["errors"], exp["results"])):
        call = f"linear_beta_schedule{tuple(args)}"
        if err:
            _fail(f"{call} raised {err}.")
        if got is None:
            _fail("linear_beta_schedule returned None \u2014 " + FILL_IN + " (`return None`): return the "
                  "`timesteps` values of \u03b2 spaced evenly from beta_start to beta_end (hint: torch.linspace).")
        if not _is_tensor(got):
            _fail(f"linear_beta_schedule should return a torch tensor, not {_shape(got)}.")
        if got.shape != want.shape:
            _fail(f"wrong shape: {call} has shape {tuple(got.shape)}, expected {tuple(want.shape)} "
                  "\u2014 one \u03b2 per timestep.")
        b0, bT = got[0].item(), got[-1].item()
        if k and not _close(got, want, atol=1e-7, rtol=1e-5):     # the first call had the defaults right
            _fail(f"{call} does not give the expected schedule \u2014 use the arguments timesteps, beta_start and "
                  "beta_end instead of fixed numbers.")
        if abs(b0 - want[0].item()) > 1e-8 + 1e-6 * abs(want[0].item()):
            _fail(f"wrong endpoint: {call}[0] = {b0:.6g}, expected beta_start = {want[0].item():.6g}.")
        if abs(bT - want[-1].item()) > 1e-7 + 1e-6 * abs(want[-1].item()):
            _fail(f"wrong endpoint: {call}[-1] = {bT:.6g}, expected beta_end = {want[-1].item():.6g} "
                  "(the last \u03b2 must be beta_end itself, not one step before it).")
        if len(got) > 2:
            steps = got.double().diff()
            if not torch.allclose(steps, steps.mean().expand_as(steps), atol=1e-8):
                _fail("the betas are not evenly spaced: consecutive differences range from "
                      f"{steps.min().item():.3g} to {steps.max().item():.3g}; a linear schedule has one constant step.")
        if not _close(got, want, atol=1e-7, rtol=1e-5):
            _fail(f"{call} does not give the expected schedule \u2014 use the arguments timesteps, beta_start and "
                  "beta_end instead of fixed numbers.")
    first = exp["results"][0]
    return (f"linear_beta_schedule: {len(first)} values from {first[0].item():.1e} to {first[-1].item():.1e}, "
            "evenly spaced; other lengths and ranges right too.")


_Q_HINT = {"sqrt_alpha_bar": "\u1fb1_t", "sqrt_one_minus_alpha_bar": "1 - \u1fb1_t"}


def _judge_coefficient(name: str, rec: dict, inputs: dict, exp: dict) -> None:
    loc, want, shape = rec["locals"], exp[name], inputs["x0"].shape
    if name not in loc:
        if rec["error"]:
            _fail(f"q_sample raised {rec['error']} before it set {name}.")
        if _close(rec["out"], exp["out"]):
            return                      # the line was folded into the return, which is right: so is this blank
        _fail(f"q_sample no longer sets {name}: keep the blank's line `{name} = ...` so it can be judged on its "
              "own (or return the right x_t).")
    value = loc[name]
    if value is None:
        _fail(f"{name} is still None \u2014 {FILL_IN}: pick the right value for each image's timestep t "
              "(hint: extract(..., t, x_start.shape)).")
    if not _is_tensor(value):
        _fail(f"{name} should be a tensor, not {_shape(value)}.")
    try:
        v = torch.broadcast_to(value.float(), shape)
    except RuntimeError:
        _fail(f"wrong shape: {name} has shape {tuple(value.shape)}, which does not broadcast against the "
              f"images {tuple(shape)}; it should be (B, 1, 1, 1) \u2014 that is what extract returns.")
    target = torch.broadcast_to(want.float(), shape)
    if torch.allclose(v, target, atol=1e-5, rtol=1e-4):
        return
    t, ab = inputs["t"], exp["alpha_bar"]
    k = len(t) - 1
    hint = f" It looks like {_Q_HINT[name]} without the square root." if torch.allclose(
        v, target ** 2, atol=1e-5, rtol=1e-4) else ""
    _fail(f"{name} has the wrong values: at t = {t[k].item()} it is {v[k].flatten()[0].item():.4f}, expected "
          f"{target[k].flatten()[0].item():.4f} (\u1fb1_t = {ab[k].item():.4f}).{hint}")


def _judge_q_return(rec: dict, inputs: dict, exp: dict) -> None:
    if rec["error"]:
        _fail(f"q_sample raised {rec['error']}.")
    out, shape = rec["out"], inputs["x0"].shape
    if out is None:
        _fail("q_sample returned None \u2014 " + FILL_IN + " (`return None`): return x_t, the noised images.")
    if not _is_tensor(out) or out.shape != shape:
        _fail(f"wrong shape: q_sample returned {_shape(out)}, expected {tuple(shape)} (the shape of x_start).")
    if _close(out, exp["out"]):
        if rec["fresh_error"] or rec["fresh_shape"] != list(shape):
            _fail("q_sample(x_start, t) without noise should draw noise = torch.randn_like(x_start) and still return "
                  f"images of x_start's shape ({rec['fresh_error'] or 'got ' + str(rec['fresh_shape'])}).")
        return
    msg = "q_sample's result differs from sqrt(\u1fb1_t)\u00b7x_0 + sqrt(1 - \u1fb1_t)\u00b7\u03b5"
    out0, k = rec["zero_out"], min(2, len(inputs["t"]) - 1)
    if _is_tensor(out0) and out0.shape == shape:      # x_0 = 0 leaves sqrt(1 - ᾱ_t) ε: variance 1 - ᾱ_t
        var, want_var = out0[k].float().var().item(), exp["zero_var"][k].item()
        msg += (f"; with x_0 = 0 at t = {inputs['t'][k].item()} your x_t has variance {var:.4f} but it should be "
                f"1 - \u1fb1_t = {want_var:.4f} (off by {100 * (var / want_var - 1):+.1f}%)")
    _fail(msg + ". Combine the two coefficients with x_start and noise.")


def judge_q_sample(part: str, rec: dict, inputs: dict, exp: dict) -> str:
    """One blank of ``q_sample``: ``sqrt_alpha_bar``, ``sqrt_one_minus_alpha_bar`` or ``return``."""
    if part == "return":
        _judge_q_return(rec, inputs, exp)
        k = len(inputs["t"]) - 1
        return (f"q_sample: shape {tuple(inputs['x0'].shape)}; at t = {inputs['t'][k].item()}, sqrt(\u1fb1_t) = "
                f"{exp['sqrt_alpha_bar'][k].item():.4f} and sqrt(1 - \u1fb1_t) = "
                f"{exp['sqrt_one_minus_alpha_bar'][k].item():.4f} \u2014 x_t is right.")
    _judge_coefficient(part, rec, inputs, exp)
    return f"{part} is right for every image's timestep."


# =========================================================================== notebook 4
def judge_loss_fn(rec: dict, inputs: dict, exp: dict) -> str:
    if rec["is_none"]:
        _fail("loss_fn is None \u2014 " + FILL_IN + " (`loss_fn = None`): Algorithm 1 minimises the mean "
              "squared error between the true noise and the predicted noise (hint: torch.nn has one).")
    if rec["is_class"]:
        _fail(f"loss_fn is the class {rec['class_name']} itself; create the loss object by calling it: "
              f"{rec['class_name']}().")
    if not rec["callable"]:
        _fail(f"loss_fn should be callable, like a torch.nn loss module; it is a {rec['class_name']}.")
    if rec["error"]:
        _fail(f"loss_fn(prediction, target) raised {rec['error']}.")
    val = rec["value"]
    if not _is_tensor(val) or val.numel() != 1:
        _fail(f"loss_fn(prediction, target) should return a single number (a 0-d tensor), got {_shape(val)}.")
    if not torch.allclose(val.float(), exp["mse"], rtol=1e-5):
        hint = ""
        if torch.allclose(val.float(), exp["sse"], rtol=1e-5):
            hint = " It is the sum of the squared errors; take the mean."
        elif torch.allclose(val.float(), exp["l1"], rtol=1e-5):
            hint = " It is the mean absolute error (L1); the DDPM loss is squared (L2)."
        _fail(f"loss_fn gives {val.item():.4f} where the mean squared error is {exp['mse'].item():.4f}.{hint}")
    return "loss_fn is the mean squared error \u2016\u03b5 - \u03b5_\u03b8\u2016\u00b2."


def _valid_draws(loc: dict, x0: Tensor, T: int) -> bool:
    t, noise = loc.get("t"), loc.get("noise")
    return (_is_tensor(t) and t.shape == (x0.shape[0],) and not t.is_floating_point()
            and bool(((t >= 0) & (t < T)).all()) and _is_tensor(noise) and noise.shape == x0.shape)


def _x_t_expected(loc, exp):
    t, noise, x0 = loc["t"].long(), loc["noise"].float(), loc["x_0"].float()
    return exp["sqrt_ab"][t].view(-1, 1, 1, 1) * x0 + exp["sqrt_1mab"][t].view(-1, 1, 1, 1) * noise


def judge_train(part: str, rec: dict, inputs: dict, exp: dict) -> str:
    """One blank of the training loop: ``x_t``, ``pred_noise`` or ``loss``."""
    loc, err, x0 = rec["locals"], rec["error"], inputs["x0"]
    if not _valid_draws(loc, x0, int(inputs["T"])) or not _close(loc.get("x_0"), x0, atol=0, rtol=0):
        _fail("the training loop did not get as far as drawing t and the noise for the batch x_0"
              + (f"; it raised {err}." if err else "."))
    want_x_t = _x_t_expected(loc, exp)
    x_t = loc["x_t"] if "x_t" in loc else rec["call_x"]       # a deleted line: judged by what the model was given
    spy_out = None
    if _is_tensor(rec["call_x"]) and _is_tensor(rec["call_t"]) and rec["call_t"].shape == (x0.shape[0],):
        spy_out = inputs["spy_scale"] * rec["call_x"].float() + inputs["spy_shift"][rec["call_t"].long()].view(-1, 1, 1, 1)
    if part == "x_t":
        if "x_t" not in loc and err:
            _fail(f"the training loop raised {err} before it set x_t.")
        if x_t is None:
            _fail("x_t is still None \u2014 " + FILL_IN + " (`x_t = None`): noise the clean batch x_0 to "
                  "timestep t with the noise you drew (the forward process, in closed form).")
        if not _is_tensor(x_t) or x_t.shape != want_x_t.shape:
            _fail(f"wrong shape: x_t should have the shape of the batch {tuple(want_x_t.shape)}, got {_shape(x_t)}.")
        if not _close(x_t, want_x_t):
            hint = " It equals x_0: you have not added any noise." if _close(x_t, x0) else ""
            _fail("x_t is not sqrt(\u1fb1_t)\u00b7x_0 + sqrt(1 - \u1fb1_t)\u00b7\u03b5 with the t and noise drawn "
                  "in the loop (use those, don't draw new ones)." + hint)
        return "x_t = sqrt(\u1fb1_t)\u00b7x_0 + sqrt(1 - \u1fb1_t)\u00b7\u03b5."
    pred = loc.get("pred_noise", spy_out if "pred_noise" not in loc else None)
    if part == "pred_noise":
        if "pred_noise" not in loc and err and not rec["n_calls"]:
            _fail(f"the training loop raised {err} before it set pred_noise.")
        if pred is None:
            _fail("pred_noise is still None \u2014 " + FILL_IN + " (`pred_noise = None`): ask the model for its "
                  "estimate of the noise in x_t at timestep t.")
        if not rec["n_calls"] or spy_out is None:
            _fail("pred_noise was set but the model was never called: pred_noise is the model's output.")
        if not _close(rec["call_x"], x_t if _is_tensor(x_t) else want_x_t):
            _fail("the model was called on something other than x_t: it must see the noisy images.")
        if not torch.equal(rec["call_t"].long(), loc["t"].long()):
            _fail("the model was called with the wrong timesteps: pass the t you drew for this batch.")
        if not _is_tensor(pred) or pred.shape != spy_out.shape:
            _fail(f"wrong shape: pred_noise should have the shape of the batch {tuple(spy_out.shape)}, got {_shape(pred)}.")
        if not _close(pred, spy_out):
            _fail("pred_noise should be exactly what the model returns for (x_t, t).")
        return "pred_noise is the model's output for (x_t, t)."
    loss = loc.get("loss")
    if "loss" not in loc and err:
        _fail(f"computing the loss raised {err} \u2014 {FILL_IN} (`loss = loss_fn(None)`): compare the model's "
              "prediction with the noise that was added.")
    if not _is_tensor(loss) or loss.numel() != 1:
        _fail("loss should be a single number: loss_fn(prediction, target).")
    if not _is_tensor(pred):
        _fail("the loss needs pred_noise; fill in that blank first.")
    want = ((pred.float() - loc["noise"].float()) ** 2).mean()
    if not torch.allclose(loss.float(), want, rtol=1e-5, atol=1e-7):
        other = ((pred.float() - loc["x_0"].float()) ** 2).mean()
        hint = " It compares the prediction with x_0; the target is the noise." if torch.allclose(
            loss.float(), other, rtol=1e-5) else ""
        _fail(f"loss is {loss.item():.5f} but the mean squared error between pred_noise and noise is "
              f"{want.item():.5f}.{hint}")
    if err:
        _fail(f"the training step raised {err} after computing the loss.")
    if not rec["changed"]:
        _fail("the loss is right but the model's weights did not change: the loss must be the tensor "
              "that .backward() is called on (don't convert it to a float first).")
    return f"loss = MSE(pred_noise, noise) = {loss.item():.4f}, and one optimiser step changed the weights."


# =========================================================================== notebook 5
def judge_reverse_step(rec: dict, inputs: dict, exp: dict) -> str:
    """``p_sample_DDPM`` at each t_index against the expected mean and σ_t, with the noise z it drew."""
    x = inputs["x"]
    for t_index, step, mean, sigma in zip(inputs["t_indices"], rec["steps"], exp["mean"], exp["sigma"]):
        t_index, sigma = int(t_index), float(sigma)
        call = f"p_sample_DDPM(model, x, t, t_index={t_index})"
        if step["error"]:
            _fail(f"{call} raised {step['error']}.")
        out = step["out"]
        if out is None:
            _fail("p_sample_DDPM returned None \u2014 " + FILL_IN + " (`x_tm1 = None`): compute x_{t-1} "
                  "from x_t with the model's noise prediction, following Algorithm 2, line 4.")
        if not _is_tensor(out) or out.shape != x.shape:
            _fail(f"wrong shape: x_tm1 should have the shape of x {tuple(x.shape)}, got {_shape(out)}.")
        if t_index == 0:
            if not _close(out, mean, atol=1e-4):
                _fail("at the last step (t_index = 0) x_tm1 should be the mean "
                      "1/sqrt(\u03b1_t)\u00b7(x_t - \u03b2_t/sqrt(1 - \u1fb1_t)\u00b7\u03b5_\u03b8) with no noise added; "
                      f"yours differs from it by up to {(out.float() - mean).abs().max().item():.4f}.")
            continue
        z = step["z"]
        if not (_is_tensor(z) and z.shape == x.shape and 0.8 < z.float().std().item() < 1.2):
            _fail(f"at t_index = {t_index} the step must add \u03c3_t\u00b7z with fresh noise z ~ N(0, I) "
                  "(keep the line that draws z).")
        if _close(out, mean + sigma * z.float(), atol=1e-4):
            continue
        if _close(out, mean, atol=1e-4):
            _fail(f"at t_index = {t_index} x_tm1 is just the mean: add \u03c3_t\u00b7z (\u03c3_t = sqrt(\u03b2_t)).")
        msg = f"x_tm1 is not the Algorithm 2 update at t_index = {t_index}"
        out0 = step["zero_out"]                 # ε = 0 at x = 0 leaves σ_t·z: its std should be σ_t
        if _is_tensor(out0) and out0.shape == x.shape:
            std = out0.float().std().item()
            if abs(std / sigma - 1) > 0.05:
                msg += (f"; its noise part has std {std:.4f} but should have \u03c3_t = sqrt(\u03b2_t) = "
                        f"{sigma:.4f} (variance off by {100 * ((std / sigma) ** 2 - 1):+.0f}%)")
            else:
                msg += "; the noise part \u03c3_t\u00b7z is right, so look at the mean"
        _fail(msg + ".")
    return ("x_{t-1} matches Algorithm 2 at t_index = " + ", ".join(str(int(i)) for i in inputs["t_indices"])
            + "; the last step adds no noise.")


# =========================================================================== notebook 6
def judge_class_emb(rec: dict, inputs: dict, exp: dict) -> str:
    n, ch = int(inputs["n_classes"]), int(inputs["ch"])
    if rec["error"]:
        _fail(f"UNet_cond(ch={ch}, n_classes={n}) raised {rec['error']}.")
    if rec["is_none"]:
        _fail("self.class_emb is still None \u2014 " + FILL_IN + " (`self.class_emb = None`): a learned lookup "
              "table with one vector per class, as long as the time embedding (hint: nn.Embedding).")
    if not rec["is_embedding"]:
        _fail(f"self.class_emb should be an nn.Embedding, not {rec['type']}.")
    want = [int(v) for v in exp["shape"]]
    if list(rec["shape"]) != want:
        _fail(f"wrong shape: self.class_emb is nn.Embedding({rec['shape'][0]}, {rec['shape'][1]}); it needs "
              f"n_classes = {want[0]} rows of the time embedding's size {want[1]}.")
    return f"class_emb = nn.Embedding({want[0]}, {want[1]}): one learned vector per class."


def judge_cond(part: str, rec: dict, inputs: dict, exp: dict) -> str:
    """``y_emb`` or ``cond_emb`` (and the output) of ``UNet_cond.forward`` with the given weights."""
    loc, err = rec.get("locals", {}), rec["error"]
    if rec.get("load_error"):
        _fail(f"your UNet_cond's weights do not fit the course's UNet_cond: {rec['load_error']}")
    out_ok = not err and _close(rec.get("out"), exp["out"], atol=1e-4)
    if part == "y_emb":
        if "y_emb" not in loc:
            if out_ok and _close(loc.get("cond_emb"), exp["cond_emb"]):
                return "y_emb is right (computed inline)."
            if err:
                _fail(f"UNet_cond.forward raised {err} before it set y_emb.")
        y_emb = loc.get("y_emb")
        if y_emb is None:
            _fail("y_emb is still None \u2014 " + FILL_IN + " (`y_emb = None`): look up the embedding of the labels y.")
        if not _is_tensor(y_emb) or y_emb.shape != exp["y_emb"].shape:
            _fail(f"wrong shape: y_emb should be (B, emb_dim) = {tuple(exp['y_emb'].shape)}, got {_shape(y_emb)}.")
        if not _close(y_emb, exp["y_emb"]):
            _fail("y_emb is not self.class_emb(y): embed the class labels y (not t).")
        return f"y_emb = class_emb(y), shape {tuple(y_emb.shape)}."
    cond = loc.get("cond_emb")
    if "cond_emb" not in loc:
        if out_ok:
            return "cond_emb is right (computed inline), and so is the output."
        if err:
            _fail(f"UNet_cond.forward raised {err} before it set cond_emb.")
    if cond is None:
        _fail("cond_emb is still None \u2014 " + FILL_IN + " (`cond_emb = None`): combine the time embedding and "
              "the class embedding into the one vector the backbone receives.")
    want = exp["cond_emb"]
    if not _is_tensor(cond) or cond.shape != want.shape:
        extra = " Add them (as the time embedding is added inside every ConvBlock); don't concatenate." if (
            _is_tensor(cond) and cond.shape[-1] == 2 * want.shape[-1]) else ""
        _fail(f"wrong shape: cond_emb should be {tuple(want.shape)}, got {_shape(cond)}.{extra}")
    if not _close(cond, want):
        _fail("cond_emb is not t_emb + y_emb: the class embedding is added to the time embedding.")
    if err:
        _fail(f"UNet_cond.forward raised {err}.")
    if not out_ok:
        _fail("UNet_cond's output differs from the course's UNet_cond with the same weights: pass cond_emb to "
              "self.backbone so it reaches every stage.")
    return "cond_emb = t_emb + y_emb, and the output matches the course's UNet_cond with the same weights."


# =========================================================================== notebook 7
def _missing(v) -> bool:
    return isinstance(v, dict) and v.get("type") == "missing"


def judge_cosine(part: str, rec: dict, inputs: dict, exp: dict) -> str:
    """``cosine_beta_schedule``: the blank ``alpha_bars`` (ᾱ_0 .. ᾱ_T) or the returned ``betas``."""
    for args, got, err, ab, want_b, want_ab in zip(inputs["args"], rec["results"], rec["errors"], rec["alpha_bars"],
                                                  exp["betas"], exp["alpha_bars"]):
        call = f"cosine_beta_schedule{tuple(args)}"
        if err and (part == "betas" or _missing(ab)):
            _fail(f"{call} raised {err}.")
        if part == "alpha_bars":
            if _missing(ab):
                if _close(got, want_b, atol=1e-6, rtol=1e-4):
                    continue                    # computed inline, and the betas are right: so is ᾱ
                _fail("cosine_beta_schedule no longer sets alpha_bars: keep the blank's line `alpha_bars = ...`.")
            if ab is None:
                _fail("alpha_bars is still None \u2014 " + FILL_IN + " (`alpha_bars = None`): f(t)/f(0) with "
                      "f(t) = cos\u00b2(((t/T + s)/(1 + s))\u00b7\u03c0/2), for t = 0 .. T.")
            if not _is_tensor(ab) or ab.shape != want_ab.shape:
                _fail(f"wrong shape: alpha_bars should hold T + 1 = {want_ab.shape[0]} values (t = 0 .. T), got "
                      f"{_shape(ab)}.")
            if not _close(ab.double(), want_ab, atol=1e-6, rtol=1e-5):
                hint = " It is not 1 at t = 0: divide by f(0)." if abs(ab[0].item() - 1) > 1e-6 else ""
                _fail(f"alpha_bars differs from f(t)/f(0): at t = T/2 it is {ab[len(ab) // 2].item():.5f}, expected "
                      f"{want_ab[len(want_ab) // 2].item():.5f}.{hint}")
            continue
        if got is None:
            _fail("cosine_beta_schedule returned None \u2014 " + FILL_IN + " (`betas = None`): "
                  "\u03b2_t = 1 - \u1fb1_t / \u1fb1_{t-1}.")
        if not _is_tensor(got) or got.shape != want_b.shape:
            _fail(f"wrong shape: {call} should return T = {want_b.shape[0]} betas, got {_shape(got)}.")
        if not _close(got.double(), want_b, atol=1e-6, rtol=1e-4):
            _fail(f"{call}: the betas differ from 1 - \u1fb1_t/\u1fb1_(t-1) (clipped at 0.999): the first is "
                  f"{got[0].item():.3g}, expected {want_b[0].item():.3g}; the last is {got[-1].item():.3g}, expected "
                  f"{want_b[-1].item():.3g}.")
    first = exp["betas"][0]
    return (f"cosine schedule: {'alpha_bars' if part == 'alpha_bars' else 'betas'} right; \u03b2 runs from "
            f"{first[0].item():.1e} to {first[-1].item():.3f}.")


def judge_ddim(part: str, rec: dict, inputs: dict, exp: dict) -> str:
    """``ddim_step``: the blank ``x0_pred`` (the predicted x_0) or ``x_prev`` (the returned step)."""
    for (t, t_prev, eta), step, want_x0, want_mean, sigma in zip(inputs["steps"], rec["steps"], exp["x0_pred"],
                                                                 exp["mean"], exp["sigma"]):
        call = f"ddim_step(x_t, eps, t={int(t)}, t_prev={int(t_prev)}, eta={float(eta):g})"
        if step["error"]:
            _fail(f"{call} raised {step['error']}.")
        out, x0 = step["out"], step["x0_pred"]
        if part == "x0_pred" and not _missing(x0):
            if x0 is None:
                _fail("x0_pred is still None \u2014 " + FILL_IN + " (`x0_pred = None`): solve "
                      "x_t = sqrt(\u1fb1_t)\u00b7x_0 + sqrt(1 - \u1fb1_t)\u00b7\u03b5 for x_0, with \u03b5 = eps.")
            if not _close(x0, want_x0, atol=1e-4):
                _fail(f"{call}: x0_pred is not (x_t - sqrt(1 - \u1fb1_t)\u00b7eps) / sqrt(\u1fb1_t).")
            continue
        if out is None:
            _fail("ddim_step returned None \u2014 " + FILL_IN + " (`x_prev = None`): sqrt(\u1fb1_prev)\u00b7x0_pred "
                  "+ sqrt(1 - \u1fb1_prev - \u03c3\u00b2)\u00b7eps + \u03c3\u00b7z.")
        if not _is_tensor(out) or out.shape != want_mean.shape:
            _fail(f"wrong shape: {call} should return x_prev of shape {tuple(want_mean.shape)}, got {_shape(out)}.")
        z = step["z"]
        noise = z.float() if _is_tensor(z) and z.shape == out.shape else torch.zeros_like(want_mean)
        if float(eta) > 0 and not (_is_tensor(z) and 0.8 < z.float().std().item() < 1.2):
            _fail(f"{call}: with eta > 0 the step adds \u03c3\u00b7z with fresh noise z ~ N(0, I) (keep the line that "
                  "draws z).")
        if not _close(out, want_mean + float(sigma) * noise, atol=1e-4):
            hint = " It equals x0_pred: the step goes to t_prev, not to x_0." if _close(out, want_x0, atol=1e-4) else ""
            _fail(f"{call}: x_prev differs from sqrt(\u1fb1_prev)\u00b7x\u0302_0 + sqrt(1 - \u1fb1_prev - \u03c3\u00b2)"
                  f"\u00b7eps + \u03c3\u00b7z by up to {(out.float() - want_mean - float(sigma) * noise).abs().max().item():.4f}."
                  + hint)
    return f"ddim_step: {part} right for " + ", ".join(f"t={int(a)}\u2192{int(b)} (\u03b7={float(e):g})"
                                                      for a, b, e in inputs["steps"]) + "."


def judge_guided(rec: dict, inputs: dict, exp: dict) -> str:
    """``guided_eps(eps_cond, eps_uncond, w)`` = ε_u + w (ε_c - ε_u) for each w."""
    for args, got, err, want in zip(inputs["args"], rec["results"], rec["errors"], exp["results"]):
        w = float(args[2])
        if err:
            _fail(f"guided_eps(eps_cond, eps_uncond, w={w:g}) raised {err}.")
        if got is None:
            _fail("guided_eps returned None \u2014 " + FILL_IN + " (`eps = None`): "
                  "\u03b5\u0303 = \u03b5_u + w\u00b7(\u03b5_c - \u03b5_u).")
        if not _is_tensor(got) or got.shape != want.shape:
            _fail(f"wrong shape: guided_eps should return the shape of eps_cond {tuple(want.shape)}, got {_shape(got)}.")
        if not _close(got, want, atol=1e-5):
            ec, eu = args[0], args[1]
            hint = ""
            if _close(got, ec + w * (ec - eu), atol=1e-5):
                hint = (" That is the other convention, \u03b5_c + w\u00b7(\u03b5_c - \u03b5_u) (Ho & Salimans' w is ours "
                        "minus 1); this notebook uses \u03b5_u + w\u00b7(\u03b5_c - \u03b5_u), so w = 1 means no guidance.")
            elif _close(got, eu + w * (eu - ec), atol=1e-5):
                hint = " The difference points the wrong way: \u03b5_c - \u03b5_u, from unconditional to conditional."
            _fail(f"guided_eps(\u2026, w={w:g}) is not \u03b5_u + w\u00b7(\u03b5_c - \u03b5_u).{hint}")
    return "guided_eps = \u03b5_u + w\u00b7(\u03b5_c - \u03b5_u): w = 0 gives \u03b5_u, w = 1 gives \u03b5_c, larger w pushes further."


# judge name -> function(record, inputs, expected) -> message; the grader looks judges up here too
JUDGES = {
    "schedule": judge_schedule,
    "q_sample_sqrt_alpha_bar": functools.partial(judge_q_sample, "sqrt_alpha_bar"),
    "q_sample_sqrt_one_minus_alpha_bar": functools.partial(judge_q_sample, "sqrt_one_minus_alpha_bar"),
    "q_sample_return": functools.partial(judge_q_sample, "return"),
    "loss_fn": judge_loss_fn,
    "train_x_t": functools.partial(judge_train, "x_t"),
    "train_pred_noise": functools.partial(judge_train, "pred_noise"),
    "train_loss": functools.partial(judge_train, "loss"),
    "reverse_step": judge_reverse_step,
    "class_emb": judge_class_emb,
    "cond_y_emb": functools.partial(judge_cond, "y_emb"),
    "cond_cond_emb": functools.partial(judge_cond, "cond_emb"),
    "cosine_alpha_bars": functools.partial(judge_cosine, "alpha_bars"),
    "cosine_betas": functools.partial(judge_cosine, "betas"),
    "ddim_x0_pred": functools.partial(judge_ddim, "x0_pred"),
    "ddim_x_prev": functools.partial(judge_ddim, "x_prev"),
    "guided": judge_guided,
}


# =========================================================================== self-checks (stored expected values)
@functools.lru_cache(maxsize=1)
def _check_data() -> dict:
    return torch.load(CHECK_DATA, weights_only=True)


def _self_check(name: str, obj, judges: list[str], quiet: bool) -> None:
    case = _check_data()[name]
    rec = PROBES[case["probe"]](obj, case["inputs"])
    for j in judges:
        msg = JUDGES[j](rec, case["inputs"], case["expected"])
        if not quiet:
            print("\u2713 " + msg)


def check_linear_beta_schedule(fn: Callable, quiet: bool = False) -> None:
    """Self-check for ``linear_beta_schedule(timesteps, beta_start=1e-4, beta_end=0.02)``."""
    _self_check("linear_beta_schedule", fn, ["schedule"], quiet)


def check_q_sample(fn: Callable, quiet: bool = False) -> None:
    """Self-check for ``q_sample(x_start, t, noise=None)``: x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε."""
    _self_check("q_sample", fn, ["q_sample_sqrt_alpha_bar", "q_sample_sqrt_one_minus_alpha_bar", "q_sample_return"],
                quiet)


def check_loss_fn(loss_fn, quiet: bool = False) -> None:
    """Self-check for ``loss_fn``: the mean squared error of Algorithm 1."""
    _self_check("loss_fn", loss_fn, ["loss_fn"], quiet)


def check_training_loop(train_fn: Callable, quiet: bool = False) -> None:
    """Self-check for the three blanks of the training loop (x_t, pred_noise, loss), in order."""
    _self_check("train_step", train_fn, ["train_x_t", "train_pred_noise", "train_loss"], quiet)


def check_p_sample_DDPM(fn: Callable, quiet: bool = False) -> None:
    """Self-check for ``p_sample_DDPM(model, x, t, t_index)``."""
    _self_check("reverse_step", fn, ["reverse_step"], quiet)


def check_cosine_beta_schedule(fn: Callable, quiet: bool = False) -> None:
    """Self-check for ``cosine_beta_schedule(timesteps, s=0.008)``: the blanks alpha_bars and betas."""
    _self_check("cosine", fn, ["cosine_alpha_bars", "cosine_betas"], quiet)


def check_ddim_step(fn: Callable, quiet: bool = False) -> None:
    """Self-check for ``ddim_step(x_t, eps, t, t_prev, eta=0.0)``: the blanks x0_pred and x_prev."""
    _self_check("ddim", fn, ["ddim_x0_pred", "ddim_x_prev"], quiet)


def check_guided_eps(fn: Callable, quiet: bool = False) -> None:
    """Self-check for ``guided_eps(eps_cond, eps_uncond, w)``."""
    _self_check("guided", fn, ["guided"], quiet)


def check_unet_cond(cls, quiet: bool = False) -> None:
    """Self-check for the three blanks of ``UNet_cond``."""
    _self_check("class_emb", cls, ["class_emb"], quiet)
    _self_check("cond_forward", cls, ["cond_y_emb", "cond_cond_emb"], quiet)
