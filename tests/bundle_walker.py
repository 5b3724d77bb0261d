"""Run by path by tests/test_bundle_answers.py, with only a student bundle importable (as the grading kernel sees it):

    python tests/bundle_walker.py BUNDLE CASES.pt OUT.json

CASES.pt (``torch.save``, plain data): a list of graded blanks, each ``{"grade_id", "probe", "operands",
"expected"}`` -- the quantities the blank's line combines (named as the notebooks and the reference name them) and
the values the grader expects.  This imports every module the bundle ships, collects every function and class it
defines (public and private, methods included), and calls each one whose parameters can be filled from a blank's
operands (by name where a name matches, else with each operand in turn).  A function the per-blank decision refuses
is not in the bundle of the assignment that grades it (a stub that raises is), so no guard runs here.  Every
result, and every tensor in every data file the bundle ships, is compared with the blank's expected values.  OUT.json lists the hits: ``[grade_id, what, key, index of the sub-case]``.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import itertools
import json
import math
import os
import resource
import signal
import sys
import time
import warnings
from pathlib import Path

MAX_CALLS = 48              # argument combinations tried per callable and blank
SECONDS = 0.25              # per call: a blank is one cheap call on these small inputs; loops and plots time out


def _isolate(bundle: Path) -> None:
    """Only the bundle, the standard library and site-packages: the course's own checkout is not importable."""
    here = Path(__file__).resolve().parent.parent
    sys.path[:] = [str(bundle)] + [p for p in sys.path if p and Path(p).resolve() != here
                                   and Path(p).resolve() != Path(__file__).resolve().parent]
    sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")
                        and "__editable__" not in getattr(f, "__name__", "")]


class _Timeout(BaseException):
    pass


def _alarm(*_):
    raise _Timeout()


def modules(bundle: Path) -> list:
    out = []
    for p in sorted(bundle.rglob("*.py")):
        rel = p.relative_to(bundle).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        try:
            out.append(importlib.import_module(name))
        except Exception as e:                     # a module that does not import computes nothing; say so
            print(f"walker: {name} does not import ({type(e).__name__}: {e})", file=sys.stderr)
    return out


def callables(mods) -> list:
    """(qualified name, callable) for every function and class defined in the bundle, and every method of those
    classes (plain, static and class methods; the plain ones bound to an instance when one can be built)."""
    seen, out = set(), []
    for m in mods:
        for name, obj in sorted(vars(m).items()):
            if getattr(obj, "__module__", None) != m.__name__ or id(obj) in seen:
                continue
            if inspect.isfunction(obj) or inspect.isclass(obj):
                if inspect.isclass(obj) and "__dataclass_fields__" in vars(obj) and hasattr(obj, "spec"):
                    continue                       # a record: stores what it is given; its probe runs student code
                seen.add(id(obj))
                out.append((f"{m.__name__}.{name}", obj))
    return out


def _params(fn):
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    return [p for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _fits(annotation, value) -> bool:
    """Whether an operand may fill a parameter so annotated (the bundle's annotations are strings: ``Tensor``,
    ``float``, ``nn.Module``...); an unannotated parameter takes anything."""
    import torch
    a = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    if annotation is inspect.Parameter.empty or not a or a in ("object", "Any"):
        return True
    kinds = [(("Tensor",), lambda v: isinstance(v, torch.Tensor)),
             (("float",), lambda v: isinstance(v, (float, int)) or (isinstance(v, torch.Tensor) and v.ndim == 0)),
             (("int",), lambda v: isinstance(v, int) or (isinstance(v, torch.Tensor) and v.ndim == 0)),
             (("Module", "Callable", "callable"), callable), (("dict",), lambda v: isinstance(v, dict)),
             (("list", "tuple", "Sequence", "Iterable"), lambda v: isinstance(v, (list, tuple)))]
    matched = [ok for names, ok in kinds if any(n in a for n in names)]
    return any(ok(value) for ok in matched) if matched else False


def bindings(fn, operands: dict):
    """Keyword argument sets for ``fn`` from the operands: a parameter named like an operand gets it; any other
    parameter without a default gets each operand in turn.  None if ``fn`` takes none of the operands."""
    params = _params(fn)
    if not params:
        return []
    choices, named = [], 0
    for p in params:
        if p.name in operands:
            choices.append([(p.name, operands[p.name])])
            named += 1
        elif p.default is inspect.Parameter.empty:
            fits = [(p.name, v) for v in {id(v): v for v in operands.values()}.values() if _fits(p.annotation, v)]
            if not fits:
                return []
            choices.append(fits)
    if not choices:
        return []
    combos = math.prod(len(c) for c in choices)
    return (dict(c) for c in itertools.islice(itertools.product(*choices), MAX_CALLS))


def tensors(value, depth=0):
    """Every tensor in a result (nested in tuples, lists, dicts, dataclasses), and floats as 0-d tensors."""
    import torch
    if depth > 4:
        return
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (float, int)) and not isinstance(value, bool):
        yield torch.tensor(float(value), dtype=torch.float64)
    elif isinstance(value, (list, tuple)):
        for v in value[:64]:
            yield from tensors(v, depth + 1)
    elif isinstance(value, dict):
        for v in list(value.values())[:256]:
            yield from tensors(v, depth + 1)
    elif hasattr(value, "__dataclass_fields__"):
        for k in value.__dataclass_fields__:
            yield from tensors(getattr(value, k, None), depth + 1)


def matches(value, expected: dict) -> list[str]:
    import torch
    hits = []
    for got in tensors(value):
        if got.is_floating_point() or got.dtype in (torch.int64, torch.int32):
            for key, want in expected.items():
                if (tuple(got.shape) == tuple(want.shape) and want.numel() > 0 and got.numel() > 0
                        and torch.allclose(got.detach().double(), want.double(), rtol=1e-4, atol=1e-6)):
                    hits.append(key)
    return hits


def materialise(operands: dict, bundle_mods: dict) -> dict:
    """Operands written as ``{"__make__": "module:Class", "args": [...]}`` (the probe's stand-in models) are
    built from the bundle's own class; ``{"__partial__": "module:function", "args": [...]}`` likewise."""
    out = {}
    for k, v in operands.items():
        if isinstance(v, dict) and ("__make__" in v or "__partial__" in v):
            mod, _, attr = (v.get("__make__") or v["__partial__"]).partition(":")
            target = getattr(importlib.import_module(mod), attr)
            args = [materialise({"a": a}, bundle_mods)["a"] for a in v["args"]]
            out[k] = target(*args) if "__make__" in v else functools.partial(target, *args)
        else:
            out[k] = v
    return out


def call(fn, kwargs):
    signal.setitimer(signal.ITIMER_REAL, SECONDS)
    try:
        return fn(**kwargs)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def walk(bundle: Path, cases: list) -> list:
    import torch
    torch.set_num_threads(1)
    mods = modules(bundle)
    found = callables(mods)
    stored = []
    for f in sorted(bundle.rglob("*")):
        if f.is_file() and f.suffix not in (".py", ".pyc", ".ipynb", ".md", ".txt", ".json", ".zip"):
            try:
                stored.append((str(f.relative_to(bundle)), torch.load(f, weights_only=True, map_location="cpu")))
            except Exception as e:
                print(f"walker: {f.name} is not a torch file ({type(e).__name__}); not compared", file=sys.stderr)
    hits = []
    devnull = open(os.devnull, "w")
    for case in cases:
        gid = case["grade_id"]
        for si, sub_case in enumerate(case["subs"]):
            sub, expected = sub_case["operands"], sub_case["expected"]
            # an expected value that is one of the operands (guidance at w = 0 returns ε_u) is passed through by
            # anything that returns its argument: it says nothing about who computed it
            expected = {k: v for k, v in expected.items() if not any(
                isinstance(o, torch.Tensor) and o.shape == v.shape and torch.allclose(o.double(), v.double(), rtol=1e-4, atol=1e-6)
                for o in sub.values())}
            for name, obj in found:
                targets = [(name, obj)]
                if inspect.isclass(obj):               # an instance built from the operands: call it, and its methods
                    for kw in bindings(obj, materialise(sub, {})) or []:
                        inst = _try(obj, kw, devnull)
                        if inst is None:
                            continue
                        if callable(inst):
                            targets.append((f"{name}(...)", inst))
                        targets += [(f"{name}(...).{m}", getattr(inst, m)) for m, f in vars(obj).items()
                                    if inspect.isfunction(f) and not m.startswith("__")]
                        break
                    targets += [(f"{name}.{m}", getattr(obj, m)) for m, f in vars(obj).items()
                                if isinstance(f, (staticmethod, classmethod))]
                for what, fn in targets:
                    t0 = time.monotonic()
                    for kw in bindings(fn, materialise(sub, {})) or []:
                        result = _try(fn, kw, devnull)
                        for key in matches(result, expected):
                            hits.append([gid, what, key, si])
                    if os.environ.get("WALKER_TIMES") and time.monotonic() - t0 > 0.5:
                        print(f"walker: {gid} {what} {time.monotonic() - t0:.1f} s", file=sys.stderr)
            for f, data in stored:                     # every data file: a stored value that is an answer
                for key in matches(data, expected):
                    hits.append([gid, f, key, si])
    return sorted({tuple(h) for h in hits})


def _fresh(v):
    """A copy of an operand for one call: a callable that changes its arguments in place changes no other call's."""
    import torch
    if isinstance(v, torch.Tensor):
        return v.detach().clone()
    if isinstance(v, (list, tuple)):
        return type(v)(_fresh(x) for x in v)
    if isinstance(v, dict):
        return {k: _fresh(x) for k, x in v.items()}
    return v


def _try(fn, kwargs, devnull):
    kwargs = {k: _fresh(v) for k, v in kwargs.items()}
    try:
        with contextlib.redirect_stdout(devnull), contextlib.redirect_stderr(devnull), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return call(fn, kwargs)
    except (Exception, _Timeout):
        return None
    finally:
        if "matplotlib.pyplot" in sys.modules:     # figures a plotting helper opened
            sys.modules["matplotlib.pyplot"].close("all")


def main(argv) -> int:
    bundle, cases_path, out = Path(argv[0]).resolve(), argv[1], argv[2]
    _isolate(bundle)
    signal.signal(signal.SIGALRM, _alarm)
    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
    os.chdir(os.environ.get("TMPDIR", "/tmp"))
    import torch
    cases = torch.load(cases_path, weights_only=False)
    Path(out).write_text(json.dumps(walk(bundle, cases)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
