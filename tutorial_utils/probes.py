"""Run a student's code on given inputs and record what it did: its result, the locals named by the blanks, the
calls it made to a stand-in model, the error it raised.  No expected values, no answers, no judgement here.

The self-checks (``tutorial_utils.checks``) feed the probes fixed inputs and compare the record with expected
values stored as data.  The graded tests use the same probes on the grader's inputs: inside the sandboxed
grading kernel ``submit`` only runs the probe and hands the record back as a cell output; the grader decodes it
*outside* the kernel and judges it there against its own reference (``ddpm_instructor.graded``), so nothing a
submission does inside its kernel can change what it is graded against.

Records hold only tensors, numbers, strings, lists and dicts, so the grader reads them with
``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import base64
import contextlib
import inspect
import io
import os
import sys
from typing import Any, Callable

import torch
from torch import Tensor, nn

__all__ = ["capture_locals", "patched_globals", "PROBES", "submit", "RECORD_MIME", "INPUTS_ENV"]

RECORD_MIME = "application/x-ddpm-grader-record"
INPUTS_ENV = "DDPM_GRADER_INPUTS"


# --------------------------------------------------------------------------- tools
def _code_of(fn: Callable):
    return inspect.unwrap(fn).__code__


def capture_locals(fn: Callable, *args, names=None, code=None, **kwargs):
    """Call ``fn(*args, **kwargs)`` and record the locals of the frame running ``code`` (default: fn's).

    Returns ``(result, recorded, error)``: ``recorded`` maps each local name (all of them, or only ``names``) to
    the last value it held; ``error`` is the exception the call raised, or ``None``.
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
    except Exception as err:  # the student's code may raise anything: record it
        error = err
    finally:
        sys.settrace(previous)
    return result, recorded, error


@contextlib.contextmanager
def patched_globals(fn: Callable, **values):
    """Temporarily replace the notebook globals that ``fn`` reads (``alpha_bars``, ``loss_fn``, ``device``)."""
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


def _err(e: BaseException | None) -> str:
    return "" if e is None else f"{type(e).__name__}: {e}"[:500].rstrip(".")


def _clean(v):
    """A value as a record may hold it: detached CPU tensors, numbers, strings; anything else by its type name."""
    if isinstance(v, Tensor):
        return v.detach().cpu().clone()
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return {"type": type(v).__name__}


# --------------------------------------------------------------------------- probes (one per kind of blank)
def probe_calls(fn, inputs) -> dict:
    """``fn(*args)`` for each argument list: results and errors (``linear_beta_schedule``)."""
    results, errors = [], []
    for args in inputs["args"]:
        try:
            results.append(_clean(fn(*args)))
            errors.append("")
        except Exception as e:
            results.append(None)
            errors.append(_err(e))
    return {"results": results, "errors": errors}


_Q_LOCALS = ("sqrt_alpha_bar", "sqrt_one_minus_alpha_bar")


def probe_q_sample(fn, inputs) -> dict:
    """``q_sample(x0, t, noise)`` with the given schedule in the notebook globals; its two named locals; and the
    same call with x0 = 0 (the pure-noise part, for the variance hint)."""
    s = {k: inputs[k] for k in ("betas", "alphas", "alpha_bars")}
    rec = {}
    for tag, x0 in (("", inputs["x0"]), ("zero_", torch.zeros_like(inputs["x0"]))):
        with patched_globals(fn, **s):
            out, loc, err = capture_locals(fn, x0.clone(), inputs["t"].clone(), inputs["noise"].clone(), names=_Q_LOCALS)
        rec[tag + "out"] = _clean(out)
        rec[tag + "error"] = _err(err)
        rec[tag + "locals"] = {k: _clean(v) for k, v in loc.items()}
    with patched_globals(fn, **s):
        try:
            fresh = fn(inputs["x0"].clone(), inputs["t"].clone())
            rec["fresh_shape"], rec["fresh_error"] = list(fresh.shape) if isinstance(fresh, Tensor) else None, ""
        except Exception as e:
            rec["fresh_shape"], rec["fresh_error"] = None, _err(e)
    return rec


def probe_loss_fn(loss_fn, inputs) -> dict:
    rec = {"is_none": loss_fn is None, "is_class": isinstance(loss_fn, type),
           "class_name": getattr(loss_fn, "__name__", type(loss_fn).__name__), "callable": callable(loss_fn),
           "value": None, "error": ""}
    if loss_fn is not None and not rec["is_class"] and rec["callable"]:
        try:
            rec["value"] = _clean(loss_fn(inputs["a"].clone(), inputs["b"].clone()))
        except Exception as e:
            rec["error"] = _err(e)
    return rec


class SpyModel(nn.Module):
    """A stand-in for the UNet: cheap, differentiable, depends on x and t, and remembers its calls.
    ε_spy(x, t) = scale · x + shift[t], with ``scale`` and ``shift`` given by the inputs."""

    def __init__(self, scale: Tensor, shift: Tensor):
        super().__init__()
        self.scale = nn.Parameter(scale.clone())
        self.shift = nn.Parameter(shift.clone())
        self.calls: list = []

    def forward(self, x, t):
        out = self.scale * x + self.shift[t].view(-1, 1, 1, 1)
        self.calls.append((x.detach().clone(), t.detach().clone()))
        return out


_TRAIN_LOCALS = ("x_0", "t", "noise", "x_t", "pred_noise", "loss")


def probe_train_step(train_fn, inputs) -> dict:
    """One step of the student's training loop on the given batch with a spy model: its named locals, the spy's
    last call, whether the weights changed.  ``loss_fn`` is the mean squared error while it runs, so the loop's
    blanks are judged on their own (``loss_fn`` has its own test)."""
    x0, y = inputs["x0"].clone(), torch.full((inputs["x0"].shape[0],), 6)
    model = SpyModel(inputs["spy_scale"], inputs["spy_shift"])
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    fixes = {"device": torch.device("cpu"), "T": int(inputs["T"]), "loss_fn": nn.MSELoss()}
    torch.manual_seed(int(inputs["seed"]))
    with patched_globals(train_fn, **fixes):
        _, loc, err = capture_locals(train_fn, model, optimizer, [(x0, y)], 1, max_steps=1, progress=False,
                                     names=_TRAIN_LOCALS)
    changed = any(not torch.equal(a, p.detach()) for a, p in zip(before, model.parameters()))
    last = model.calls[-1] if model.calls else (None, None)
    return {"locals": {k: _clean(v) for k, v in loc.items()}, "error": _err(err), "changed": changed,
            "n_calls": len(model.calls), "call_x": _clean(last[0]), "call_t": _clean(last[1])}


class FixedEps(nn.Module):
    """ε_θ stand-in for the reverse step: ε(x, t) = a · x + b · t / 1000 (a, b given), or 0."""

    def __init__(self, a: float, b: float):
        super().__init__()
        self.a, self.b = float(a), float(b)

    def forward(self, x, t):
        return self.a * x + self.b * (t.float() / 1000).view(-1, 1, 1, 1)


def probe_reverse_step(fn, inputs) -> dict:
    """``p_sample_DDPM(model, x, t, t_index)`` for each t_index with a fixed ε stand-in (and with ε = 0 at x = 0,
    which leaves only the noise part σ_t·z): the results and the noise z it drew."""
    s = {k: inputs[k] for k in ("betas", "alphas", "alpha_bars")}
    steps = []
    for i, t_index in enumerate(inputs["t_indices"]):
        one = {}
        for tag, x, model in (("", inputs["x"], FixedEps(inputs["a"], inputs["b"])),
                              ("zero_", torch.zeros_like(inputs["x"]), FixedEps(0.0, 0.0))):
            t = torch.full((x.shape[0],), int(t_index), dtype=torch.long)
            torch.manual_seed(int(inputs["seed"]) + i)
            with patched_globals(fn, **s):
                out, loc, err = capture_locals(fn, model, x.clone(), t, int(t_index), names=("z",))
            one[tag + "out"], one[tag + "z"], one[tag + "error"] = _clean(out), _clean(loc.get("z")), _err(err)
        steps.append(one)
    return {"steps": steps}


_COND_LOCALS = ("t_emb", "y_emb", "cond_emb")


def probe_class_emb(cls, inputs) -> dict:
    """``cls(ch, n_classes)``: what ``self.class_emb`` is."""
    try:
        model = cls(ch=int(inputs["ch"]), n_classes=int(inputs["n_classes"]))
    except Exception as e:
        return {"error": _err(e)}
    emb = getattr(model, "class_emb", None)
    return {"error": "", "is_none": emb is None, "type": type(emb).__name__,
            "is_embedding": isinstance(emb, nn.Embedding),
            "shape": [int(emb.num_embeddings), int(emb.embedding_dim)] if isinstance(emb, nn.Embedding) else None}


def probe_cond_forward(cls, inputs) -> dict:
    """``cls(ch, n_classes)`` loaded with the given weights, run on (x, t, y): its named locals and its output.
    If ``self.class_emb`` is not an ``nn.Embedding`` of the right size it is replaced first, so that the forward
    blanks are judged on their own."""
    try:
        model = cls(ch=int(inputs["ch"]), n_classes=int(inputs["n_classes"]))
    except Exception as e:
        return {"error": _err(e), "load_error": ""}
    state = inputs["state_dict"]
    emb = getattr(model, "class_emb", None)
    want = tuple(state["class_emb.weight"].shape)
    if not isinstance(emb, nn.Embedding) or tuple(emb.weight.shape) != want:
        model.class_emb = nn.Embedding(*want)
    try:
        model.load_state_dict(state)
        load_error = ""
    except Exception as e:
        load_error = _err(e)
    model.eval()
    with torch.no_grad():
        out, loc, err = capture_locals(model.forward, inputs["x"].clone(), inputs["t"].clone(), inputs["y"].clone(),
                                       names=_COND_LOCALS, code=_code_of(type(model).forward))
    return {"error": _err(err), "load_error": load_error, "out": _clean(out),
            "locals": {k: _clean(v) for k, v in loc.items()}}


def probe_cosine(fn, inputs) -> dict:
    """``cosine_beta_schedule(*args)`` for each argument list: results, errors and the local ``alpha_bars``."""
    rec = {"results": [], "errors": [], "alpha_bars": []}
    for args in inputs["args"]:
        out, loc, err = capture_locals(fn, *args, names=("alpha_bars",))
        rec["results"].append(_clean(out))
        rec["errors"].append(_err(err))
        rec["alpha_bars"].append(_clean(loc["alpha_bars"]) if "alpha_bars" in loc else {"type": "missing"})
    return rec


def probe_ddim(fn, inputs) -> dict:
    """``ddim_step(x_t, eps, t, t_prev, eta)`` with the given ``alpha_bars`` in the notebook globals, for each
    (t, t_prev, eta): the result and the locals ``x0_pred`` and ``z`` (the noise it drew)."""
    steps = []
    for i, (t, t_prev, eta) in enumerate(inputs["steps"]):
        torch.manual_seed(int(inputs["seed"]) + i)
        with patched_globals(fn, alpha_bars=inputs["alpha_bars"]):
            out, loc, err = capture_locals(fn, inputs["x_t"].clone(), inputs["eps"].clone(), int(t), int(t_prev),
                                           float(eta), names=("x0_pred", "z"))
        steps.append({"out": _clean(out), "error": _err(err),
                      "x0_pred": _clean(loc["x0_pred"]) if "x0_pred" in loc else {"type": "missing"},
                      "z": _clean(loc.get("z"))})
    return {"steps": steps}


PROBES = {"cosine": probe_cosine, "ddim": probe_ddim, "calls": probe_calls, "q_sample": probe_q_sample, "loss_fn": probe_loss_fn, "train_step": probe_train_step,
          "reverse_step": probe_reverse_step, "class_emb": probe_class_emb, "cond_forward": probe_cond_forward}


# --------------------------------------------------------------------------- graded cells
def submit(grade_id: str, obj) -> None:
    """What a graded (hidden) test cell runs.

    While autograding (the grader sets ``DDPM_GRADER_INPUTS``) this only runs the probe on the grader's inputs
    and shows the record as this cell's output; the grader judges it outside the kernel and replaces the output
    with the verdict.  Anywhere else (the instructor's source notebooks under nbval) the instructor's judge runs
    right here and raises if the answer is wrong.
    """
    inputs_dir = os.environ.get(INPUTS_ENV)
    if not inputs_dir:
        from ddpm_instructor.graded import run_in_process   # instructor tooling: not in a student's bundle
        run_in_process(grade_id, obj)
        return
    spec = torch.load(os.path.join(inputs_dir, f"{grade_id}.pt"), weights_only=True)
    record = PROBES[spec["probe"]](obj, spec["inputs"])
    buf = io.BytesIO()
    torch.save({"grade_id": grade_id, "record": record}, buf)
    from IPython.display import display
    display({RECORD_MIME: base64.b64encode(buf.getvalue()).decode("ascii"),
             "text/plain": f"[result of {grade_id} for the grader]"}, raw=True)
