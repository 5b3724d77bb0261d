"""ddpm_instructor.execute: GuardedExecute runs every cell it can, whatever a notebook does, in real kernels.

The kernels run unconfined here (``SandboxKernelManager.mode = "off"``: the sandbox is tests/test_sandbox.py's) with
small limits, so the whole file takes seconds: one notebook that loops, floods, exits and has a demonstration cell.
"""
from __future__ import annotations

import os

import nbformat
from nbformat.v4 import new_code_cell
from traitlets.config import Config

from ddpm_instructor.execute import GuardedExecute
from ddpm_instructor.notebook_run import run_record
from ddpm_instructor.sandbox import NOTES, SandboxKernelManager

TIMEOUT = 3


def executor(**traits) -> GuardedExecute:
    c = Config({"SandboxKernelManager": {"mode": "off"}, "OutputCap": {"max_output_chars": 1000}})
    c.GuardedExecute.update({"timeout": TIMEOUT, "notebook_timeout": 120, **traits})
    return GuardedExecute(config=c)


def graded(source, gid):
    return new_code_cell(source, metadata={"nbgrader": {"grade": True, "solution": False, "grade_id": gid,
                                                        "points": 1}})


def stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


def errors(cell) -> list[str]:
    return [o.ename for o in cell.outputs if o.output_type == "error"]


def test_a_bad_cell_costs_only_itself(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        new_code_cell("x = 41"),                                                   # 0: re-run after each restart
        new_code_cell("while True:\n    pass"),                                    # 1: stopped after TIMEOUT s
        new_code_cell("print(x + 1)"),                                             # 2
        new_code_cell("print('y' * 5000)"),                                        # 3: cut at 1000 characters
        new_code_cell("import os\nos._exit(1)"),                                   # 4: kills the kernel
        new_code_cell("print('demo')", metadata={"tags": ["grader-skip"]}),        # 5: not run
        graded("print('graded', x)", "test_x"),                                    # 6: tagged, graded: runs
    ])
    nb.cells[6].metadata["tags"] = ["grader-skip"]
    resources = {"metadata": {"path": str(tmp_path)}}
    executor().preprocess(nb, resources)
    c = nb.cells
    assert errors(c[0]) == [] and errors(c[1]) == ["CellTimeout"] and f"{TIMEOUT} s" in c[1].outputs[-1].evalue
    assert stdout(c[2]) == "42\n"
    assert stdout(c[3]) == "y" * 1000 and "output cut here" in c[3].outputs[-1].text
    assert errors(c[4]) == ["KernelDied"]
    assert "demonstration cell" in stdout(c[5]) and "demo" not in stdout(c[5]).replace("demonstration", "")
    assert stdout(c[6]) == "graded 41\n"
    run = run_record(resources)
    assert run.executed and run.seconds >= TIMEOUT and run.slowest_cell[1].startswith("cell 3")
    said = "\n".join(run.notes)
    assert NOTES["off"] in said
    assert f"cell 3 (`while True:`) was stopped after {TIMEOUT} s" in said
    assert "The output of cell 5 (`print('y' * 5000)`) was longer than the grader keeps" in said
    assert "The kernel died (or was told to exit) in cell 6" in said


class NoKernel(SandboxKernelManager):
    async def _async_start_kernel(self, **kw):
        raise RuntimeError("no kernel today")

    start_kernel = _async_start_kernel


def test_when_no_kernel_starts_every_cell_carries_an_error_and_the_run_says_why(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[new_code_cell("x = 1"), graded("print(x)", "test_x")])
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="a stored pass\n")]
    resources = {"metadata": {"path": str(tmp_path)}}
    executor(kernel_manager_class=NoKernel).preprocess(nb, resources)
    assert [errors(c) for c in nb.cells] == [["NotRun"], ["NotRun"]]
    run = run_record(resources)
    assert not run.executed and any("could not be executed" in n and "no kernel today" in n for n in run.notes)


def test_the_notebook_budget_stops_the_rest(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[new_code_cell("import time\ntime.sleep(30)"), new_code_cell("print(1)")])
    resources = {"metadata": {"path": str(tmp_path)}}
    executor(timeout=60, notebook_timeout=TIMEOUT).preprocess(nb, resources)
    stopped = [o for o in nb.cells[0].outputs if o.output_type == "error"][0]
    assert stopped.ename == "CellTimeout" and stopped.evalue.endswith(f"{TIMEOUT} s time budget. The cells after it "
                                                                      "were not run.")
    assert errors(nb.cells[1]) == ["NotebookTimeout"]
    assert any(f"used up its {TIMEOUT} s time budget" in n for n in run_record(resources).notes)


def test_inputs_reach_the_kernel_manager_not_the_environment(tmp_path):
    before = dict(os.environ)
    ge = GuardedExecute(config=Config({"SandboxKernelManager": {"inputs_dir": str(tmp_path)}}))
    ge.nb = nbformat.v4.new_notebook()
    km = ge.create_kernel_manager()
    assert km.inputs_dir == str(tmp_path)
    assert dict(os.environ) == before
