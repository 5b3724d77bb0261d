"""The graded tests, judged outside the student's kernel.

Each graded (hidden) test cell of a notebook runs ``tutorial_utils.probes.submit("<grade id>", <the student's
object>)``.  While autograding, the kernel (sandboxed, without the reference of the assignment being graded)
only runs the probe on the inputs written here and shows the record as the cell's output.  ``GuardedExecute``
then decodes that record in the grader's own process (``torch.load(weights_only=True)``: tensors and plain data
only), computes the expected values from ``solutions`` on the same inputs, and judges it with the judges of
``tutorial_utils.checks``.  Replacing functions in the kernel (``grade_*``, ``check_*``, builtins, torch),
patching or importing the reference changes nothing here: either the record holds the right numbers, computed by
the student's code, or the test fails and says why.

The self-checks' stored data (``tutorial_utils/check_data.pt``) is written by the same code on other inputs:

    python -m ddpm_instructor.graded --write-check-data
"""
from __future__ import annotations

import argparse
import base64
import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

import solutions
from tutorial_utils.checks import CHECK_DATA, JUDGES, SelfCheckError
from tutorial_utils.probes import PROBES, RECORD_MIME

from .records import TestResult


# --------------------------------------------------------------------------- inputs (seeded) and expected values
def _schedule_tensors(T: int = 1000) -> dict:
    s = solutions.Schedule.linear(T)
    return {"betas": s.betas, "alphas": s.alphas, "alpha_bars": s.alpha_bars}


def inputs_schedule(args) -> dict:
    return {"args": [list(a) for a in args]}


def expected_schedule(inputs) -> dict:
    return {"results": [solutions.linear_beta_schedule(*a) for a in inputs["args"]]}


def inputs_q_sample(seed: int, t_values) -> dict:
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(len(t_values), 1, 28, 28, generator=g) * 2 - 1
    noise = torch.randn(x0.shape, generator=g)
    return {"x0": x0, "t": torch.tensor(t_values, dtype=torch.long), "noise": noise, **_schedule_tensors()}


def expected_q_sample(inputs) -> dict:
    s = solutions.Schedule(inputs["betas"])
    ab = s.alpha_bars[inputs["t"]]
    return {"sqrt_alpha_bar": solutions.extract(s.alpha_bars.sqrt(), inputs["t"], inputs["x0"].shape),
            "sqrt_one_minus_alpha_bar": solutions.extract((1 - s.alpha_bars).sqrt(), inputs["t"], inputs["x0"].shape),
            "out": solutions.q_sample(inputs["x0"], inputs["t"], inputs["noise"], schedule=s),
            "alpha_bar": ab, "zero_var": 1 - ab}


def inputs_loss(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"a": torch.randn(4, 1, 28, 28, generator=g), "b": torch.randn(4, 1, 28, 28, generator=g)}


def expected_loss(inputs) -> dict:
    a, b = inputs["a"], inputs["b"]
    return {"mse": F.mse_loss(a, b), "sse": F.mse_loss(a, b, reduction="sum"), "l1": F.l1_loss(a, b)}


def inputs_train(seed: int, batch: int = 6) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"x0": torch.rand(batch, 1, 28, 28, generator=g) * 2 - 1, "seed": seed, "T": 1000,
            "spy_scale": torch.tensor(0.5), "spy_shift": torch.linspace(-0.2, 0.2, 1000) + 0.01 * (seed % 7)}


def expected_train(inputs) -> dict:
    s = solutions.default_schedule()
    return {"sqrt_ab": s.alpha_bars.sqrt(), "sqrt_1mab": (1 - s.alpha_bars).sqrt()}


def inputs_reverse(seed: int, t_indices=(0, 1, 500, 999)) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(16, 1, 28, 28, generator=g), "t_indices": list(t_indices), "seed": seed,
            "a": 0.3 + 0.01 * (seed % 5), "b": 1.0, **_schedule_tensors()}


def expected_reverse(inputs) -> dict:
    s = solutions.Schedule(inputs["betas"])
    x, means, sigmas = inputs["x"], [], []
    for t_index in inputs["t_indices"]:
        t = torch.full((x.shape[0],), t_index, dtype=torch.long)
        eps = inputs["a"] * x + inputs["b"] * (t.float() / 1000).view(-1, 1, 1, 1)
        means.append(solutions.ddpm_reverse_step(x, eps, t, 0, schedule=s))     # t_index 0: the mean, no noise
        sigmas.append(s.betas[t_index].sqrt().item())
    return {"mean": means, "sigma": sigmas}


def inputs_class_emb(ch: int, n_classes: int) -> dict:
    return {"ch": ch, "n_classes": n_classes}


def expected_class_emb(inputs) -> dict:
    emb = solutions.UNet_cond(ch=inputs["ch"], n_classes=inputs["n_classes"]).class_emb
    return {"shape": [emb.num_embeddings, emb.embedding_dim]}


def inputs_cond(seed: int, ch: int = 8, n_classes: int = 10, B: int = 4) -> dict:
    torch.manual_seed(seed)
    ref = solutions.UNet_cond(ch=ch, n_classes=n_classes)
    with torch.no_grad():                       # a trained-looking embedding, not the init: every class differs
        ref.class_emb.weight.normal_(0, 1)
    g = torch.Generator().manual_seed(seed)
    return {"ch": ch, "n_classes": n_classes, "state_dict": {k: v.clone() for k, v in ref.state_dict().items()},
            "x": torch.randn(B, 1, 28, 28, generator=g), "t": torch.randint(0, 1000, (B,), generator=g),
            "y": torch.randint(0, n_classes, (B,), generator=g)}


def expected_cond(inputs) -> dict:
    ref = solutions.UNet_cond(ch=inputs["ch"], n_classes=inputs["n_classes"])
    ref.load_state_dict(inputs["state_dict"])
    ref.eval()
    with torch.no_grad():
        t_emb, y_emb = ref.time_mlp(inputs["t"]), ref.class_emb(inputs["y"])
        return {"y_emb": y_emb, "cond_emb": t_emb + y_emb, "out": ref(inputs["x"], inputs["t"], inputs["y"])}


def inputs_cosine(args) -> dict:
    return {"args": [list(a) for a in args]}


def expected_cosine(inputs) -> dict:
    from solutions.beyond import cosine_alpha_bars, cosine_beta_schedule
    return {"alpha_bars": [cosine_alpha_bars(*a) for a in inputs["args"]],
            "betas": [cosine_beta_schedule(*a).double() for a in inputs["args"]]}


def inputs_ddim(seed: int, steps) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"x_t": torch.randn(6, 1, 28, 28, generator=g), "eps": torch.randn(6, 1, 28, 28, generator=g),
            "steps": [list(s) for s in steps], "seed": seed, "alpha_bars": _schedule_tensors()["alpha_bars"]}


def expected_ddim(inputs) -> dict:
    from solutions.beyond import ddim_sigma, ddim_step
    s = solutions.Schedule(1 - inputs["alpha_bars"] / torch.cat([torch.ones(1), inputs["alpha_bars"][:-1]]))
    out = {"x0_pred": [], "mean": [], "sigma": []}
    x, eps, ab = inputs["x_t"], inputs["eps"], inputs["alpha_bars"]
    for t, t_prev, eta in inputs["steps"]:
        a_t, a_prev = ab[t], (ab[t_prev] if t_prev >= 0 else torch.tensor(1.0))
        out["x0_pred"].append((x - (1 - a_t).sqrt() * eps) / a_t.sqrt())   # from the very ᾱ the student's code reads
        out["mean"].append(ddim_step(x, eps, t, t_prev, s, eta=eta, noise=torch.zeros_like(x)))
        out["sigma"].append(float(ddim_sigma(a_t, a_prev, eta)))
    return out


def inputs_guided(seed: int, ws) -> dict:
    g = torch.Generator().manual_seed(seed)
    ec, eu = torch.randn(3, 1, 28, 28, generator=g), torch.randn(3, 1, 28, 28, generator=g)
    return {"args": [[ec, eu, float(w)] for w in ws]}


def expected_guided(inputs) -> dict:
    from solutions.beyond import guided_eps
    return {"results": [guided_eps(*a) for a in inputs["args"]]}


@dataclass(frozen=True)
class Case:
    """One graded test (or one self-check): which probe runs in the kernel, on what, judged how."""
    probe: str
    judge: str
    make_inputs: Callable[[], dict]
    expected: Callable[[dict], dict]


# grade id -> Case.  Inputs differ from the self-checks' (other seeds, sizes, timesteps).
TESTS = {
    "test_linear_beta_schedule": Case("calls", "schedule", lambda: inputs_schedule(
        [(1000,), (37,), (250, 1e-3, 0.05), (2, 0.3, 0.6)]), expected_schedule),
    "test_q_sample_sqrt_alpha_bar": Case("q_sample", "q_sample_sqrt_alpha_bar",
                                         lambda: inputs_q_sample(123, [3, 77, 400, 640, 998]), expected_q_sample),
    "test_q_sample_sqrt_one_minus_alpha_bar": Case("q_sample", "q_sample_sqrt_one_minus_alpha_bar",
                                                   lambda: inputs_q_sample(124, [5, 90, 333, 701, 997]), expected_q_sample),
    "test_q_sample_return": Case("q_sample", "q_sample_return",
                                 lambda: inputs_q_sample(125, [1, 64, 250, 512, 999]), expected_q_sample),
    "test_loss_fn": Case("loss_fn", "loss_fn", lambda: inputs_loss(11), expected_loss),
    "test_train_x_t": Case("train_step", "train_x_t", lambda: inputs_train(2024), expected_train),
    "test_train_pred_noise": Case("train_step", "train_pred_noise", lambda: inputs_train(2025), expected_train),
    "test_train_loss": Case("train_step", "train_loss", lambda: inputs_train(2026), expected_train),
    "test_p_sample_DDPM": Case("reverse_step", "reverse_step", lambda: inputs_reverse(31337, (0, 2, 321, 998)),
                               expected_reverse),
    "test_UNet_cond_class_emb": Case("class_emb", "class_emb", lambda: inputs_class_emb(16, 7), expected_class_emb),
    "test_UNet_cond_y_emb": Case("cond_forward", "cond_y_emb", lambda: inputs_cond(77), expected_cond),
    "test_UNet_cond_cond_emb": Case("cond_forward", "cond_cond_emb", lambda: inputs_cond(78), expected_cond),
    "test_cosine_alpha_bars": Case("cosine", "cosine_alpha_bars", lambda: inputs_cosine([(1000,), (37, 0.02)]),
                                   expected_cosine),
    "test_cosine_betas": Case("cosine", "cosine_betas", lambda: inputs_cosine([(1000,), (64, 0.01)]), expected_cosine),
    "test_ddim_x0_pred": Case("ddim", "ddim_x0_pred", lambda: inputs_ddim(71, [(900, 880, 0.0), (37, 17, 0.0)]),
                              expected_ddim),
    "test_ddim_x_prev": Case("ddim", "ddim_x_prev", lambda: inputs_ddim(72, [(640, 600, 0.0), (300, 250, 1.0),
                                                                             (19, -1, 0.0)]), expected_ddim),
    "test_guided_eps": Case("calls", "guided", lambda: inputs_guided(73, [0.0, 1.0, 2.5, 7.0]), expected_guided),
}

# self-check name -> Case (the judges are listed in tutorial_utils.checks; stored in check_data.pt)
SELF_CHECKS = {
    "linear_beta_schedule": Case("calls", "", lambda: inputs_schedule([(1000,), (11, 0.1, 0.2)]), expected_schedule),
    "q_sample": Case("q_sample", "", lambda: inputs_q_sample(0, [0, 10, 250, 999]), expected_q_sample),
    "loss_fn": Case("loss_fn", "", lambda: inputs_loss(7), expected_loss),
    "train_step": Case("train_step", "", lambda: inputs_train(0), expected_train),
    "reverse_step": Case("reverse_step", "", lambda: inputs_reverse(0), expected_reverse),
    "class_emb": Case("class_emb", "", lambda: inputs_class_emb(8, 10), expected_class_emb),
    "cond_forward": Case("cond_forward", "", lambda: inputs_cond(0), expected_cond),
    "cosine": Case("cosine", "", lambda: inputs_cosine([(1000,), (10, 0.008)]), expected_cosine),
    "ddim": Case("ddim", "", lambda: inputs_ddim(0, [(999, 979, 0.0), (500, 450, 0.5), (20, -1, 0.0)]), expected_ddim),
    "guided": Case("calls", "", lambda: inputs_guided(0, [0.0, 1.0, 3.0]), expected_guided),
}


# --------------------------------------------------------------------------- what the grader does
def write_inputs(directory: Path, grade_ids=None) -> list[Path]:
    """The inputs of every graded test (``{"probe", "inputs"}``), one file per grade id, for the kernel to read."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for gid in grade_ids or TESTS:
        case = TESTS[gid]
        path = directory / f"{gid}.pt"
        torch.save({"probe": case.probe, "inputs": case.make_inputs()}, path)
        written.append(path)
    return written


def decode(payload: str) -> dict:
    """A record shown by a graded cell: base64 of ``torch.save``; read with ``weights_only=True`` (plain data)."""
    raw = base64.b64decode(payload.encode("ascii"), validate=True)
    data = torch.load(io.BytesIO(raw), weights_only=True)
    if not isinstance(data, dict) or not isinstance(data.get("record"), dict):
        raise ValueError("not a grader record")
    return data


def judge(grade_id: str, record: dict, inputs: dict) -> tuple[bool, str]:
    """(passed, message) for one record, with expected values from the reference computed right here."""
    case = TESTS[grade_id]
    try:
        return True, JUDGES[case.judge](record, inputs, case.expected(inputs))
    except SelfCheckError as e:
        return False, str(e)
    except Exception as e:          # a malformed record (missing keys, wrong types) earns nothing, and says so
        return False, f"the result of this test could not be judged ({type(e).__name__}: {str(e)[:200]})."


def judge_outputs(grade_id: str, outputs: list, inputs_dir: Path, max_points: float) -> TestResult:
    """Judge a graded cell from its outputs: exactly one record for this grade id, else 0 points with the reason."""
    if grade_id not in TESTS:
        return TestResult(grade_id, max_points, False, f"the grader has no test called {grade_id}.")
    records, errors = [], []
    for out in outputs:
        if out.get("output_type") == "error":
            errors.append(f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"[:300])
        payload = (out.get("data") or {}).get(RECORD_MIME)
        if isinstance(payload, str):
            records.append(payload)
    if len(records) != 1:
        why = errors[0] if errors else ("it produced no result" if not records else "it produced more than one result")
        return TestResult(grade_id, max_points, False, f"this test could not run your code ({why}).")
    try:
        data = decode(records[0])
    except Exception as e:
        return TestResult(grade_id, max_points, False,
                          f"the result of this test could not be read ({type(e).__name__}); nothing earned.")
    if data.get("grade_id") != grade_id:
        return TestResult(grade_id, max_points, False, "the result shown in this cell belongs to another test.")
    spec = torch.load(Path(inputs_dir) / f"{grade_id}.pt", weights_only=True)
    passed, message = judge(grade_id, data["record"], spec["inputs"])
    return TestResult(grade_id, max_points, passed, message, points=max_points if passed else 0.0)


def run_in_process(grade_id: str, obj) -> str:
    """The instructor's own run of a graded test (source notebooks under nbval, tests): probe and judge here;
    raises ``SelfCheckError`` when the answer is wrong."""
    case = TESTS[grade_id]
    inputs = case.make_inputs()
    record = PROBES[case.probe](obj, inputs)
    return JUDGES[case.judge](record, inputs, case.expected(inputs))


def write_check_data(path: Path = CHECK_DATA) -> Path:
    """The self-checks' fixed inputs and expected values, computed from the reference (stored in tutorial_utils)."""
    data = {}
    for name, case in SELF_CHECKS.items():
        inputs = case.make_inputs()
        data[name] = {"probe": case.probe, "inputs": inputs, "expected": case.expected(inputs)}
    torch.save(data, path)
    return Path(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write-check-data", action="store_true", help=f"rewrite {CHECK_DATA}")
    args = ap.parse_args(argv)
    if args.write_check_data:
        p = write_check_data()
        print(f"wrote {p} ({p.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
