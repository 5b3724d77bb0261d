"""What every stage's probe, record and judge share: running a student's code and recording it, the typed record
with its declared fields, shapes and dtypes, the validation of a record before any arithmetic, and the judge ladder
(raised -> None -> shape -> values), written once.

A **record** is one dataclass per probe (``Record`` subclasses in the stage modules).  Its ``spec(inputs)`` declares,
from the inputs alone, every field and the shape and dtype of every value in it, e.g. "``results``: one value per
argument list, each a float tensor of shape (timesteps,)".  A probe fills the record in the kernel and
``to_plain`` turns it into plain tensors, numbers and strings (``torch.load(weights_only=True)`` reads them).
``from_plain`` reads one back against the spec of the *reader's own* inputs:

* a missing or extra field, a list with more or fewer entries than asked for, a tensor that is not a plain dense
  one (an expanded, stride-0 view, a view into a larger storage, a subclass), a tensor larger than declared, a
  value of a kind the field cannot hold: the record is refused (``RecordError``, the message says which entry);
* a tensor of another shape or dtype than declared, or with NaN/inf in it, is kept only as a description
  (``Unusable``): the judge of the blank that reads it fails with a message saying so, before any arithmetic.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import inspect
import math
import sys
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch
from torch import Tensor

FILL_IN = "fill in the blank"
FLOATS = {torch.float16, torch.bfloat16, torch.float32, torch.float64}
INTS = {torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64}
KINDS = {"float": FLOATS, "int": INTS, "bool": {torch.bool}}
MAX_TEXT = 600


class SelfCheckError(AssertionError):
    """A blank is not filled in correctly yet; the message says what is wrong and how to fix it."""


class RecordError(ValueError):
    """A record that no probe writes: a field missing or extra, a list of the wrong length, a tensor that is not
    plain or is larger than declared.  The message says which entry."""


def fail(message: str):
    raise SelfCheckError(message)


# --------------------------------------------------------------------------- what a recorded value can be
class _Absent:
    """A local the student's code never set (its line was deleted or never reached)."""

    def __repr__(self):
        return "ABSENT"


ABSENT = _Absent()


@dataclass(frozen=True)
class Unusable:
    """A recorded value the judges may not compute with: not a tensor, or not of the declared shape or dtype, or
    not finite.  ``problem`` is one of ``type``, ``shape``, ``dtype``, ``finite``."""
    problem: str
    type: str = "Tensor"
    shape: tuple | None = None
    dtype: str = ""
    want: tuple = ()
    detail: str = ""
    fit: str = "exact"
    kind: str = "float"                     # the dtype kind the field declares

    def wanted(self) -> str:
        return {"broadcast": f"a shape that broadcasts to {self.want}", "scalar": "a single value"}.get(
            self.fit, str(self.want))

    def describe(self) -> str:
        return f"shape {self.shape}" if self.shape is not None else self.type


# --------------------------------------------------------------------------- declared fields
@dataclass(frozen=True)
class Obs:
    """One value the student's code produced: a tensor of ``shape`` and dtype kind ``dtype``, or None, or absent.
    ``fit``: ``exact`` (that shape), ``broadcast`` (any shape that broadcasts to it, no larger) or ``scalar``
    (one value)."""
    shape: tuple
    dtype: str = "float"
    fit: str = "exact"

    @property
    def cap(self) -> int:                   # the most values a recorded tensor may hold
        return max(1, math.prod(self.shape))

    def fits(self, shape: tuple) -> bool:
        if self.fit == "scalar":
            return math.prod(shape) == 1
        if self.fit == "broadcast":
            try:
                return tuple(torch.broadcast_shapes(shape, self.shape)) == tuple(self.shape)
            except RuntimeError:
                return False
        return tuple(shape) == tuple(self.shape)


@dataclass(frozen=True)
class Text:
    max_len: int = MAX_TEXT


@dataclass(frozen=True)
class Num:
    kind: type = float          # bool, int or float


def nbytes_bound(spec) -> int:
    """The most bytes a field of this spec can take in a record (float64 tensors, full-length texts)."""
    if isinstance(spec, list):
        return sum(nbytes_bound(s) for s in spec)
    if isinstance(spec, Obs):
        return 8 * spec.cap
    if isinstance(spec, Text):
        return 4 * spec.max_len
    return 16


def n_entries(spec) -> int:
    return sum(n_entries(s) for s in spec) if isinstance(spec, list) else 1


# --------------------------------------------------------------------------- kernel side: a value as a record holds it
def err_text(e: BaseException | None) -> str:
    return "" if e is None else f"{type(e).__name__}: {e}"[:500].rstrip(".")


def _plain_value(v, spec: Obs):
    """A dense CPU copy of a tensor small enough for its field; anything else by a short description."""
    if v is ABSENT:
        return {"absent": True}
    if v is None:
        return None
    if isinstance(v, Tensor):
        v = v.detach()
        dtype_ok = v.dtype in FLOATS | INTS | {torch.bool} and v.layout == torch.strided
        if dtype_ok and v.numel() <= spec.cap and v.dim() <= 8:
            return v.cpu().contiguous().clone()
        return {"type": "Tensor", "shape": [int(s) for s in v.shape][:8], "dtype": str(v.dtype)[:40]}
    return {"type": type(v).__name__[:80]}


def _plain(v, spec):
    if isinstance(spec, list):
        v = list(v)
        return [_plain(x, spec[min(i, len(spec) - 1)]) for i, x in enumerate(v)] if spec else []
    if isinstance(spec, Obs):
        return _plain_value(v, spec)
    if isinstance(spec, Text):
        return str(v)[:spec.max_len]
    return spec.kind(v)


# --------------------------------------------------------------------------- grader side: reading a value back
def _plain_tensor(v: Tensor) -> bool:
    return (type(v) is Tensor and v.layout == torch.strided and v.device.type == "cpu" and v.is_contiguous()
            and v.storage_offset() == 0 and v.untyped_storage().nbytes() == v.numel() * v.element_size()
            and v.dim() <= 8 and not v.requires_grad)


def _read_description(v: dict, spec: Obs, label: str):
    if set(v) - {"type", "shape", "dtype", "absent"}:
        raise RecordError(f"{label}: an entry with unexpected keys {sorted(set(v) - {'type', 'shape', 'dtype', 'absent'})}.")
    if v.get("absent") is True and len(v) == 1:
        return ABSENT
    kind, shape, dtype = v.get("type"), v.get("shape"), v.get("dtype", "")
    if not isinstance(kind, str) or len(kind) > 80 or not isinstance(dtype, str) or len(dtype) > 40:
        raise RecordError(f"{label}: a description that no probe writes.")
    if shape is not None:
        if not (isinstance(shape, list) and len(shape) <= 8 and all(type(s) is int and s >= 0 for s in shape)):
            raise RecordError(f"{label}: a description that no probe writes.")
        shape = tuple(shape)
        problem = "shape" if not spec.fits(shape) else "dtype"
        return Unusable(problem, kind, shape, dtype, spec.shape, fit=spec.fit, kind=spec.dtype)
    return Unusable("type", kind, want=spec.shape, fit=spec.fit, kind=spec.dtype)


def _read_value(v, spec: Obs, label: str):
    if v is None:
        return None
    if isinstance(v, dict):
        return _read_description(v, spec, label)
    if not isinstance(v, Tensor):
        raise RecordError(f"{label} holds a {type(v).__name__}, which no probe writes there.")
    if not _plain_tensor(v):
        raise RecordError(f"{label} is not a plain tensor (an expanded or strided view, a view into a larger "
                          "storage, or a tensor subclass); a probe writes a dense copy.")
    if v.numel() > spec.cap:
        raise RecordError(f"{label} holds {v.numel():,} values; this test's record has room for {spec.cap:,}.")
    shape, dtype = tuple(v.shape), str(v.dtype)
    if v.dtype not in FLOATS | INTS | {torch.bool}:
        raise RecordError(f"{label} has dtype {dtype}, which no probe writes.")
    if not spec.fits(shape):
        return Unusable("shape", "Tensor", shape, dtype, spec.shape, fit=spec.fit)
    if v.dtype not in KINDS[spec.dtype]:
        return Unusable("dtype", "Tensor", shape, dtype, spec.shape, fit=spec.fit, kind=spec.dtype)
    if v.dtype in FLOATS and not bool(torch.isfinite(v).all()):
        bad = int((~torch.isfinite(v)).sum())
        return Unusable("finite", "Tensor", shape, dtype, spec.shape, f"{bad} of its {v.numel()} values", spec.fit)
    return v


def _read(v, spec, label: str):
    if isinstance(spec, list):
        if not isinstance(v, list):
            raise RecordError(f"{label} should be a list of {len(spec)} entries, not a {type(v).__name__}.")
        if len(v) != len(spec):
            raise RecordError(f"{label} has {len(v)} entries; the grader asked for {len(spec)}.")
        return [_read(x, s, f"{label}[{i}]") for i, (x, s) in enumerate(zip(v, spec))]
    if isinstance(spec, Obs):
        return _read_value(v, spec, label)
    if isinstance(spec, Text):
        if not isinstance(v, str) or len(v) > spec.max_len:
            raise RecordError(f"{label} should be a text of at most {spec.max_len} characters.")
        return v
    ok = type(v) is spec.kind or (spec.kind is float and type(v) is int)
    if not ok or (spec.kind is float and not math.isfinite(v)):
        raise RecordError(f"{label} should be a {spec.kind.__name__}, not {type(v).__name__}.")
    return v


# --------------------------------------------------------------------------- the record
class Record:
    """Base of the stage records (dataclasses).  Subclasses set ``kind`` (the probe's name, as the graded inputs
    name it), ``spec(inputs)`` (every field: ``Obs``/``Text``/``Num`` or a list of them) and ``probe(obj, inputs)``."""
    kind: ClassVar[str] = ""

    @staticmethod
    def spec(inputs: dict) -> dict:
        raise NotImplementedError

    @classmethod
    def probe(cls, obj, inputs: dict) -> "Record":
        raise NotImplementedError

    def to_plain(self, inputs: dict) -> dict:
        spec = self.spec(inputs)
        return {f.name: _plain(getattr(self, f.name), spec[f.name]) for f in dataclasses.fields(self)}

    @classmethod
    def from_plain(cls, plain, inputs: dict) -> "Record":
        """The record as the reader's own inputs declare it; ``RecordError`` if it is not one a probe writes."""
        spec = cls.spec(inputs)
        if not isinstance(plain, dict):
            raise RecordError(f"the record should be a mapping of fields, not a {type(plain).__name__}.")
        missing, extra = [k for k in spec if k not in plain], [str(k)[:40] for k in plain if k not in spec]
        if missing or extra:
            raise RecordError(", ".join([f"the field {k!r} is missing" for k in missing]
                                        + [f"{k!r} is not a field of this record" for k in extra]) + ".")
        return cls(**{k: _read(plain[k], s, k) for k, s in spec.items()})

    @classmethod
    def size_bound(cls, inputs: dict) -> tuple[int, int]:
        """(bytes, entries): the most a record of these inputs can hold."""
        spec = cls.spec(inputs)
        return sum(nbytes_bound(s) for s in spec.values()), sum(n_entries(s) for s in spec.values())


@dataclass
class CallsRecord(Record):
    """``fn(*args)`` for each of the grader's argument lists (``inputs["args"]``): the results, each of the shape of
    that list's first argument, and the error each call raised.  Stages subclass it with their ``kind``."""
    results: list
    errors: list

    @staticmethod
    def spec(inputs):
        return {"results": [Obs(tuple(a[0].shape)) for a in inputs["args"]], "errors": [Text()] * len(inputs["args"])}

    @classmethod
    def probe(cls, fn, inputs):
        results, errors, _ = call_each(fn, inputs["args"])
        return cls(results, errors)


# --------------------------------------------------------------------------- the judge ladder
def expect(value, label: str, *, none: str, raised: str = "", absent: str = "", shape_hint: str = "") -> Tensor:
    """The tensor a judge may compute with, or a ``SelfCheckError``: raised -> None -> absent -> not a tensor ->
    shape -> dtype -> finite.  ``raised``: the error the student's code raised (judged first); ``none``: the
    message for a value still None; ``absent``: for a local the code never set."""
    if raised:
        fail(raised)
    if value is None:
        fail(none)
    if value is ABSENT:
        fail(absent or f"{label} was never set: keep the blank's line so it can be judged.")
    if isinstance(value, Unusable):
        if value.problem == "type":
            fail(f"{label} should be a torch tensor, not {value.type}.")
        if value.problem == "shape":
            fail(f"wrong shape: {label} has shape {value.shape}, expected {value.wanted()}{shape_hint}.")
        if value.problem == "dtype":
            want = {"float": "floating-point values", "int": "whole numbers (an integer dtype)", "bool": "booleans"}
            fail(f"{label} has dtype {value.dtype}; it should hold {want[value.kind]}.")
        fail(f"{label} is not finite: {value.detail} are NaN or infinite.")
    return value


def usable(value) -> bool:
    """A value the judges may compute with (for hints: anything else is simply skipped)."""
    return isinstance(value, Tensor)


def close(a, b, atol=1e-5, rtol=1e-4) -> bool:
    return (usable(a) and usable(b) and a.shape == b.shape
            and bool(torch.allclose(a.double(), b.double(), atol=atol, rtol=rtol)))


def first_hint(got, hints: dict, ladder, atol=1e-5) -> str:
    """The message of the first common mistake in ``ladder`` ((name, message) pairs) whose value ``got`` equals.
    The mistakes' values come with the expected values (``hints``: name -> tensor, computed by the grader from the
    reference on the same inputs), never from a formula here: a judge handed inputs of someone's choosing computes
    nothing that could be another blank's answer."""
    for name, message in ladder:
        if name in hints and close(got, hints[name], atol=atol):
            return message
    return ""


# --------------------------------------------------------------------------- running the student's code
# The first exception the student's code raised while a self-check ran it (records keep only its text): a failed
# self-check is raised ``from`` it, so the notebook shows that traceback, cut to the student's code
# (``tutorial_utils.display``).  Only the self-checks read it; the grader judges records alone.
STUDENT_ERROR: contextvars.ContextVar = contextvars.ContextVar("student_error", default=None)


def _raised(err: BaseException) -> BaseException:
    if STUDENT_ERROR.get() is None:
        STUDENT_ERROR.set(err)
    return err


def code_of(fn: Callable):
    return inspect.unwrap(fn).__code__


def capture_locals(fn: Callable, *args, names=None, code=None, **kwargs):
    """Call ``fn(*args, **kwargs)`` and record the locals of the frame running ``code`` (default: fn's).

    Returns ``(result, recorded, error)``: ``recorded`` maps each local name (all of them, or only ``names``) to
    the last value it held; ``error`` is the exception the call raised, or ``None``.
    """
    code = code or code_of(fn)
    recorded: dict[str, Any] = {}

    def local_tracer(frame, event, arg):
        if event in ("line", "return", "exception"):
            for k, v in frame.f_locals.items():
                if names is None or k in names:
                    recorded[k] = v
        return local_tracer

    def global_tracer(frame, event, arg):
        return local_tracer if event == "call" and frame.f_code is code else None

    previous = sys.gettrace()
    sys.settrace(global_tracer)
    result, error = None, None
    try:
        result = fn(*args, **kwargs)
    except Exception as err:  # the student's code may raise anything: record it
        error = _raised(err)
    finally:
        sys.settrace(previous)
    return result, recorded, error


def call(fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)``: ``(result, error)``, the exception the student's code raised or ``None``."""
    try:
        return fn(*args, **kwargs), None
    except Exception as err:
        return None, _raised(err)


def local(recorded: dict, name: str):
    return recorded[name] if name in recorded else ABSENT


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


def _size(args, kwargs) -> tuple:
    size = kwargs.get("size", args[0] if len(args) == 1 and isinstance(args[0], (tuple, list, torch.Size)) else args)
    return tuple(int(s) for s in size)


@contextlib.contextmanager
def grader_draws(*draws: Tensor):
    """While it runs, ``torch.randn``/``torch.randn_like`` return the float draw of the requested shape and
    ``torch.randint`` the integer draw of the requested shape whose values lie in the requested range: the
    handed-out lines that draw t, ε or z receive exactly the grader's draws.  Other calls are left alone."""
    real = {name: getattr(torch, name) for name in ("randn", "randn_like", "randint")}

    def pick(shape, floating):
        return next((d for d in draws if tuple(d.shape) == tuple(shape) and d.is_floating_point() == floating), None)

    def randn(*args, **kwargs):
        d = pick(_size(args, kwargs), True)
        if d is None or kwargs.get("generator") is not None:
            return real["randn"](*args, **kwargs)
        return d.clone().to(dtype=kwargs.get("dtype") or d.dtype, device=kwargs.get("device") or "cpu")

    def randn_like(x, **kwargs):
        d = pick(x.shape, True)
        if d is None:
            return real["randn_like"](x, **kwargs)
        return d.clone().to(dtype=kwargs.get("dtype") or x.dtype, device=kwargs.get("device") or x.device)

    def randint(*args, **kwargs):
        low, high, size = {3: lambda: args[:3], 2: lambda: (0, *args), 1: lambda: (0, args[0], None)}.get(
            len(args), lambda: (0, None, None))()
        low, high, size = kwargs.get("low", low), kwargs.get("high", high), kwargs.get("size", size)
        d = pick(tuple(size), False) if size is not None and high is not None else None
        if d is None or kwargs.get("generator") is not None or not (int(d.min()) >= low and int(d.max()) < high):
            return real["randint"](*args, **kwargs)
        return d.clone().to(dtype=kwargs.get("dtype") or d.dtype, device=kwargs.get("device") or "cpu")

    try:
        torch.randn, torch.randn_like, torch.randint = randn, randn_like, randint
        yield
    finally:
        for name, f in real.items():
            setattr(torch, name, f)


def fresh(v):
    """A copy of one input for the student's code to use (so nothing it changes in place reaches the inputs)."""
    if isinstance(v, Tensor):
        return v.clone()
    return [fresh(x) for x in v] if isinstance(v, (list, tuple)) else v


def call_each(fn: Callable, arg_lists, names=()) -> tuple[list, list, list]:
    """``fn(*args)`` for each argument list: (results, error texts, recorded locals)."""
    results, errors, locs = [], [], []
    for args in list(arg_lists):
        if names:
            out, loc, err = capture_locals(fn, *fresh(args), names=names)
        else:
            (out, err), loc = call(fn, *fresh(args)), {}
        results.append(out)
        errors.append(err_text(err))
        locs.append(loc)
    return results, errors, locs
