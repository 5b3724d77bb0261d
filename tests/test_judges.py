"""Each graded test's judge on its own, without a kernel: the reference answer of the source notebook run through
the stage's probe on the grader's inputs, shown as a graded cell shows it, and judged by
``ddpm_instructor.graded.judge_outputs`` -- then the same record damaged the ways a forged one would be.

The rule these tests hold: a record earns a blank's points only if producing it required computing that blank
right on the grader's inputs.  So an empty or short list, a missing or extra field, a tensor of another shape, an
expanded (stride-0) tensor, a NaN, an oversized tensor each fail, with a message that names it; a loop or a step
that does not use the grader's draws (t, ε, z) fails, and so does a record that reports other draws, however
consistent it is with them.  Runtime: about 25 s on a busy 2-core machine (one probe run per graded test).
"""
from __future__ import annotations

import copy
import functools
import io
import json
import math
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

import solutions
from ddpm_instructor import graded
from tutorial_utils.probes import RECORD_MIME, encode

ROOT = Path(__file__).resolve().parent.parent
SOURCE_NOTEBOOKS = ROOT / "notebooks" / "source"
GRADED_SUBMIT = re.compile(r"""\bsubmit\(\s*["'](\w+)["']\s*,\s*(\w+)\s*\)""")


def _submits() -> dict:
    """grade id -> (assignment, the solution cell whose object the graded cell submits, that object's name), read
    from the graded cells of the source notebooks (``submit("<grade id>", <name>)``; the cell is named after it)."""
    out = {}
    for nb in sorted(SOURCE_NOTEBOOKS.glob("*/*.ipynb")):
        for c in json.loads(nb.read_text())["cells"]:
            g = c["metadata"].get("nbgrader", {})
            if g.get("grade") and not g.get("solution"):
                for gid, name in GRADED_SUBMIT.findall("".join(c["source"])):
                    out[gid] = (nb.parent.name, name, name)
    return out


SUBMITS = _submits()


# grade id -> the record entry its judge reads first (a path into the plain record): the field its declaration names
# (``Blank.field``), and its first entry where that field holds one value per call
def _judged(gid: str) -> tuple:
    case = graded.TESTS[gid]
    field = case.blank.field
    return (field, 0) if isinstance(case.blank.record.spec(case.make_inputs())[field], list) else (field,)


JUDGED = {gid: _judged(gid) for gid in graded.TESTS}


def _namespace() -> dict:
    """The globals the solution cells find in their notebooks."""
    import tqdm.auto
    from solutions.beyond import guided_eps  # noqa: F401  (notebook 7 defines its own; the import is unused)
    s = solutions.default_schedule()
    return {"torch": torch, "nn": nn, "math": math, "tqdm": tqdm.auto.tqdm, "extract": solutions.extract,
            "q_sample": solutions.q_sample, "Unet": solutions.Unet, "T": 1000, "device": torch.device("cpu"),
            "loss_fn": nn.MSELoss(), "betas": s.betas, "alphas": s.alphas, "alpha_bars": s.alpha_bars}


@functools.lru_cache(maxsize=None)
def reference(assignment: str, cell: str, name: str):
    """The source notebook's solution cell ``cell``, executed as the notebook does: its object ``name``."""
    (path,) = (SOURCE_NOTEBOOKS / assignment).glob("*.ipynb")
    nb = json.loads(path.read_text())
    src = next("".join(c["source"]) for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == cell)
    ns = _namespace()
    exec(compile(src, f"<{assignment}:{cell}>", "exec"), ns)
    return ns[name]


def shown(gid: str, plain, kind=None) -> list:
    """A graded cell's outputs showing ``plain`` as the record of ``gid``."""
    kind = kind or graded.TESTS[gid].kind
    return [{"output_type": "display_data", "metadata": {},
             "data": {RECORD_MIME: encode(gid, kind, plain), "text/plain": "[result]"}}]


def record_of(gid: str):
    """The record class the declaration of ``gid`` names (its probe and fields)."""
    return graded.TESTS[gid].blank.record


def judged(gid: str, plain):
    return graded.judge_outputs(gid, shown(gid, plain), Path("/nonexistent"), 2.0)


@functools.lru_cache(maxsize=None)
def _right(gid: str, probe_obj=None):
    case = graded.TESTS[gid]
    inputs = case.make_inputs()
    return case.blank.record.probe(probe_obj or reference(*SUBMITS[gid]), inputs).to_plain(inputs)


def right(gid: str) -> dict:
    return copy.deepcopy(_right(gid))


def _at(plain, path):
    for k in path[:-1]:
        plain = plain[k]
    return plain, path[-1]


def _label(gid: str) -> str:
    path = JUDGED[gid]
    return path[0] + "".join(f"[{k}]" for k in path[1:])


# --------------------------------------------------------------------------- every judge: right, and damaged
def test_every_graded_test_is_judged_here():
    """Every declared graded test has a graded cell that submits a solution cell's object, and the reverse."""
    assert set(JUDGED) == set(SUBMITS) == set(graded.TESTS), set(graded.TESTS) ^ set(JUDGED)


@pytest.mark.parametrize("gid", list(JUDGED))
def test_the_reference_answer_passes_and_its_payload_is_within_the_limit(gid):
    res = judged(gid, right(gid))
    assert res.passed and res.points == 2.0, res
    payload = shown(gid, right(gid))[0]["data"][RECORD_MIME]
    limit = graded.record_limit(gid)
    assert len(payload) < limit <= 4 * len(payload) + 200_000, (gid, len(payload), limit)


@pytest.mark.parametrize("gid", list(JUDGED))
def test_missing_and_extra_fields_fail_naming_the_field(gid):
    plain = right(gid)
    field = JUDGED[gid][0]
    del plain[field]
    res = judged(gid, plain)
    assert not res.passed and res.points == 0 and f"the field '{field}' is missing" in res.message, res
    plain = right(gid)
    plain["bonus"] = torch.ones(3)
    res = judged(gid, plain)
    assert not res.passed and "'bonus' is not a field" in res.message, res


@pytest.mark.parametrize("gid", [g for g in JUDGED if len(JUDGED[g]) == 2])
def test_empty_and_short_lists_fail(gid):
    field = JUDGED[gid][0]
    for cut in (0, 1):
        plain = right(gid)
        for k, v in plain.items():                 # every list of the record cut alike, as a forger would
            if isinstance(v, list):
                plain[k] = v[:cut]
        res = judged(gid, plain)
        assert not res.passed, (gid, cut, res)
        assert f"has {cut} entries; the grader asked for" in res.message and res.message.split(" has ")[0].endswith(
            tuple(k for k, v in right(gid).items() if isinstance(v, list))), res.message


def _tensor_entry(gid):
    plain = right(gid)
    box, key = _at(plain, JUDGED[gid])
    assert isinstance(box[key], torch.Tensor), (gid, box[key])
    return plain, box, key


@pytest.mark.parametrize("gid", list(JUDGED))
def test_an_expanded_tensor_is_refused_before_any_arithmetic(gid):
    plain, box, key = _tensor_entry(gid)
    v = box[key]
    if v.numel() > 1:                              # a few bytes of storage standing for the whole tensor
        box[key] = v.flatten()[:1].expand(v.shape)
    else:                                          # one value cannot be expanded: a view into a larger storage
        box[key] = torch.zeros(64, dtype=v.dtype)[3:4].reshape(v.shape)
    res = judged(gid, plain)
    assert not res.passed and _label(gid) in res.message and "not a plain tensor" in res.message, res


@pytest.mark.parametrize("gid", list(JUDGED))
def test_an_oversized_tensor_is_refused_naming_it(gid):
    plain, box, key = _tensor_entry(gid)
    declared = graded.TESTS[gid].blank.record.spec(graded.TESTS[gid].make_inputs())
    declared, k = _at(declared, JUDGED[gid])
    cap = math.prod(declared[k].shape)             # declared shapes, from the grader's own inputs
    box[key] = torch.zeros(cap + 1, dtype=box[key].dtype)
    res = judged(gid, plain)
    assert not res.passed and f"{_label(gid)} holds {cap + 1:,} values; this test's record has room for {cap:,}" \
        in res.message, res


@pytest.mark.parametrize("gid", list(JUDGED))
def test_a_tensor_of_another_shape_or_dtype_or_with_nan_fails_its_blank(gid):
    plain, box, key = _tensor_entry(gid)
    v = box[key]
    if v.numel() > 1:
        box[key] = v.flatten()[: v.numel() // 2].clone()
        res = judged(gid, plain)
        assert not res.passed and "wrong shape" in res.message and f"({v.numel() // 2},)" in res.message, res
    plain, box, key = _tensor_entry(gid)
    box[key] = torch.zeros(v.shape, dtype=torch.int64 if v.is_floating_point() else torch.float32)
    res = judged(gid, plain)
    assert not res.passed and ("has dtype" in res.message), res
    if v.is_floating_point():
        plain, box, key = _tensor_entry(gid)
        box[key] = v.clone().flatten().index_fill_(0, torch.tensor([0]), float("nan")).reshape(v.shape)
        res = judged(gid, plain)
        assert not res.passed and "is not finite: 1 of its" in res.message, res


# --------------------------------------------------------------------------- the grader's draws
def _loop_that_zeroes_its_draws():
    """Notebook 4's loop with the x_t blank "filled in" by zeroing the draws: x_t = x_0, t = 0, noise = 0."""
    loss_fn, T = nn.MSELoss(), 1000

    def train_ddpm(model, optimizer, dataloader, epochs, max_steps=None, progress=True):
        for x_0, _ in dataloader:
            t = torch.randint(0, T, (x_0.shape[0],))
            noise = torch.randn_like(x_0)
            t, noise, x_t = 0 * t, 0 * noise, x_0
            pred_noise = model(x_t, t)
            loss = loss_fn(pred_noise, noise)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            return [loss.item()]
    return train_ddpm


@pytest.mark.parametrize("gid", ["test_train_x_t", "test_train_pred_noise", "test_train_loss"])
def test_a_loop_that_zeroes_its_draws_loses_only_the_x_t_blank(gid):
    """The x_t blank "filled in" by zeroing the draws fails against the grader's draws; the pred_noise and loss
    lines are right as handed out, and are judged on the loop's own x_t, t and noise: a wrong blank costs only its
    own points (7 of notebook 4's 10)."""
    inputs = graded.TESTS[gid].make_inputs()
    plain = record_of(gid).probe(_loop_that_zeroes_its_draws(), inputs).to_plain(inputs)
    res = judged(gid, plain)
    if gid == "test_train_x_t":
        assert not res.passed and "It equals x_0" in res.message and "not what its handed-out line drew" in res.message, res
    else:
        assert res.passed, res


@pytest.mark.parametrize("gid", ["test_train_x_t", "test_train_pred_noise", "test_train_loss"])
def test_a_record_with_draws_of_its_own_earns_only_what_it_computed(gid):
    """A forged record: t = 0, ε = 0 (as the old judges took the draws from the record, consistent values earned
    everything).  x_t is judged against the grader's draws and fails; the later blanks must be consistent with the
    record's own x_t, t and noise -- a model call at other timesteps, or a loss against other noise, fails."""
    inputs = graded.TESTS[gid].make_inputs()
    plain = right(gid)
    t, noise = torch.zeros_like(plain["t"]), torch.zeros_like(plain["noise"])
    x_t = solutions.q_sample(inputs["x0"], t, noise)
    pred = inputs["spy_scale"] * x_t + inputs["spy_shift"][t].view(-1, 1, 1, 1)
    plain.update(t=t, noise=noise, x_t=x_t, call_x=x_t, call_t=t, pred_noise=pred, loss=((pred - noise) ** 2).mean())
    scale, shift = solutions_sgd(inputs, x_t, t, noise)
    plain.update(scale_after=scale, shift_after=shift)
    assert judged(gid, plain).passed == (gid != "test_train_x_t")
    if gid == "test_train_pred_noise":       # the model called at the grader's t while the record claims t = 0
        other = dict(plain, call_t=inputs["t"].clone())
        res = judged(gid, other)
        assert not res.passed and "timesteps other than the loop's t" in res.message, res
    if gid == "test_train_loss":             # a loss against noise the record does not hold
        other = dict(plain, loss=((pred - inputs["noise"]) ** 2).mean())
        res = judged(gid, other)
        assert not res.passed and "the noise drawn in the loop" in res.message, res


def solutions_sgd(inputs, x, t, noise):
    """(scale, shift) of the stand-in after one SGD step on MSE(ε_spy(x, t), noise), written out here."""
    from tutorial_utils.checks.training import SPY_LR
    scale = inputs["spy_scale"].double().clone().requires_grad_()
    shift = inputs["spy_shift"].double().clone().requires_grad_()
    ((scale * x.double() + shift[t].view(-1, 1, 1, 1) - noise.double()) ** 2).mean().backward()
    return (scale - SPY_LR * scale.grad).detach().float(), (shift - SPY_LR * shift.grad).detach().float()


def test_the_draws_are_the_graders_and_the_right_loop_receives_them():
    inputs = graded.TESTS["test_train_x_t"].make_inputs()
    rec = record_of("test_train_x_t").probe(reference(*SUBMITS["test_train_x_t"]), inputs)
    assert torch.equal(rec.t, inputs["t"]) and torch.equal(rec.noise, inputs["noise"])
    assert torch.equal(rec.call_t, inputs["t"])


def _p_sample_with(z_of):
    ref = reference(*SUBMITS["test_p_sample_DDPM"])

    @torch.no_grad()
    def p_sample_DDPM(model, x, t, t_index):
        eps = model(x, t)
        z = z_of(x) if t_index > 0 else torch.zeros_like(x)
        return solutions.ddpm_reverse_step(x, eps, t, t_index, noise=z)
    assert ref is not None
    return p_sample_DDPM


@pytest.mark.parametrize("how, words", [
    ("zero", "is just the mean"),
    ("own generator", "is not the Algorithm 2 update"),
])
def test_a_reverse_step_that_does_not_use_the_draw_fails(how, words):
    g = torch.Generator().manual_seed(5)
    z_of = {"zero": torch.zeros_like, "own generator": lambda x: torch.randn(x.shape, generator=g)}[how]
    gid = "test_p_sample_DDPM"
    inputs = graded.TESTS[gid].make_inputs()
    res = judged(gid, record_of(gid).probe(_p_sample_with(z_of), inputs).to_plain(inputs))
    assert not res.passed and words in res.message, res


def test_a_ddim_step_that_does_not_use_the_draw_fails():
    from solutions.beyond import ddim_step as ref_step
    gid = "test_ddim_x_prev"
    inputs = graded.TESTS[gid].make_inputs()
    s = solutions.Schedule(1 - inputs["alpha_bars"] / torch.cat([torch.ones(1), inputs["alpha_bars"][:-1]]))

    def ddim_step(x_t, eps, t, t_prev, eta=0.0, clip=False):
        return ref_step(x_t, eps, t, t_prev, s, eta=eta, noise=torch.zeros_like(x_t))
    res = judged(gid, record_of(gid).probe(ddim_step, inputs).to_plain(inputs))
    assert not res.passed and "with eta > 0 the step adds" in res.message, res


def test_q_sample_without_noise_must_use_the_draw():
    gid = "test_q_sample_return"
    ref = reference(*SUBMITS[gid])

    def q_sample(x_start, t, noise=None):
        return ref(x_start, t, torch.zeros_like(x_start) if noise is None else noise)
    inputs = graded.TESTS[gid].make_inputs()
    res = judged(gid, record_of(gid).probe(q_sample, inputs).to_plain(inputs))
    assert not res.passed and "without noise should draw noise = torch.randn_like(x_start)" in res.message, res


# --------------------------------------------------------------------------- what the grader reads at all
def test_a_compressed_or_foreign_payload_is_refused_unread():
    gid = "test_loss_fn"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", b"\0" * 100_000)
    import base64
    for payload, words in [(base64.b64encode(buf.getvalue()).decode(), "compressed or oversized entries"),
                           ("not base64!", "not base64"), ("A" * (graded.record_limit(gid) + 4), "characters long")]:
        res = graded.judge_outputs(gid, [{"output_type": "display_data", "data": {RECORD_MIME: payload}}], None, 1.0)
        assert not res.passed and words in res.message, (words, res)


def test_a_record_of_another_test_or_kind_is_refused():
    plain = right("test_q_sample_return")
    res = graded.judge_outputs("test_q_sample_sqrt_alpha_bar", shown("test_q_sample_return", plain), None, 1.0)
    assert not res.passed and "belongs to another test" in res.message
    res = graded.judge_outputs("test_loss_fn", shown("test_loss_fn", right("test_loss_fn"), kind="calls"), None, 1.0)
    assert not res.passed and "belongs to another test" in res.message


def _tensors(x, path=()):
    if isinstance(x, torch.Tensor):
        yield path, x
    elif isinstance(x, dict):
        for k, v in x.items():
            yield from _tensors(v, path + (k,))
    elif isinstance(x, (list, tuple)):
        for i, v in enumerate(x):
            yield from _tensors(v, path + (i,))


def test_graded_inputs_never_coincide_with_the_stored_self_check_data():
    """No graded input (tensor, or argument list of a called function) equals any input stored for the
    self-checks: the stored expected values answer none of the graded tests.  The notebook's own constants (the
    schedule it builds) are the same by design and are not answers."""
    from tutorial_utils.checks import CHECK_DATA
    stored = torch.load(CHECK_DATA, weights_only=True)
    stored_tensors = [(name, p, v) for name, case in stored.items()
                      for p, v in _tensors({k: x for k, x in case["inputs"].items() if k not in graded.CONSTANTS})]
    stored_args = [(name, a) for name, case in stored.items() for a in case["inputs"].get("args", [])]
    for gid, case in graded.TESTS.items():
        inputs = case.make_inputs()
        for path, v in _tensors({k: x for k, x in inputs.items() if k not in graded.CONSTANTS}):
            same = [(n, p) for n, p, w in stored_tensors if w.shape == v.shape and w.dtype == v.dtype and torch.equal(w, v)
                    and v.numel() > 1]
            assert not same, (gid, path, same)
        for a in inputs.get("args", []):
            assert not [n for n, b in stored_args if len(a) == len(b) and all(map(_same, a, b))], (gid, a)


def _same(x, y) -> bool:
    if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
        return isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.shape == y.shape and torch.equal(x, y)
    return x == y


def _imports(path: Path) -> set[str]:
    """Every module a file imports, statically or through importlib / __import__ with a literal name."""
    import ast
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__", "find_spec") and node.args and isinstance(node.args[0], ast.Constant):
            names.add(str(node.args[0].value))
    return names


def test_tutorial_utils_never_names_the_instructor_tooling_and_works_without_it():
    for p in sorted((ROOT / "tutorial_utils").rglob("*.py")):
        assert not [m for m in _imports(p) if m.split(".")[0] == "ddpm_instructor"], p
    code = ("import sys; sys.modules['ddpm_instructor'] = None\n"
            "import tutorial_utils, tutorial_utils.checks, tutorial_utils.probes as p\n"
            "p.submit('test_linear_beta_schedule', lambda *a: None)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd="/",
                       env={"PATH": "/usr/bin:/bin", "DDPM_PROFILE": "smoke"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "a graded test, run by the grader on its own inputs" in r.stdout, r.stdout


def test_submit_outside_the_grader_judges_with_the_installed_tooling():
    from tutorial_utils.checks import SelfCheckError
    from tutorial_utils.probes import submit
    submit("test_linear_beta_schedule", solutions.linear_beta_schedule)
    with pytest.raises(SelfCheckError, match="returned None"):
        submit("test_linear_beta_schedule", lambda *a: None)
