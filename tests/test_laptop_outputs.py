"""tools/laptop_outputs.py: the cells that training fills store a real laptop-profile run's outputs, labelled, in the
source notebooks and the student versions; a smoke refresh keeps them; nbval ignores only them.  No execution here."""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from ddpm_instructor.keep_outputs import ClearAnswerOutputs
from tutorial_utils.runtime import PROFILES

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def _load(name):
    """A module of tools/ (not a package), registered under its own name as tools/notebook_outputs.py imports it."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


lo = _load("laptop_outputs")

# The cells each notebook fills from its training (issue 24, item 3): training summary, loss curve, sanity check,
# samples, the judge's verdict.
TRAINING_FILLED = {
    "04_training/04_training_algorithm1.ipynb": {"nb4-18", "nb4-19", "nb4-23", "nb4-25", "nb4-27"},
    "06_conditional/06_class_conditional.ipynb": {"nb6-13", "nb6-14", "nb6-16", "nb6-18", "nb6-19", "nb6-19c", "nb6-22"},
}
RECIPE = {"04_training/04_training_algorithm1.ipynb": "recipe_digit6",
          "06_conditional/06_class_conditional.ipynb": "recipe_cond"}
VERDICT = {"04_training/04_training_algorithm1.ipynb": ("nb4-27", r"(\d+) samples in .*read as a 6 by the judge: \d+/(\d+)"),
           "06_conditional/06_class_conditional.ipynb": ("nb6-19c", r"read as the digit asked for: \d+/(\d+)")}


def _run(**kw):
    d = dict(notebook="x/x.ipynb", date="2026-12-07 22:30 UTC", cpu="AMD EPYC", cores=2, precision="bf16",
             precision_line="precision: bf16 autocast on this CPU's bf16 units", amp_env=None, seconds=312.0,
             kernel_cpu_seconds=580.0, load_average_start_end=(1.0, 1.5), nice=0, cell_seconds={"train": 170.0, "plot": 0.4},
             cell_sources={"train": lo.source_hash("train()"), "plot": lo.source_hash("plot()")}, code="abc123")
    d.update(kw)
    return lo.LaptopRun(**d)


def _cell(cid, source, outputs, tags=()):
    c = new_code_cell(source, id=cid, outputs=outputs)
    c.metadata["tags"] = list(tags)
    return c


def _text(out) -> str:
    return out.get("text", "") + "".join(v for k, v in out.get("data", {}).items() if k.startswith("text/"))


# ----------------------------------------------------------------------------- the pieces, on fixture notebooks
def test_the_label_says_laptop_cores_cpu_precision_minutes_and_that_the_students_run_replaces_it():
    text = lo.label(_run(), "train")
    assert text.startswith("A laptop run on 2 cores (AMD EPYC, bf16 autocast)")
    assert "the whole notebook took 5.2 min, this cell 2.8 min" in text and "yours replaces it" in text
    assert "busy" not in text
    assert "this cell" not in lo.label(_run(), "plot")              # under a second: not worth saying
    assert "(AMD EPYC, fp32, on a machine busy with other work)" in lo.label(
        _run(precision="fp32", load_average_start_end=(6.0, 7.0)), "train")
    out = lo.label_output(_run(), "train")
    assert lo.is_label(out) and out.data["text/markdown"] == f"*{text}*"
    assert not lo.is_label(new_output("stream", name="stdout", text=text))


def _smoke_and_stored():
    stored = new_notebook(cells=[
        _cell("train", "train()", [lo.label_output(_run(), "train"), new_output("stream", name="stdout", text="900 steps\n")],
              ["nbval-ignore-output", lo.LAPTOP_TAG]),
        _cell("plot", "plot()", [new_output("stream", name="stdout", text="smoke plot\n")], [lo.LAPTOP_TAG]),
        _cell("other", "x", [new_output("stream", name="stdout", text="old\n")]),
    ])
    fresh = new_notebook(cells=[
        _cell("train", "train()", [new_output("stream", name="stdout", text="20 steps\n")], ["nbval-ignore-output", lo.LAPTOP_TAG]),
        _cell("plot", "plot()", [new_output("stream", name="stdout", text="smoke plot 2\n")], [lo.LAPTOP_TAG]),
        _cell("other", "x", [new_output("stream", name="stdout", text="new\n")]),
    ])
    return fresh, stored


def test_a_smoke_refresh_keeps_the_laptop_outputs_and_refreshes_everything_else():
    fresh, stored = _smoke_and_stored()
    kept, missing = lo.keep_laptop_outputs(fresh, stored)
    assert (kept, missing) == (["train"], ["plot"])
    train, plot, other = fresh.cells
    assert lo.has_laptop_run(train) and train.outputs[1].text == "900 steps\n"
    assert plot.outputs[0].text == "smoke plot 2\n"                 # no laptop run stored: the smoke output, reported
    assert other.outputs[0].text == "new\n"                         # untagged: refreshed as before
    assert "nbval-ignore-output" in plot.metadata["tags"]            # nbval never compares a laptop-output cell
    assert "nbval-ignore-output" not in other.metadata["tags"]


def test_storing_a_laptop_run_changes_only_the_tagged_cells_outputs_each_after_its_label():
    fresh, target = _smoke_and_stored()
    executed = nbformat.from_dict(fresh)
    executed.cells[0].outputs = [new_output("stream", name="stdout", text="900 steps in 170 s\n")]
    executed.cells[1].outputs = [new_output("display_data", data={"image/png": "iVBO", "text/plain": "<Figure>"})]
    executed.cells[2].outputs = [new_output("stream", name="stdout", text="laptop other\n")]
    for k, c in enumerate(executed.cells):
        c.execution_count = k + 3
    assert lo.store_laptop_outputs(target, executed, _run()) == ["train", "plot"]
    train, plot, other = target.cells
    assert [lo.is_label(o) for o in train.outputs] == [True, False] and train.outputs[1].text == "900 steps in 170 s\n"
    assert lo.label(_run(), "train") == train.outputs[0].data["text/plain"]
    assert lo.is_label(plot.outputs[0]) and plot.outputs[1].data["text/plain"] == "<Figure>"
    assert other.outputs[0].text == "old\n"                          # an untagged cell keeps its smoke output
    assert all("nbval-ignore-output" in c.metadata["tags"] for c in (train, plot))
    assert (train.execution_count, plot.execution_count) == (3, 4)  # nbval fails a cell with outputs and no count


def test_storing_refuses_a_cell_edited_during_the_run_or_one_that_raised():
    fresh, target = _smoke_and_stored()
    target.cells[0].source = "train(steps=5)"
    with pytest.raises(lo.LaptopOutputError, match="cell train was edited while the laptop run ran"):
        lo.store_laptop_outputs(target, fresh, _run())
    fresh, target = _smoke_and_stored()
    fresh.cells[1].outputs = [new_output("error", ename="NameError", evalue="name 'losses' is not defined", traceback=[])]
    with pytest.raises(lo.LaptopOutputError, match="cell plot raised NameError"):
        lo.store_laptop_outputs(target, fresh, _run())
    assert target.cells[0].outputs[1].text == "900 steps\n"         # nothing stored
    with pytest.raises(lo.LaptopOutputError, match="printed no 'precision: ...' line"):
        lo.precision_of(fresh)


def test_the_student_version_keeps_a_laptop_cells_text_but_not_its_errors_or_progress_bars():
    blank = new_code_cell("loss_fn = None", id="loss_fn")
    blank.metadata["nbgrader"] = dict(schema_version=3, grade_id="loss_fn", points=0, grade=False, solution=True,
                                      locked=False)
    out = [lo.label_output(_run(), "train"), new_output("stream", name="stdout", text="900 steps\n"),
           new_output("stream", name="stderr", text=" 50%|#####     | 450/900\r")]
    nb = new_notebook(cells=[blank, _cell("train", "train(loss_fn)", out, ["nbval-ignore-output", lo.LAPTOP_TAG]),
                             _cell("plain", "print(loss_fn)", [new_output("stream", name="stdout", text="MSELoss()\n")])])
    plain = nbformat.from_dict(nb)
    nb, _ = ClearAnswerOutputs().preprocess(nb, {})
    kept = nb.cells[1].outputs
    assert len(kept) == 2 and lo.is_label(kept[0]) and kept[1].text == "900 steps\n"
    assert nb.cells[2].outputs == []                                 # an untagged cell printing a blank: cleared
    plain, _ = ClearAnswerOutputs(run_output_tags=set()).preprocess(plain, {})
    assert plain.cells[1].outputs == []                              # the tag is what keeps them


# ----------------------------------------------------------------------------- the course's notebooks 4 and 6
RUNS = lo.read_runs()


def _pairs():
    for rel in TRAINING_FILLED:
        for folder in ("source", "release"):
            yield rel, folder


@pytest.mark.parametrize("rel,folder", list(_pairs()))
def test_the_training_filled_cells_show_a_labelled_laptop_run_not_the_smoke_run(rel, folder):
    nb = nbformat.read(NOTEBOOKS / folder / rel, as_version=4)
    cells = {c.get("id"): c for c in lo.laptop_cells(nb)}
    assert TRAINING_FILLED[rel] <= set(cells), f"{folder}/{rel}: tag {sorted(TRAINING_FILLED[rel] - set(cells))} " \
                                               f"{lo.LAPTOP_TAG}"
    assert rel in RUNS, f"{lo.LAPTOP_JSON.name} has no laptop run of {rel}: tools/notebook_outputs.py --profile laptop"
    run = RUNS[rel]
    for cid, cell in cells.items():
        assert "nbval-ignore-output" in cell.metadata["tags"], cid
        assert folder == "release" or cell.execution_count, f"{cid}: nbval fails a stored output with no count"
        assert lo.has_laptop_run(cell), f"{folder}/{rel}, cell {cid}: no laptop run stored"
        assert cell.outputs[0].data["text/plain"] == lo.label(run, cid), f"{cid}: the label is not the JSON's"
        text = "".join(_text(o) for o in cell.outputs[1:])
        assert cell.outputs[1:], f"{cid}: a label and no output"
        assert "smoke" not in text and "of 8 read as" not in text and "/8 = " not in text, f"{cid}: a smoke run's output"
    recipe = getattr(PROFILES["laptop"], RECIPE[rel])
    summary = "".join(_text(o) for o in cells[min(TRAINING_FILLED[rel])].outputs)
    assert re.search(rf"\b{recipe.steps} steps in ", summary), f"{rel}: not a laptop-recipe run ({recipe.steps} steps)"
    cid, pattern = VERDICT[rel]
    found = re.search(pattern, "".join(_text(o) for o in cells[cid].outputs))
    assert found and int(found.groups()[-1]) >= PROFILES["laptop"].n_samples, f"{cid}: not the laptop run's verdict"


@pytest.mark.parametrize("rel", sorted(TRAINING_FILLED))
def test_the_laptop_run_is_recorded_and_still_matches_the_cells_code(rel):
    nb = nbformat.read(NOTEBOOKS / "source" / rel, as_version=4)
    assert rel in RUNS, f"{lo.LAPTOP_JSON.name} has no laptop run of {rel}"
    run = RUNS[rel]
    assert run.precision in ("bf16", "fp32") and run.precision_line.startswith(f"precision: {run.precision}")
    assert run.seconds > sum(run.cell_seconds.values()) * 0.9 and run.kernel_cpu_seconds > 0
    assert not lo.stale_cells(nb, run), f"cells {lo.stale_cells(nb, run)} changed since the laptop run: re-make it"
    assert run.profile == PROFILES["laptop"].describe(), \
        f"the laptop profile changed since the run of {run.date} ({run.profile!r}): re-make it"


@pytest.mark.parametrize("rel", sorted(TRAINING_FILLED))
def test_the_student_version_shows_the_same_laptop_outputs_and_no_solution_line(rel):
    src = {c.get("id"): c for c in nbformat.read(NOTEBOOKS / "source" / rel, as_version=4).cells}
    released = lo.laptop_cells(nbformat.read(NOTEBOOKS / "release" / rel, as_version=4))
    assert {c.get("id") for c in released} >= TRAINING_FILLED[rel], f"release/{rel}: run ./course release"
    solution = [line.strip() for c in src.values() if c.metadata.get("nbgrader", {}).get("solution")
                for line in c.source.splitlines() if len(line.strip()) > 8 and "SOLUTION" not in line]
    assert solution
    for cell in released:
        outs = src[cell.get("id")].outputs
        assert [_text(o) for o in cell.outputs] == [_text(o) for o in outs if o.get("name") != "stderr"], cell.get("id")
        for line in solution:
            assert all(line not in _text(o) for o in cell.outputs), f"{cell.get('id')}: prints {line!r}"
