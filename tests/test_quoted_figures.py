"""The laptop profile's figures that README.md and notebook 4 quote are the ones benchmarks/student*.json measured.

Both files come from one machine (`bench_recipe.py adopt`): ``student.json`` the bf16 runs, ``student_fp32.json`` the
fp32 runs of the same recipe.  A text that still quotes an older measurement (another recipe's minutes, another
share of samples) fails here, so a new measurement cannot land without its quotes.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NB4 = ROOT / "notebooks" / "source" / "04_training" / "04_training_algorithm1.ipynb"


def _runs() -> dict:
    return {amp: json.loads((ROOT / "benchmarks" / file).read_text())
            for amp, file in (("bf16", "student.json"), ("fp32", "student_fp32.json"))}


def _minutes(run: dict) -> str:
    return f"{run['train_seconds'] / 60:.1f} min"


def _read_as(run: dict) -> str:
    share = run["share_six"] if "share_six" in run else run["w2"]["accuracy"]
    return f"{round(share * run['n_samples'])} of {run['n_samples']}"


def _markdown(path: Path, heading: str) -> str:
    cells = json.loads(path.read_text())["cells"]
    text = [("".join(c["source"])) for c in cells if c["cell_type"] == "markdown"]
    found = [t for t in text if t.startswith(heading)]
    assert len(found) == 1, f"{path.name}: one markdown cell starting {heading!r}"
    return found[0]


def test_both_precisions_were_measured_on_one_machine():
    runs = _runs()
    assert runs["bf16"]["machine"].split(",")[0] == runs["fp32"]["machine"].split(",")[0]
    for key in ("digit6", "cond"):
        assert runs["bf16"][key]["precision"].startswith("bf16"), key
        assert runs["fp32"][key]["precision"].startswith("fp32"), key
        assert runs["bf16"][key]["recipe"].replace("bf16 autocast where the device has bf16 units", "fp32") \
            == runs["fp32"][key]["recipe"].replace("bf16 autocast where the device has bf16 units", "fp32"), key


@pytest.mark.parametrize("where", ["README", "notebook 4"])
def test_the_quoted_laptop_figures_are_the_measured_ones(where):
    runs = _runs()
    if where == "README":
        text = " ".join((ROOT / "README.md").read_text().split())
        keys = ("digit6", "cond")
    else:
        text = " ".join(_markdown(NB4, "## How long does training take?").split())
        keys = ("digit6",)
    for key in keys:
        for amp in ("bf16", "fp32"):
            assert _minutes(runs[amp][key]) in text, (where, key, amp, _minutes(runs[amp][key]))
            assert _read_as(runs[amp][key]) in text, (where, key, amp, _read_as(runs[amp][key]))
