"""Run a submitted notebook's cells for ``python -m ddpm_instructor autograde``, whatever the notebook does.

``GuardedExecute`` replaces nbgrader's ``Execute`` preprocessor so that one bad submission can never stop the batch
or hide what the student got right:

* every code cell gets at most ``timeout`` seconds and the whole notebook at most ``notebook_timeout`` seconds; a
  cell that runs too long is stopped, marked with a readable error, and grading continues;
* when the kernel dies (``os._exit``, a segfault, running out of memory) or hangs, a fresh kernel is started, the
  cells before the failing one are re-run (outputs discarded) and grading continues after it (at most
  ``max_restarts`` times);
* cells tagged with one of ``skip_tags`` (demonstrations) are not run, unless they are graded or answer cells;
* a cell the grader never gets to carries a "not run" error (nbgrader gives a graded cell without one full marks);
* outputs are capped while they stream in (``output_cap.OutputCap``);
* the kernel runs in the sandbox (``sandbox.SandboxKernelManager``), never with this process's environment;
* a graded test's inputs are in the kernel's inputs folder only while its own cell runs (``_inputs_for``): before,
  after and between graded cells the folder is empty, so no cell can read another test's inputs.

What happened (notes in plain words, whether the notebook ran, its slowest cell, the time taken) goes into the
notebook's run record (``notebook_run``).  The next preprocessors in the pipeline (``ddpm_instructor.coursedir``)
judge the graded cells (``judge_graded.JudgeGradedCells``) and write the notes (``grader_notes.GraderNotes``).
"""
from __future__ import annotations

import contextlib
import copy
import time

from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.v4 import new_output
from nbgrader.preprocessors import Execute
from traitlets import Integer, List, Type

from .notebook_run import error_output, is_graded_test, run_record
from .output_cap import OutputCap
from .sandbox import SandboxKernelManager

__all__ = ["GuardedExecute"]


class GuardedExecute(Execute):
    """nbgrader's Execute, hardened for untrusted and broken submissions (see the module docstring)."""

    timeout = Integer(120, help="Seconds one code cell may run before it is stopped.").tag(config=True)
    notebook_timeout = Integer(900, help="Seconds all cells of one notebook may take together.").tag(config=True)
    max_restarts = Integer(4, help="Kernel restarts allowed per notebook before the rest is skipped.").tag(config=True)
    skip_tags = List(["grader-skip"], help="Cells with one of these tags are not run while grading (demo-only "
                     "cells such as long sampling runs); graded and answer cells always run.").tag(config=True)
    kernel_manager_class = Type(SandboxKernelManager, config=True,
                                help="Kernel manager; the default confines the kernel with bubblewrap.")

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", SandboxKernelManager)
        super().__init__(*args, **kwargs)
        self._notes: list[str] = []
        self.output_cap = OutputCap(parent=self)

    # ------------------------------------------------------------------ driving the notebook
    def preprocess(self, nb, resources=None, km=None):
        self._notes: list[str] = []
        self._bad: set[int] = set()
        self._restarts = 0
        self._deadline = time.monotonic() + self.notebook_timeout
        self._cell_timeout = self.timeout
        self.output_cap.reset()
        self._gave_up = False
        self._asked_exit = False
        self._slowest = (0.0, "")
        self._executed = True
        self._t0 = time.monotonic()
        self.interrupt_on_timeout = False          # a timeout raises CellTimeoutError; we restart instead
        self.raise_on_iopub_timeout = False
        # nbgrader gives a graded cell full marks when it has no error output: a cell the grader never gets
        # to (the kernel would not start, the batch was stopped, ...) must therefore carry an error.
        for cell in nb.cells:
            if cell.cell_type == "code" and cell.source.strip():
                cell.outputs = [error_output("NotRun", "this cell was not run by the grader.")]
        resources = {} if resources is None else resources
        try:
            nb, _ = super().preprocess(nb, resources, km)
        except Exception as e:                     # kernel could not even start: grade what is there (nothing ran)
            self.log.error("execution failed: %s", e)
            self._executed = False
            self._notes.append(f"The notebook could not be executed ({type(e).__name__}: {str(e)[:300]}).")
        run = run_record(resources)
        run.executed, run.slowest_cell = self._executed, tuple(self._slowest)
        run.notes += self._notes
        run.seconds += time.monotonic() - self._t0
        return nb, resources

    def create_kernel_manager(self):
        """nbclient's (configured as the kernel manager's traits say: its mode, the bundle, the graded tests'
        inputs), plus the kernel manager's note on how the kernel is confined."""
        km = super().create_kernel_manager()
        try:
            note = getattr(km, "note", None)        # how the kernel is confined, when not by bubblewrap
        except Exception:                           # the mode cannot be used: starting the kernel says why
            note = None
        if isinstance(note, str) and note and note not in self._notes:
            self._notes.append(note)
        return km

    def on_cell_executed(self, **kwargs):
        super().on_cell_executed(**kwargs)
        payload = kwargs.get("execute_reply", {}).get("content", {}).get("payload", []) or []
        if any(p.get("source") == "ask_exit" and not p.get("keepkernel") for p in payload):
            self._asked_exit = True        # exit()/quit(): the kernel stops right after this reply

    def _get_timeout(self, cell):
        return max(1, int(self._cell_timeout))

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or not cell.source.strip():
            return cell, resources
        label = self._label(cell, index)
        nbg = cell.metadata.get("nbgrader", {})
        if set(cell.metadata.get("tags", [])) & set(self.skip_tags) and not (nbg.get("grade") or nbg.get("solution")):
            cell.outputs = [new_output("stream", name="stdout", text="(demonstration cell: not run while grading)\n")]
            return cell, resources
        if self._gave_up:
            cell.outputs = [error_output("NotRun", "not run: the kernel failed too many times in this notebook.")]
            return cell, resources
        remaining = self._deadline - time.monotonic()
        if remaining <= 1:
            cell.outputs = [error_output("NotebookTimeout",
                                          f"not run: the notebook used up its {self.notebook_timeout} s time budget.")]
            if not any("time budget" in n for n in self._notes):
                self._notes.append(f"The notebook used up its {self.notebook_timeout} s time budget; "
                                   f"{label} and the cells after it were not run.")
            return cell, resources
        self._cell_timeout = min(self.timeout, remaining)
        self.output_cap.start_cell(index)
        self._asked_exit = False
        started = time.monotonic()
        try:
            with self._inputs_for(cell):
                cell = self.execute_cell(cell, index, store_history=True)
            if self._asked_exit:
                raise DeadKernelError("the cell called exit()")
        except CellTimeoutError:
            limit = int(self._cell_timeout)
            why = (f"stopped: this cell ran longer than {limit} s (an endless loop?). The cells after it were still "
                   "graded." if limit >= self.timeout else f"stopped: the notebook used up its "
                   f"{self.notebook_timeout} s time budget. The cells after it were not run.")
            cell.outputs.append(error_output("CellTimeout", why))
            self._notes.append(f"{label} was stopped after {limit} s; the kernel was restarted and the cells "
                               "before it were re-run, so the rest of the notebook could be graded.")
            self._bad.add(index)
            self._recover(index)
        except DeadKernelError:
            cell.outputs.append(error_output(
                "KernelDied", "the Python kernel stopped while running this cell (exit(), os._exit, a crash, or "
                "running out of memory). A new kernel was started and the cells after this one were still graded."))
            self._notes.append(f"The kernel died (or was told to exit) in {label}; a new kernel was started, the cells before it were "
                               "re-run and the rest of the notebook was graded.")
            self._bad.add(index)
            self._recover(index)
        except Exception as e:                     # anything else nbclient raises: never abort the batch
            cell.outputs.append(error_output(type(e).__name__, f"the grader could not run this cell: {str(e)[:500]}"))
            self._notes.append(f"{label} could not be run ({type(e).__name__}).")
            self._bad.add(index)
            self._recover(index)
        took = time.monotonic() - started
        if took > self._slowest[0]:
            self._slowest = (round(took, 1), self._label(cell, index))
        if self.output_cap.was_cut(index):
            self._notes.append(f"The output of {label} was longer than the grader keeps and was cut.")
        return cell, self.resources

    def _inputs_for(self, cell):
        """While a graded test cell runs, its inputs (and no other test's) are in the kernel's inputs folder."""
        stage = getattr(self.km, "graded_inputs", None)
        if stage is None or not is_graded_test(cell):
            return contextlib.nullcontext()
        return stage(str(cell.metadata["nbgrader"].get("grade_id", "")))

    def _label(self, cell, index):
        """How the notes name a cell: its number in the feedback (the notes cell comes first) and its start."""
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid:
            return f"cell {index + 2} (`{gid}`)"
        first = next((l.strip() for l in cell.source.splitlines() if l.strip() and not l.strip().startswith("#")), "")
        first = first if len(first) <= 40 else first[:37] + "..."
        return f"cell {index + 2}" + (f" (`{first.replace('`', '')}`)" if first else "")

    # ------------------------------------------------------------------ kernel recovery
    async def _async_fresh_kernel(self):
        km, kc = self.km, self.kc
        self.kc = None
        try:
            if kc is not None:
                kc.stop_channels()
        except Exception:
            pass
        if km is not None:
            try:
                await km.shutdown_kernel(now=True)
            except Exception:
                pass
            try:
                await km.cleanup_resources()
            except Exception:
                pass
        self.km = self.create_kernel_manager()
        await self.async_start_new_kernel()
        await self.async_start_new_kernel_client()

    def _recover(self, failed_index: int):
        """New kernel, then re-run the code cells before ``failed_index`` (not the failed ones)."""
        if self._deadline - time.monotonic() <= 1:
            return                                  # out of time anyway: the remaining cells are marked not run
        while True:
            self._restarts += 1
            if self._restarts > self.max_restarts:
                self._gave_up = True
                self._notes.append(f"The kernel failed {self.max_restarts} times; the remaining cells were not run.")
                return
            try:
                run_sync(self._async_fresh_kernel)()
            except Exception as e:
                self._gave_up = True
                self._notes.append(f"A new kernel could not be started ({type(e).__name__}); the remaining cells "
                                   "were not run.")
                return
            replay_failed = None
            for j in range(failed_index):
                original = self.nb.cells[j]
                if original.cell_type != "code" or not original.source.strip() or j in self._bad:
                    continue
                remaining = self._deadline - time.monotonic()
                if remaining <= 1:
                    return
                self._cell_timeout = min(self.timeout, remaining)
                scratch = copy.deepcopy(original)
                try:
                    with self._inputs_for(scratch):
                        self.execute_cell(scratch, j, store_history=False)
                except Exception:
                    replay_failed = j
                    break
                finally:
                    self.nb.cells[j] = original
            if replay_failed is None:
                return
            self._bad.add(replay_failed)
            self._notes.append(f"{self._label(self.nb.cells[replay_failed], replay_failed)} failed again while "
                               "re-running; it was skipped.")

    # ------------------------------------------------------------------ output caps
    def output(self, outs, msg, display_id, cell_index):
        before = len(outs)
        result = super().output(outs, msg, display_id, cell_index)
        if len(outs) > before:
            self.output_cap.take(outs, cell_index)
        return result
