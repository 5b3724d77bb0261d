"""The judges every bundle ships are no answer oracle: a judge compares a record with the expected values it is
handed (``exp``) and computes nothing from the inputs that could be a graded blank's value.

A student's kernel can import any judge of ``tutorial_utils.checks``, replace ``close`` (or ``torch.allclose``) with
a function that remembers its arguments, and call the judge on inputs of its own choosing: whatever the judge
compares a wrong record with is handed back (judge_merge with the mask flipped returns merge_known; judge_invert
called twice returns the inverted DDIM step).  So, for every graded blank (``ddpm_instructor.graded.TESTS``), its
judge runs on the grader's inputs with records of wrong answers (zeros, the expected with its sign flipped or
scaled, the call's own first input), while ``close`` in every checks module, ``torch.allclose``, ``torch.isclose``
and ``torch.equal`` are recorders answering always "no" (every hint branch runs) or always "yes".  Two rules:

1. no tensor they receive equals a value of the blank (``Graded.operands``' answers, rtol 1e-4) unless it is a
   tensor of ``exp`` or of the record (a view of one included: the identity of its storage);
2. no tensor they receive was computed from the inputs (the inputs are handed over as a tensor subclass, which
   torch passes on to every result): an input itself may be compared with, a formula of the inputs may not, since
   on inputs of the kernel's choosing that formula is some blank's answer.

The hints' values come with ``exp`` instead (``ddpm_instructor.graded``, stored for the self-checks in
``check_data.pt``).  No kernel; seconds.
"""
from __future__ import annotations

import dataclasses
import sys

import pytest
import torch

from ddpm_instructor.graded import TESTS
from tutorial_utils.checks import SelfCheckError, core
from tutorial_utils.checks.core import Num, Obs, Text

CHECK_MODULES = [m for name, m in sorted(sys.modules.items()) if name.startswith("tutorial_utils.checks.")]


def _tensors(v):
    """Every tensor in a nested structure."""
    if isinstance(v, torch.Tensor):
        yield v
    elif isinstance(v, dict):
        for x in v.values():
            yield from _tensors(x)
    elif isinstance(v, (list, tuple)):
        for x in v:
            yield from _tensors(x)
    elif dataclasses.is_dataclass(v) and not isinstance(v, type):
        for f in dataclasses.fields(v):
            yield from _tensors(getattr(v, f.name))


def _as_double(v):
    """``exp`` with its floating tensors in float64 (so that a judge's ``.double()`` of one is that very tensor)."""
    if isinstance(v, torch.Tensor):
        return v.double() if v.is_floating_point() else v
    if isinstance(v, dict):
        return {k: _as_double(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_as_double(x) for x in v]
    if isinstance(v, tuple):
        return tuple(_as_double(x) for x in v)
    return v


class FromInputs(torch.Tensor):
    """An input of the test, and everything computed from it (torch hands the subclass on to every result)."""


def _tag(v):
    """The inputs with every tensor a ``FromInputs``: what a judge computes from them stays marked."""
    if isinstance(v, torch.Tensor):
        return v.as_subclass(FromInputs)
    if isinstance(v, dict):
        return {k: _tag(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_tag(x) for x in v]
    if isinstance(v, tuple):
        return tuple(_tag(x) for x in v)
    return v


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


WRONG = {
    "zeros": lambda want, arg, shape: torch.zeros(shape, dtype=torch.float64),
    "sign flipped": lambda want, arg, shape: -want.double().reshape(shape) if want is not None else None,
    "scaled": lambda want, arg, shape: (1.3 * want.double() + 0.05).reshape(shape) if want is not None else None,
    "the first input": lambda want, arg, shape: arg.double().reshape(shape).clone() if arg is not None else None,
}


def _fill(spec, how: str, wants: list, args: list, i: int = 0):
    """A record field as its spec declares it, each tensor a wrong answer made ``how``."""
    if isinstance(spec, list):
        return [_fill(s, how, wants, args, k) for k, s in enumerate(spec)]
    if isinstance(spec, Text):
        return ""
    if isinstance(spec, Num):
        return spec.kind(1)
    assert isinstance(spec, Obs), spec
    shape = tuple(spec.shape)
    n = torch.Size(shape).numel()
    want = next((w for w in wants[i:i + 1] if w.numel() == n), None)
    arg = next((a for a in args[i:i + 1] if a.numel() == n), None)
    if spec.dtype == "int":
        return torch.ones(shape, dtype=torch.long)
    if spec.dtype == "bool":
        return torch.zeros(shape, dtype=torch.bool)
    value = WRONG[how](want, arg, shape)
    return value if value is not None else torch.full(shape, 0.37, dtype=torch.float64)


def _answers(case, inputs, exp):
    """The blank's values (one list entry per call) and each call's first tensor operand."""
    wants, args = [], []
    for operands, answers in case.operands(inputs, exp):
        ts = [a for a in answers.values() if isinstance(a, torch.Tensor)]
        wants.append(ts[0] if ts else torch.zeros(0))
        first = next((v for v in (operands.get("args") or []) if isinstance(v, torch.Tensor)), None)
        args.append(first if first is not None else torch.zeros(0))
    return wants, args


class Recorder:
    """Stands in for every comparison a judge makes: remembers the tensors, answers ``verdict``."""

    def __init__(self, verdict: bool):
        self.verdict, self.seen = verdict, []

    def _note(self, *values):
        self.seen.extend(v for v in values if isinstance(v, torch.Tensor))

    def close(self, a, b, *args, **kwargs):
        self._note(a, b)
        return self.verdict

    def isclose(self, a, b, *args, **kwargs):
        self._note(a, b)
        return torch.full(torch.broadcast_shapes(a.shape, b.shape), self.verdict)


def _judge_with_recorders(monkeypatch, case, rec, inputs, exp, verdict):
    r = Recorder(verdict)
    real = core.close
    with monkeypatch.context() as m:
        for mod in CHECK_MODULES:
            if getattr(mod, "close", None) is real:
                m.setattr(mod, "close", r.close)
        m.setattr(core, "close", r.close)
        m.setattr(torch, "allclose", r.close)
        m.setattr(torch, "equal", r.close)
        m.setattr(torch, "isclose", r.isclose)
        try:
            case.blank.judge(rec, inputs, exp)
        except SelfCheckError:
            pass
    return r.seen


def _hits(seen, allowed_storages, answers):
    out = []
    for t in seen:
        if t.numel() and _storage(t) in allowed_storages:
            continue
        for k, a in enumerate(answers):
            if t.numel() == a.numel() and a.numel() and t.dtype.is_floating_point and bool(torch.allclose(
                    t.double().reshape(a.shape), a.double(), rtol=1e-4, atol=1e-7)):
                out.append(k)
    return out


def _computed(seen, given) -> list:
    """The tensors a judge compared with that it computed from the inputs (not an input itself, nor a view of one)."""
    return [t for t in seen if isinstance(t, FromInputs) and _storage(t) not in given]


@pytest.mark.parametrize("gid", sorted(TESTS))
def test_a_judge_compares_only_with_what_it_is_handed(monkeypatch, gid):
    case = TESTS[gid]
    inputs = case.make_inputs()
    wants, args = _answers(case, inputs, case.expected(inputs))
    assert any(w.numel() for w in wants), f"{gid}: no expected value to look for"
    spec = case.blank.record.spec(inputs)
    tagged = _tag(inputs)
    given = {_storage(t) for t in _tensors(tagged) if t.numel()}
    found, computed = {}, {}
    for how in WRONG:
        rec = case.blank.record(**{k: _fill(s, how, wants, args) for k, s in spec.items()})
        exp = _as_double(case.expected_for(inputs, case.expected(inputs), rec))
        allowed = {_storage(t) for t in _tensors(exp) if t.numel()} | {_storage(t) for t in _tensors(rec) if t.numel()}
        for verdict in (False, True):
            seen = _judge_with_recorders(monkeypatch, case, rec, tagged, exp, verdict)
            hits = _hits(seen, allowed, wants)
            if hits:
                found[f"{how}, comparisons answering {verdict}"] = sorted(set(hits))
            n = len(_computed(seen, given))
            if n:
                computed[f"{how}, comparisons answering {verdict}"] = n
    assert not found, (f"{gid}: its judge ({case.blank.judge}) computed the blank's expected value (calls "
                       f"{found}) from the inputs: a kernel that records what it compares with gets the answer. "
                       "Compare with entries of exp only (computed by ddpm_instructor.graded).")
    assert not computed, (f"{gid}: its judge ({case.blank.judge}) compared the record with values it computed from "
                          f"the inputs ({computed}): on inputs of a kernel's choosing (a flipped mask, its own "
                          "x0_pred) such a value is a blank's answer. Compare with entries of exp only.")


def test_the_recorders_see_a_judge_that_computes_from_the_inputs(monkeypatch):
    """The test above can fail: a judge that compares with the answer it computed (rule 1), or with a formula of
    the inputs (rule 2, judge_merge's flipped-mask hint as it was), is caught; an input itself is not."""
    case = TESTS["test_merge_known"]
    inputs = case.make_inputs()
    exp = _as_double(case.expected(inputs))
    wants, _ = _answers(case, inputs, exp)
    tagged = _tag(inputs)

    def leaky(rec, inputs, exp):
        for (x, known, mask, t, noise), got in zip(inputs["args"], rec.results):
            core.close(got, wants[0] * 1.0)                         # the answer itself, however it was computed
            core.close(got, (1 - mask) * known + mask * x)          # a formula of the inputs
            core.close(got, x)                                      # an input as it was given
    rec = case.blank.record([torch.zeros_like(w) for w in wants], [""] * len(wants))
    seen = _judge_with_recorders(monkeypatch, dataclasses.replace(case, blank=dataclasses.replace(
        case.blank, judge=leaky)), rec, tagged, exp, False)
    assert len(seen) == 6 * len(wants)
    assert _hits(seen, {_storage(t) for t in _tensors(exp)}, wants) == [0, 0]
    computed = _computed(seen, {_storage(t) for t in _tensors(tagged) if t.numel()})
    assert len(computed) == len(wants) and all(c.shape == w.shape for c, w in zip(computed, wants))
