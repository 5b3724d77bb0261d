"""Self-checks and graded tests for the student blanks in the notebooks.

Every blank in a notebook is followed by a visible self-check cell that calls one ``check_*`` function
here, and by a hidden graded cell (nbgrader) that calls one ``grade_*`` function.  Both judge the
student's code on fixed, seeded inputs against the mathematics and against the reference
``solutions`` package, and fail with a ``SelfCheckError`` whose message says what to fix.

Two tools make the judgement precise without re-running the whole notebook:

* ``capture_locals`` runs a function and records its local variables (``sqrt_alpha_bar``, ``x_t``,
  ``y_emb`` ...), so each blank is judged on its own even when a later line is still ``None``;
* ``patched_globals`` swaps the notebook globals a function reads (``alpha_bars``, ``loss_fn``,
  ``device``) for reference values while it is being checked, so one wrong blank does not make the
  next blank fail too.

The graded tests use different seeds and inputs from the self-checks.
"""
from __future__ import annotations

import contextlib
import inspect
import sys
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import solutions

__all__ = [
    "SelfCheckError", "capture_locals", "patched_globals",
    "check_linear_beta_schedule", "check_q_sample",
    "check_loss_fn", "check_training_loop",
    "check_p_sample_DDPM",
    "check_unet_cond",
    "grade_linear_beta_schedule", "grade_q_sample_sqrt_alpha_bar", "grade_q_sample_sqrt_one_minus_alpha_bar",
    "grade_q_sample_return", "grade_loss_fn", "grade_train_x_t", "grade_train_pred_noise", "grade_train_loss",
    "grade_p_sample_DDPM", "grade_unet_cond_class_emb", "grade_unet_cond_y_emb", "grade_unet_cond_cond_emb",
]

FILL_IN = "fill in the blank"


class SelfCheckError(AssertionError):
    """A blank is not filled in correctly yet; the message says what is wrong and how to fix it."""


def _fail(message: str) -> None:
    raise SelfCheckError(message)


def _ok(message: str, quiet: bool) -> None:
    if not quiet:
        print("\u2713 " + message)


# --------------------------------------------------------------------------- tools
def _code_of(fn: Callable):
    fn = inspect.unwrap(fn)
    return fn.__code__


def capture_locals(fn: Callable, *args, names=None, code=None, **kwargs):
    """Call ``fn(*args, **kwargs)`` and record the locals of the frame running ``code`` (default: fn's).

    Returns ``(result, recorded, error)``: ``recorded`` maps each local name (all of them, or only
    ``names``) to the last value it held; ``error`` is the exception the call raised, or ``None``.
    """
    code = code or _code_of(fn)
    recorded: dict[str, Any] = {}

    def record(frame):
        for k, v in frame.f_locals.items():
            if names is None or k in names:
                recorded[k] = v

    def local_tracer(frame, event, arg):
        if event in ("line", "return", "exception"):
            record(frame)
        return local_tracer

    def global_tracer(frame, event, arg):
        if event == "call" and frame.f_code is code:
            return local_tracer
        return None

    previous = sys.gettrace()
    sys.settrace(global_tracer)
    result, error = None, None
    try:
        result = fn(*args, **kwargs)
    except Exception as err:  # the student's code may raise anything; report it, don't crash here
        error = err
    finally:
        sys.settrace(previous)
    return result, recorded, error


@contextlib.contextmanager
def patched_globals(fn: Callable, **values):
    """Temporarily replace the module/notebook globals that ``fn`` reads (only names it has)."""
    g = inspect.unwrap(fn).__globals__
    missing = object()
    saved = {k: g.get(k, missing) for k in values}
    try:
        g.update(values)
        yield
    finally:
        for k, v in saved.items():
            if v is missing:
                g.pop(k, None)
            else:
                g[k] = v


def _describe_error(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def _raised_before(name: str, loc: dict, err, where: str) -> None:
    """Fail with the student's own error when it stopped the code before ``name`` was assigned."""
    if name not in loc and err is not None:
        _fail(f"{where} raised {_describe_error(err)} before it set {name}.")


def _is_tensor(x) -> bool:
    return isinstance(x, Tensor)


def _close(a: Tensor, b: Tensor, atol=1e-5, rtol=1e-4) -> bool:
    return a.shape == b.shape and torch.allclose(a.detach().float().cpu(), b.detach().float().cpu(), atol=atol,
                                                 rtol=rtol)


def _broadcast_close(value, target: Tensor, shape) -> bool:
    """``value`` broadcasts to ``shape`` and equals ``target`` (already of that shape) there."""
    if not _is_tensor(value):
        return False
    try:
        v = torch.broadcast_to(value.detach().float().cpu(), shape)
    except RuntimeError:
        return False
    return torch.allclose(v, torch.broadcast_to(target.float(), shape), atol=1e-5, rtol=1e-4)


def _ref_schedule(T: int = 1000):
    return solutions.Schedule.linear(T)


# =========================================================================== notebook 2
def _call_schedule(fn, *args):
    try:
        return fn(*args)
    except Exception as err:
        _fail(f"linear_beta_schedule{args} raised {_describe_error(err)}.")


def check_linear_beta_schedule(fn: Callable, quiet: bool = False) -> None:
    """Self-check for ``linear_beta_schedule(timesteps, beta_start=1e-4, beta_end=0.02)``."""
    betas = _call_schedule(fn, 1000)
    if betas is None:
        _fail("linear_beta_schedule returned None \u2014 " + FILL_IN + " (`return None`): return the "
              "`timesteps` values of \u03b2 spaced evenly from beta_start to beta_end (hint: torch.linspace).")
    if not _is_tensor(betas):
        _fail(f"linear_beta_schedule should return a torch tensor, not {type(betas).__name__}.")
    if tuple(betas.shape) != (1000,):
        _fail(f"wrong shape: linear_beta_schedule(1000) has shape {tuple(betas.shape)}, expected (1000,) "
              "\u2014 one \u03b2 per timestep.")
    b0, bT = betas[0].item(), betas[-1].item()
    if abs(b0 - 1e-4) > 1e-8:
        _fail(f"wrong endpoint: betas[0] = {b0:.6g}, expected beta_start = 1e-4.")
    if abs(bT - 0.02) > 1e-7:
        _fail(f"wrong endpoint: betas[-1] = {bT:.6g}, expected beta_end = 0.02 "
              "(the last \u03b2 must be beta_end itself, not one step before it).")
    steps = betas.double().diff()
    if not torch.allclose(steps, steps.mean().expand_as(steps), atol=1e-8):
        _fail("the betas are not evenly spaced: consecutive differences range from "
              f"{steps.min().item():.3g} to {steps.max().item():.3g}; a linear schedule has one constant step.")
    custom = _call_schedule(fn, 11, 0.1, 0.2)
    if custom is None or not _is_tensor(custom) or not _close(custom, torch.linspace(0.1, 0.2, 11)):
        _fail("linear_beta_schedule(11, beta_start=0.1, beta_end=0.2) should give 0.10, 0.11, ..., 0.20 \u2014 "
              "use the arguments timesteps, beta_start and beta_end instead of fixed numbers.")
    if not _close(betas, solutions.linear_beta_schedule(1000)):
        _fail("your betas differ from solutions.linear_beta_schedule(1000).")
    _ok(f"linear_beta_schedule: 1000 values from {b0:.1e} to {bT:.1e}, evenly spaced "
        "\u2014 matches solutions.linear_beta_schedule.", quiet)


def grade_linear_beta_schedule(fn: Callable) -> None:
    """Graded test (hidden): other lengths and ranges than the self-check, compared with solutions."""
    for args in [(1000,), (37,), (250, 1e-3, 0.05), (2, 0.3, 0.6)]:
        got = _call_schedule(fn, *args)
        want = solutions.linear_beta_schedule(*args)
        if not _is_tensor(got) or not _close(got, want, atol=1e-7, rtol=1e-5):
            _fail(f"linear_beta_schedule{args} does not match the linear schedule.")


_Q_SAMPLE_LOCALS = ("sqrt_alpha_bar", "sqrt_one_minus_alpha_bar")


def _q_sample_inputs(seed: int, t_values):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(len(t_values), 1, 28, 28, generator=g) * 2 - 1
    noise = torch.randn(x0.shape, generator=g)
    return x0, torch.tensor(t_values, dtype=torch.long), noise


def _run_q_sample(fn, x0, t, noise):
    """The student's q_sample with the reference schedule in the notebook globals it reads."""
    s = _ref_schedule()
    with patched_globals(fn, betas=s.betas, alphas=s.alphas, alpha_bars=s.alpha_bars):
        return capture_locals(fn, x0, t, noise, names=_Q_SAMPLE_LOCALS)


def _check_coefficient(name, value, want, shape, alpha_bar, t, hint_sqrt_of, loc=None, err=None):
    _raised_before(name, loc or {}, err, "q_sample")
    if value is None:
        _fail(f"{name} is still None \u2014 {FILL_IN}: pick the right value for each image's timestep t "
              f"(hint: extract(..., t, x_start.shape)).")
    if not _is_tensor(value):
        _fail(f"{name} should be a tensor, not {type(value).__name__}.")
    try:
        torch.broadcast_to(value, shape)
    except RuntimeError:
        _fail(f"wrong shape: {name} has shape {tuple(value.shape)}, which does not broadcast against the "
              f"images {tuple(shape)}; it should be (B, 1, 1, 1) \u2014 that is what extract returns.")
    if _broadcast_close(value, want, shape):
        return
    k = len(t) - 1
    got_k = torch.broadcast_to(value.detach().float().cpu(), shape)[k].flatten()[0].item()
    hint = ""
    if _broadcast_close(value, want ** 2, shape):
        hint = f" It looks like {hint_sqrt_of} without the square root."
    _fail(f"{name} has the wrong values: at t = {t[k].item()} it is {got_k:.4f}, expected {want[k].item():.4f} "
          f"(\u1fb1_t = {alpha_bar[k].item():.4f}).{hint}")


def check_q_sample(fn: Callable, quiet: bool = False) -> None:
    """Self-check for ``q_sample(x_start, t, noise=None)``: x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε."""
    x0, t, noise = _q_sample_inputs(0, [0, 10, 250, 999])
    ab = _ref_schedule().alpha_bars[t]
    out, loc, err = _run_q_sample(fn, x0, t, noise)
    shape = x0.shape
    _check_coefficient("sqrt_alpha_bar", loc.get("sqrt_alpha_bar"), ab.sqrt().view(-1, 1, 1, 1), shape, ab, t,
                       "\u1fb1_t", loc, err)
    _check_coefficient("sqrt_one_minus_alpha_bar", loc.get("sqrt_one_minus_alpha_bar"),
                       (1 - ab).sqrt().view(-1, 1, 1, 1), shape, ab, t, "1 - \u1fb1_t", loc, err)
    if err is not None:
        _fail(f"q_sample raised {_describe_error(err)}.")
    if out is None:
        _fail("q_sample returned None \u2014 " + FILL_IN + " (`return None`): return x_t, the noised images.")
    if not _is_tensor(out) or tuple(out.shape) != tuple(shape):
        got = tuple(out.shape) if _is_tensor(out) else type(out).__name__
        _fail(f"wrong shape: q_sample returned {got}, expected {tuple(shape)} (the shape of x_start).")
    want = solutions.q_sample(x0, t, noise)
    if not _close(out, want):
        # Diagnose with the pure-noise case: x_0 = 0 gives x_t = sqrt(1 - ᾱ_t) ε, variance 1 - ᾱ_t.
        out0, _, _ = _run_q_sample(fn, torch.zeros_like(x0), t, noise)
        msg = "q_sample's result differs from sqrt(\u1fb1_t)\u00b7x_0 + sqrt(1 - \u1fb1_t)\u00b7\u03b5"
        if _is_tensor(out0) and out0.shape == x0.shape:
            k = 2
            var, want_var = out0[k].var().item(), (1 - ab[k]).item()
            msg += (f"; with x_0 = 0 at t = {t[k].item()} your x_t has variance {var:.4f} but it should be "
                    f"1 - \u1fb1_t = {want_var:.4f} (off by {100 * (var / want_var - 1):+.1f}%)")
        _fail(msg + ". Combine the two coefficients with x_start and noise.")
    # noise=None draws fresh noise of the right shape.
    with patched_globals(fn, alpha_bars=_ref_schedule().alpha_bars):
        try:
            fresh = fn(x0, t)
        except Exception as e:
            _fail(f"q_sample(x_start, t) without noise raised {_describe_error(e)}; draw noise = "
                  "torch.randn_like(x_start) when noise is None.")
    if not _is_tensor(fresh) or fresh.shape != x0.shape:
        _fail("q_sample(x_start, t) without noise should still return images of x_start's shape.")
    # The variance at the last step, estimated from many draws: x_T should be close to N(0, 1).
    g = torch.Generator().manual_seed(1)
    big = torch.randn(256, 1, 28, 28, generator=g)
    xT = solutions.q_sample(torch.zeros_like(big), torch.full((256,), 999), big)
    _ok(f"q_sample: shape {tuple(out.shape)}; at t = 999, sqrt(\u1fb1_t) = {ab[-1].sqrt().item():.4f} and "
        f"sqrt(1 - \u1fb1_t) = {(1 - ab[-1]).sqrt().item():.4f} (x_T has std {xT.std().item():.3f}) "
        "\u2014 matches solutions.q_sample.", quiet)


def _grade_q_sample_part(fn, part: str) -> None:
    x0, t, noise = _q_sample_inputs(123, [3, 77, 400, 640, 998])
    ab = _ref_schedule().alpha_bars[t]
    out, loc, err = _run_q_sample(fn, x0, t, noise)
    if part == "sqrt_alpha_bar":
        _check_coefficient(part, loc.get(part), ab.sqrt().view(-1, 1, 1, 1), x0.shape, ab, t, "\u1fb1_t", loc, err)
    elif part == "sqrt_one_minus_alpha_bar":
        _check_coefficient(part, loc.get(part), (1 - ab).sqrt().view(-1, 1, 1, 1), x0.shape, ab, t,
                           "1 - \u1fb1_t", loc, err)
    else:
        if err is not None:
            _fail(f"q_sample raised {_describe_error(err)}.")
        if not _is_tensor(out) or not _close(out, solutions.q_sample(x0, t, noise)):
            _fail("q_sample(x_start, t, noise) does not return sqrt(\u1fb1_t)\u00b7x_0 + sqrt(1 - \u1fb1_t)\u00b7\u03b5.")


def grade_q_sample_sqrt_alpha_bar(fn: Callable) -> None:
    _grade_q_sample_part(fn, "sqrt_alpha_bar")


def grade_q_sample_sqrt_one_minus_alpha_bar(fn: Callable) -> None:
    _grade_q_sample_part(fn, "sqrt_one_minus_alpha_bar")


def grade_q_sample_return(fn: Callable) -> None:
    _grade_q_sample_part(fn, "return")


# =========================================================================== notebook 4
def _loss_inputs(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(4, 1, 28, 28, generator=g), torch.randn(4, 1, 28, 28, generator=g)


def _judge_loss_fn(loss_fn) -> None:
    if loss_fn is None:
        _fail("loss_fn is None \u2014 " + FILL_IN + " (`loss_fn = None`): Algorithm 1 minimises the mean "
              "squared error between the true noise and the predicted noise (hint: torch.nn has one).")
    if isinstance(loss_fn, type):
        _fail(f"loss_fn is the class {loss_fn.__name__} itself; create the loss object by calling it: "
              f"{loss_fn.__name__}().")
    if not callable(loss_fn):
        _fail(f"loss_fn should be callable, like a torch.nn loss module; it is a {type(loss_fn).__name__}.")
    a, b = _loss_inputs(7)
    try:
        val = loss_fn(a, b)
    except Exception as err:
        _fail(f"loss_fn(prediction, target) raised {_describe_error(err)}.")
    if not _is_tensor(val) or val.numel() != 1:
        _fail("loss_fn(prediction, target) should return a single number (a 0-d tensor), "
              f"got {tuple(val.shape) if _is_tensor(val) else type(val).__name__}.")
    want = F.mse_loss(a, b)
    if not torch.allclose(val.float(), want, rtol=1e-5):
        hint = ""
        if torch.allclose(val.float(), (a - b).pow(2).sum(), rtol=1e-5):
            hint = " It is the sum of the squared errors; take the mean."
        elif torch.allclose(val.float(), (a - b).abs().mean(), rtol=1e-5):
            hint = " It is the mean absolute error (L1); the DDPM loss is squared (L2)."
        _fail(f"loss_fn gives {val.item():.4f} where the mean squared error is {want.item():.4f}.{hint}")


def check_loss_fn(loss_fn, quiet: bool = False) -> None:
    """Self-check for ``loss_fn``: the mean squared error of Algorithm 1."""
    _judge_loss_fn(loss_fn)
    _ok("loss_fn is the mean squared error \u2016\u03b5 - \u03b5_\u03b8\u2016\u00b2.", quiet)


def grade_loss_fn(loss_fn) -> None:
    _judge_loss_fn(loss_fn)


class _SpyModel(nn.Module):
    """A stand-in for the UNet: cheap, differentiable, depends on x and t, and remembers its inputs."""

    def __init__(self, T: int = 1000):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(0.5))
        self.shift = nn.Parameter(torch.linspace(-0.2, 0.2, T))
        self.calls: list[tuple[Tensor, Tensor, Tensor]] = []

    def forward(self, x, t):
        out = self.scale * x + self.shift[t].view(-1, 1, 1, 1)
        self.calls.append((x.detach().clone(), t.detach().clone(), out.detach().clone()))
        return out


_TRAIN_LOCALS = ("x_0", "t", "noise", "x_t", "pred_noise", "loss")


def _run_training_step(train_fn, seed: int, batch: int = 6):
    """One step of the student's training loop on a fixed batch with a spy model, recording its locals."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(batch, 1, 28, 28, generator=g) * 2 - 1
    y = torch.full((batch,), 6)
    model = _SpyModel()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    g_ = inspect.unwrap(train_fn).__globals__
    fixes = {"device": torch.device("cpu")}
    try:
        _judge_loss_fn(g_.get("loss_fn"))
    except SelfCheckError:  # judge this blank on its own: use the right loss for it
        fixes["loss_fn"] = nn.MSELoss()
    torch.manual_seed(seed)
    with patched_globals(train_fn, **fixes):
        result, loc, err = capture_locals(train_fn, model, optimizer, [(x0, y)], 1, max_steps=1, progress=False,
                                          names=_TRAIN_LOCALS)
    changed = any(not torch.equal(a, p.detach()) for a, p in zip(before, model.parameters()))
    return dict(x0=x0, model=model, result=result, loc=loc, err=err, changed=changed)


def _judge_x_t(run) -> None:
    loc = run["loc"]
    if "t" not in loc or "noise" not in loc:
        _fail("the training loop did not get as far as drawing t and the noise; "
              f"it raised {_describe_error(run['err']) if run['err'] else 'nothing'}.")
    _raised_before("x_t", loc, run["err"], "the training loop")
    x_t = loc.get("x_t")
    if x_t is None:
        _fail("x_t is still None \u2014 " + FILL_IN + " (`x_t = None`): noise the clean batch x_0 to "
              "timestep t with the noise you drew (the forward process, in closed form).")
    want = solutions.q_sample(loc["x_0"], loc["t"], loc["noise"])
    if not _is_tensor(x_t) or x_t.shape != want.shape:
        _fail(f"wrong shape: x_t should have the shape of the batch {tuple(want.shape)}.")
    if not _close(x_t, want):
        hint = ""
        if _close(x_t, loc["x_0"]):
            hint = " It equals x_0: you have not added any noise."
        _fail("x_t is not sqrt(\u1fb1_t)\u00b7x_0 + sqrt(1 - \u1fb1_t)\u00b7\u03b5 with the t and noise drawn "
              "in the loop (use those, don't draw new ones)." + hint)


def _judge_pred_noise(run) -> None:
    loc = run["loc"]
    _raised_before("pred_noise", loc, run["err"], "the training loop")
    pred = loc.get("pred_noise")
    if pred is None:
        _fail("pred_noise is still None \u2014 " + FILL_IN + " (`pred_noise = None`): ask the model for its "
              "estimate of the noise in x_t at timestep t.")
    calls = run["model"].calls
    if not calls:
        _fail("pred_noise was set but the model was never called: pred_noise is the model's output.")
    x_in, t_in, out = calls[-1]
    if "x_t" in loc and _is_tensor(loc["x_t"]) and not _close(x_in, loc["x_t"]):
        _fail("the model was called on something other than x_t: it must see the noisy images.")
    if not torch.equal(t_in, loc["t"]):
        _fail("the model was called with the wrong timesteps: pass the t you drew for this batch.")
    if not _is_tensor(pred) or pred.shape != out.shape:
        _fail(f"wrong shape: pred_noise should have the shape of the batch {tuple(out.shape)}.")
    if not _close(pred, out):
        _fail("pred_noise should be exactly what the model returns for (x_t, t).")


def _judge_loss(run) -> None:
    loc = run["loc"]
    if "loss" not in loc and run["err"] is not None:
        _fail(f"computing the loss raised {_describe_error(run['err'])} \u2014 {FILL_IN} "
              "(`loss = loss_fn(None)`): compare the model's prediction with the noise that was added.")
    loss = loc.get("loss")
    if not _is_tensor(loss) or loss.numel() != 1:
        _fail("loss should be a single number: loss_fn(prediction, target).")
    pred, noise = loc.get("pred_noise"), loc["noise"]
    if not _is_tensor(pred):
        _fail("the loss needs pred_noise; fill in that blank first.")
    want = F.mse_loss(pred.detach(), noise)
    if not torch.allclose(loss.detach().float(), want, rtol=1e-5, atol=1e-7):
        other = F.mse_loss(pred.detach(), loc["x_0"])
        hint = " It compares the prediction with x_0; the target is the noise." if torch.allclose(
            loss.detach().float(), other, rtol=1e-5) else ""
        _fail(f"loss is {loss.item():.5f} but the mean squared error between pred_noise and noise is "
              f"{want.item():.5f}.{hint}")
    if run["err"] is not None:
        _fail(f"the training step raised {_describe_error(run['err'])} after computing the loss.")
    if not run["changed"]:
        _fail("the loss is right but the model's weights did not change: the loss must be the tensor "
              "that .backward() is called on (don't convert it to a float first).")


def check_training_loop(train_fn: Callable, quiet: bool = False) -> None:
    """Self-check for the three blanks of the training loop (x_t, pred_noise, loss), in order."""
    run = _run_training_step(train_fn, seed=0)
    _judge_x_t(run)
    _ok("x_t = sqrt(\u1fb1_t)\u00b7x_0 + sqrt(1 - \u1fb1_t)\u00b7\u03b5 (matches solutions.q_sample).", quiet)
    _judge_pred_noise(run)
    _ok("pred_noise is the model's output for (x_t, t).", quiet)
    _judge_loss(run)
    _ok(f"loss = MSE(pred_noise, noise) = {run['loc']['loss'].item():.4f}, and one optimiser step "
        "changed the weights.", quiet)


def grade_train_x_t(train_fn: Callable) -> None:
    _judge_x_t(_run_training_step(train_fn, seed=2024))


def grade_train_pred_noise(train_fn: Callable) -> None:
    _judge_pred_noise(_run_training_step(train_fn, seed=2025))


def grade_train_loss(train_fn: Callable) -> None:
    _judge_loss(_run_training_step(train_fn, seed=2026))


# =========================================================================== notebook 5
class _FixedEps(nn.Module):
    """ε_θ stand-in: a fixed function of (x, t) so the reverse step can be checked exactly."""

    def __init__(self, zero: bool = False):
        super().__init__()
        self.zero = zero

    def forward(self, x, t):
        if self.zero:
            return torch.zeros_like(x)
        return 0.3 * x + (t.float() / 1000).view(-1, 1, 1, 1)


def _reverse_step(fn, model, x, t_index, seed):
    s = _ref_schedule()
    t = torch.full((x.shape[0],), t_index, dtype=torch.long)
    torch.manual_seed(seed)
    with patched_globals(fn, betas=s.betas, alphas=s.alphas, alpha_bars=s.alpha_bars):
        out, loc, err = capture_locals(fn, model, x, t, t_index)
    return t, out, loc, err


def _judge_p_sample(fn, seed: int) -> str:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(16, 1, 28, 28, generator=g)
    s = _ref_schedule()
    report = []
    for t_index in (0, 1, 500, 999):
        t, out, loc, err = _reverse_step(fn, _FixedEps(), x, t_index, seed + t_index)
        if err is not None:
            _fail(f"p_sample_DDPM(model, x, t, t_index={t_index}) raised {_describe_error(err)}.")
        if out is None:
            _fail("p_sample_DDPM returned None \u2014 " + FILL_IN + " (`x_tm1 = None`): compute x_{t-1} "
                  "from x_t with the model's noise prediction, following Algorithm 2, line 4.")
        if not _is_tensor(out) or out.shape != x.shape:
            _fail(f"wrong shape: x_tm1 should have the shape of x {tuple(x.shape)}, got "
                  f"{tuple(out.shape) if _is_tensor(out) else type(out).__name__}.")
        z = loc.get("z")
        z = z if _is_tensor(z) else torch.zeros_like(x)
        eps = _FixedEps()(x, t)
        want = solutions.ddpm_reverse_step(x, eps, t, t_index, noise=z)
        if not _close(out, want, atol=1e-4):
            mean = solutions.ddpm_reverse_step(x, eps, t, 0)
            if t_index == 0:
                _fail("at the last step (t_index = 0) x_tm1 should be the mean "
                      "1/sqrt(\u03b1_t)\u00b7(x_t - \u03b2_t/sqrt(1 - \u1fb1_t)\u00b7\u03b5_\u03b8) with no noise added; "
                      f"yours differs from it by up to {(out - mean).abs().max().item():.4f}.")
            if _close(out, mean, atol=1e-4):
                _fail(f"at t_index = {t_index} x_tm1 is just the mean: add \u03c3_t\u00b7z (\u03c3_t = sqrt(\u03b2_t)).")
            # Separate the noise part with a zero model at x = 0: x_{t-1} = σ_t z, std should be sqrt(β_t).
            _, out0, loc0, _ = _reverse_step(fn, _FixedEps(zero=True), torch.zeros_like(x), t_index, seed)
            msg = f"x_tm1 is not the Algorithm 2 update at t_index = {t_index}"
            if _is_tensor(out0) and out0.shape == x.shape:
                std, want_std = out0.std().item(), s.betas[t_index].sqrt().item()
                if abs(std / want_std - 1) > 0.05:
                    msg += (f"; its noise part has std {std:.4f} but should have \u03c3_t = sqrt(\u03b2_t) = "
                            f"{want_std:.4f} (variance off by {100 * ((std / want_std) ** 2 - 1):+.0f}%)")
                else:
                    msg += "; the noise part \u03c3_t\u00b7z is right, so look at the mean"
            _fail(msg + ".")
        report.append(t_index)
    return "x_{t-1} matches Algorithm 2 (and solutions.ddpm_reverse_step) at t_index = " + ", ".join(
        map(str, report)) + "; the last step adds no noise."


def check_p_sample_DDPM(fn: Callable, quiet: bool = False) -> None:
    """Self-check for ``p_sample_DDPM(model, x, t, t_index)``."""
    _ok(_judge_p_sample(fn, seed=0), quiet)


def grade_p_sample_DDPM(fn: Callable) -> None:
    _judge_p_sample(fn, seed=31337)


# =========================================================================== notebook 6
_COND_LOCALS = ("t_emb", "y_emb", "cond_emb")


def _make_cond(cls, ch: int, n_classes: int):
    try:
        return cls(ch=ch, n_classes=n_classes)
    except Exception as err:
        _fail(f"UNet_cond(ch={ch}, n_classes={n_classes}) raised {_describe_error(err)}.")


def _judge_class_emb(model, n_classes: int) -> None:
    emb = getattr(model, "class_emb", None)
    if emb is None:
        _fail("self.class_emb is still None \u2014 " + FILL_IN + " (`self.class_emb = None`): a learned lookup "
              "table with one vector per class, as long as the time embedding (hint: nn.Embedding).")
    if not isinstance(emb, nn.Embedding):
        _fail(f"self.class_emb should be an nn.Embedding, not {type(emb).__name__}.")
    emb_dim = model.time_mlp[-1].out_features
    if (emb.num_embeddings, emb.embedding_dim) != (n_classes, emb_dim):
        _fail(f"wrong shape: self.class_emb is nn.Embedding({emb.num_embeddings}, {emb.embedding_dim}); it needs "
              f"n_classes = {n_classes} rows of the time embedding's size {emb_dim}.")


def _cond_inputs(seed, B=4):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, 1, 28, 28, generator=g)
    t = torch.randint(0, 1000, (B,), generator=g)
    y = torch.randint(0, 10, (B,), generator=g)
    return x, t, y


def _run_cond(cls, seed):
    torch.manual_seed(seed)
    model = _make_cond(cls, 8, 10)
    try:
        _judge_class_emb(model, 10)
    except SelfCheckError:  # judge the forward blanks on their own
        model.class_emb = nn.Embedding(10, model.time_mlp[-1].out_features)
    x, t, y = _cond_inputs(seed)
    out, loc, err = capture_locals(model.forward, x, t, y, names=_COND_LOCALS, code=_code_of(type(model).forward))
    return model, (x, t, y), out, loc, err


def _judge_y_emb(model, inputs, loc, err=None) -> None:
    _raised_before("y_emb", loc, err, "UNet_cond.forward")
    y_emb = loc.get("y_emb")
    if y_emb is None:
        _fail("y_emb is still None \u2014 " + FILL_IN + " (`y_emb = None`): look up the embedding of the labels y.")
    want = model.class_emb(inputs[2])
    if not _is_tensor(y_emb) or y_emb.shape != want.shape:
        _fail(f"wrong shape: y_emb should be (B, emb_dim) = {tuple(want.shape)}, got "
              f"{tuple(y_emb.shape) if _is_tensor(y_emb) else type(y_emb).__name__}.")
    if not _close(y_emb, want):
        _fail("y_emb is not self.class_emb(y): embed the class labels y (not t).")


def _judge_cond_emb(model, inputs, out, loc, err) -> None:
    _raised_before("cond_emb", loc, err, "UNet_cond.forward")
    cond = loc.get("cond_emb")
    if cond is None:
        _fail("cond_emb is still None \u2014 " + FILL_IN + " (`cond_emb = None`): combine the time embedding and "
              "the class embedding into the one vector the backbone receives.")
    t_emb, y_emb = loc.get("t_emb"), model.class_emb(inputs[2])
    want = t_emb + y_emb if _is_tensor(t_emb) else None
    if not _is_tensor(cond) or want is None or cond.shape != want.shape:
        extra = " Add them (as the time embedding is added inside every ConvBlock); don't concatenate." if (
            _is_tensor(cond) and want is not None and cond.shape[-1] == 2 * want.shape[-1]) else ""
        _fail(f"wrong shape: cond_emb should be {tuple(want.shape) if want is not None else '(B, emb_dim)'}, got "
              f"{tuple(cond.shape) if _is_tensor(cond) else type(cond).__name__}.{extra}")
    if not _close(cond, want):
        _fail("cond_emb is not t_emb + y_emb: the class embedding is added to the time embedding.")
    if err is not None:
        _fail(f"UNet_cond.forward raised {_describe_error(err)}.")
    ref = solutions.UNet_cond(ch=8, n_classes=10)
    try:
        ref.load_state_dict(model.state_dict())
    except Exception as e:
        _fail(f"your UNet_cond's weights do not fit solutions.UNet_cond: {e}")
    with torch.no_grad():
        want_out = ref(*inputs)
    if not _is_tensor(out) or not _close(out, want_out, atol=1e-4):
        _fail("UNet_cond's output differs from solutions.UNet_cond with the same weights: pass cond_emb to "
              "self.backbone so it reaches every stage.")


def check_unet_cond(cls, quiet: bool = False) -> None:
    """Self-check for the three blanks of ``UNet_cond``."""
    torch.manual_seed(0)
    model = _make_cond(cls, 8, 10)
    _judge_class_emb(model, 10)
    _ok(f"class_emb = nn.Embedding(10, {model.time_mlp[-1].out_features}): one learned vector per digit.", quiet)
    model, inputs, out, loc, err = _run_cond(cls, seed=0)
    _judge_y_emb(model, inputs, loc, err)
    _ok(f"y_emb = class_emb(y), shape {tuple(loc['y_emb'].shape)}.", quiet)
    _judge_cond_emb(model, inputs, out, loc, err)
    _ok("cond_emb = t_emb + y_emb, and the output matches solutions.UNet_cond with the same weights.", quiet)


def grade_unet_cond_class_emb(cls) -> None:
    torch.manual_seed(5)
    _judge_class_emb(_make_cond(cls, 16, 7), 7)


def grade_unet_cond_y_emb(cls) -> None:
    model, inputs, out, loc, err = _run_cond(cls, seed=77)
    _judge_y_emb(model, inputs, loc, err)


def grade_unet_cond_cond_emb(cls) -> None:
    model, inputs, out, loc, err = _run_cond(cls, seed=78)
    _judge_cond_emb(model, inputs, out, loc, err)
