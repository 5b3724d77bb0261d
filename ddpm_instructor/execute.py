"""nbgrader plug-ins used by ``python -m ddpm_instructor autograde``.

``GuardedExecute`` replaces nbgrader's ``Execute`` preprocessor so that one bad submission can never
stop the batch or hide what the student got right:

* every code cell gets at most ``timeout`` seconds and the whole notebook at most
  ``notebook_timeout`` seconds; a cell that runs too long is stopped, marked with a readable error,
  and grading continues;
* when the kernel dies (``os._exit``, a segfault, running out of memory) or hangs, a fresh kernel is
  started, the cells before the failing one are re-run (outputs discarded) and grading continues
  after it;
* outputs are capped per cell (``max_output_chars`` of text, ``max_output_bytes`` in all) while they
  stream in, so a submission printing gigabytes cannot fill the grader's memory, the gradebook or
  the feedback;
* the kernel runs in the bubblewrap sandbox (:class:`ddpm_instructor.sandbox.SandboxKernelManager`);
* the graded test cells are judged outside the kernel and outside this process, in a child process with a
  time and a memory limit (``ddpm_instructor.judging``: ``judge_timeout`` seconds per test, ``judge_memory_mb``):
  each one's record is decoded and compared with the reference (``ddpm_instructor.graded``), and its outputs are
  replaced by the verdict (an error output costs its points, nbgrader's rule) and its code by a one-line
  description, so the feedback shows each test's result and message, never its code; a record too large, or
  a test the judge does not finish in time, costs that test only;
* the graded tests' inputs reach the kernel through the kernel manager (``SandboxKernelManager.inputs_dir``,
  mounted read-only), never through this process's environment;
* a graded test cell nbgrader had to put back (missing from the handed-in notebook, by grade id) is noted,
  unless ``collect`` already compared that notebook with the release and said so;
* everything that happened is written, in plain words, in a "Grader notes" cell at the top of the
  autograded notebook (and so in the feedback) and as a typed record (``ddpm_instructor.records``) in
  ``<course>/notes/`` for the grade export.
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path

from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.v4 import new_markdown_cell, new_output
from nbgrader.preprocessors import Execute
from traitlets import Integer, List, Type, Unicode

from . import records
from .judging import GradedCell, judge_cells
from .records import NotebookRun
from .sandbox import SandboxKernelManager

NOTES_MARK = "ddpm_grader_notes"

__all__ = ["GuardedExecute", "NOTES_MARK"]


def _error_output(ename: str, text: str):
    return new_output("error", ename=ename, evalue=text, traceback=[f"\x1b[0;31m{ename}\x1b[0m: {text}"])


def _size(out) -> int:
    if out.get("output_type") == "stream":
        return len(out.get("text", ""))
    if out.get("output_type") == "error":
        return sum(len(x) for x in out.get("traceback", [])) + len(out.get("evalue", ""))
    return sum(len(v) if isinstance(v, str) else len(json.dumps(v)) for v in out.get("data", {}).values())


class GuardedExecute(Execute):
    """nbgrader's Execute, hardened for untrusted and broken submissions (see the module docstring)."""

    timeout = Integer(120, help="Seconds one code cell may run before it is stopped.").tag(config=True)
    notebook_timeout = Integer(900, help="Seconds all cells of one notebook may take together.").tag(config=True)
    max_output_chars = Integer(20_000, help="Text output kept per cell; the rest is cut.").tag(config=True)
    max_output_bytes = Integer(2_000_000, help="All outputs (images included) kept per cell.").tag(config=True)
    max_restarts = Integer(4, help="Kernel restarts allowed per notebook before the rest is skipped.").tag(config=True)
    skip_tags = List(["grader-skip"], help="Cells with one of these tags are not run while grading (demo-only "
                     "cells such as long sampling runs); graded and answer cells always run.").tag(config=True)
    kernel_manager_class = Type(SandboxKernelManager, config=True,
                                help="Kernel manager; the default confines the kernel with bubblewrap.")
    notes_dir = Unicode("", help="Where the typed record of each submission goes (<course>/notes).").tag(config=True)
    inputs_dir = Unicode("", help="The graded tests' inputs (ddpm_instructor.graded.write_inputs); empty: graded "
                         "cells are not judged here.").tag(config=True)
    judge_timeout = Integer(30, help="Seconds the grader may spend judging one graded test's record (in a child "
                            "process); a test it does not finish in time fails with a note.").tag(config=True)
    judge_memory_mb = Integer(1024, help="Memory (MB of address space, beyond what Python and PyTorch take at start) "
                              "the judging process may use.").tag(config=True)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", SandboxKernelManager)
        super().__init__(*args, **kwargs)
        self._notes: list[str] = []

    # ------------------------------------------------------------------ driving the notebook
    def preprocess(self, nb, resources=None, km=None):
        self._notes: list[str] = []
        self._bad: set[int] = set()
        self._restarts = 0
        self._deadline = time.monotonic() + self.notebook_timeout
        self._cell_timeout = self.timeout
        self._truncated: set[int] = set()
        self._out_size: dict[int, int] = {}
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
                cell.outputs = [_error_output("NotRun", "this cell was not run by the grader.")]
        try:
            nb, resources = super().preprocess(nb, resources, km)
        except Exception as e:                     # kernel could not even start: grade what is there (nothing ran)
            self.log.error("execution failed: %s", e)
            self._executed = False
            self._notes.append(f"The notebook could not be executed ({type(e).__name__}: {str(e)[:300]}).")
        self._finish(nb, resources)
        return nb, resources

    def create_kernel_manager(self):
        """nbclient's, plus the graded tests' inputs handed to the kernel manager (it mounts them read-only and tells
        the kernel where they are)."""
        km = super().create_kernel_manager()
        if self.inputs_dir and km.has_trait("inputs_dir"):
            km.inputs_dir = self.inputs_dir
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
            cell.outputs = [_error_output("NotRun", "not run: the kernel failed too many times in this notebook.")]
            return cell, resources
        remaining = self._deadline - time.monotonic()
        if remaining <= 1:
            cell.outputs = [_error_output("NotebookTimeout",
                                          f"not run: the notebook used up its {self.notebook_timeout} s time budget.")]
            if not any("time budget" in n for n in self._notes):
                self._notes.append(f"The notebook used up its {self.notebook_timeout} s time budget; "
                                   f"{label} and the cells after it were not run.")
            return cell, resources
        self._cell_timeout = min(self.timeout, remaining)
        self._out_size[index] = 0
        self._asked_exit = False
        started = time.monotonic()
        try:
            cell = self.execute_cell(cell, index, store_history=True)
            if self._asked_exit:
                raise DeadKernelError("the cell called exit()")
        except CellTimeoutError:
            limit = int(self._cell_timeout)
            why = (f"stopped: this cell ran longer than {limit} s (an endless loop?)"
                   if limit >= self.timeout else f"stopped: the notebook used up its {self.notebook_timeout} s time budget")
            cell.outputs.append(_error_output("CellTimeout", why + ". The cells after it were still graded."))
            self._notes.append(f"{label} was stopped after {limit} s; the kernel was restarted and the cells "
                               "before it were re-run, so the rest of the notebook could be graded.")
            self._bad.add(index)
            self._recover(index)
        except DeadKernelError:
            cell.outputs.append(_error_output(
                "KernelDied", "the Python kernel stopped while running this cell (exit(), os._exit, a crash, or "
                "running out of memory). A new kernel was started and the cells after this one were still graded."))
            self._notes.append(f"The kernel died (or was told to exit) in {label}; a new kernel was started, the cells before it were "
                               "re-run and the rest of the notebook was graded.")
            self._bad.add(index)
            self._recover(index)
        except Exception as e:                     # anything else nbclient raises: never abort the batch
            cell.outputs.append(_error_output(type(e).__name__, f"the grader could not run this cell: {str(e)[:500]}"))
            self._notes.append(f"{label} could not be run ({type(e).__name__}).")
            self._bad.add(index)
            self._recover(index)
        took = time.monotonic() - started
        if took > self._slowest[0]:
            self._slowest = (round(took, 1), self._label(cell, index))
        if index in self._truncated:
            self._notes.append(f"The output of {label} was longer than the grader keeps and was cut.")
        return cell, self.resources

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
            out = outs[-1]
            used = self._out_size.get(cell_index, 0)
            size = _size(out)
            is_text = out.get("output_type") == "stream"
            limit = self.max_output_chars if is_text else self.max_output_bytes
            text_used = sum(len(o.get("text", "")) for o in outs[:-1] if o.get("output_type") == "stream")
            if is_text and text_used + size > self.max_output_chars:
                keep = max(0, self.max_output_chars - text_used)
                outs.pop()
                if keep:
                    out["text"] = out["text"][:keep]
                    outs.append(out)
                self._mark_truncated(outs, cell_index)
            elif not is_text and out.get("output_type") != "error" and used + size > limit:
                outs.pop()
                self._mark_truncated(outs, cell_index)
            else:
                self._out_size[cell_index] = used + size
        return result

    def _mark_truncated(self, outs, cell_index):
        if cell_index not in self._truncated:
            self._truncated.add(cell_index)
            outs.append(new_output("stream", name="stderr",
                                   text=f"\n[grader: output cut here; at most {self.max_output_chars:,} characters "
                                        "of text per cell are kept]\n"))

    # ------------------------------------------------------------------ judging and notes
    def _judge_graded_cells(self, nb) -> list:
        """Judge every graded test cell in a bounded child process and replace its code and outputs by the verdict."""
        cells = [c for c in nb.cells if _is_graded_test(c)]
        asked = [GradedCell.from_outputs(c.metadata["nbgrader"].get("grade_id", "?"),
                                         float(c.metadata["nbgrader"].get("points", 0) or 0), c.outputs) for c in cells]
        batch = judge_cells(asked, self.inputs_dir, self.judge_timeout, self.judge_memory_mb)
        self.log.info("judged %d graded test(s) in %d child process(es), peak %.0f MB", len(cells), batch.children,
                      batch.peak_mb)
        self._notes += batch.notes
        for cell, res in zip(cells, batch.results):
            cell.source = (f"# Graded test `{res.grade_id}` ({res.max_points:g} points): judged by the grader outside "
                           "your notebook.")
            cell.outputs = ([new_output("stream", name="stdout", text=f"\u2713 {res.message}\n")] if res.passed
                            else [_error_output("GradedTestFailed", res.message)])
        return batch.results

    def _submitted_grade_ids(self, student: str, assignment: str, notebook: str) -> set | None:
        """The grade ids of the notebook as handed in (nbgrader's submitted copy); None when it cannot be read."""
        from nbgrader.coursedir import CourseDirectory
        cd = CourseDirectory(parent=self)
        path = Path(cd.format_path(cd.submitted_directory, student, assignment)) / f"{notebook}.ipynb"
        try:
            cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
            return {((c.get("metadata") or {}).get("nbgrader") or {}).get("grade_id") for c in cells} - {None}
        except (OSError, ValueError, AttributeError, TypeError):
            return None

    def _restored_notes(self, nb, student, assignment, notebook, collected) -> list[str]:
        """Graded test cells nbgrader put back (their grade id is not in the handed-in notebook).  Nothing when
        collect filed this notebook: it compared it with the release and its notes already say what was deleted."""
        if notebook in collected.notebooks or not (student and assignment and notebook):
            return []
        handed_in = self._submitted_grade_ids(student, assignment, notebook)
        if handed_in is None:
            return []
        put_back = [c.metadata["nbgrader"].get("grade_id") for c in nb.cells if _is_graded_test(c)]
        return [f"The graded test cell `{gid}` was missing; the original was put back and run."
                for gid in put_back if gid not in handed_in]

    def _finish(self, nb, resources):
        meta = (resources or {}).get("nbgrader", {})
        student, assignment, notebook = meta.get("student"), meta.get("assignment"), meta.get("notebook")
        known = bool(self.notes_dir and student and assignment)
        collected = records.load_collect(self.notes_dir, assignment, student) if known else records.CollectRecord()
        restored = self._restored_notes(nb, student, assignment, notebook, collected)
        tests = self._judge_graded_cells(nb) if self.inputs_dir else []
        notes = list(dict.fromkeys(list(collected.notebooks.get(notebook, [])) + restored + self._notes))
        if known:
            rec = records.load_autograde(self.notes_dir, assignment, student) or records.AutogradeRecord()
            rec.notebooks[notebook] = NotebookRun(executed=self._executed,
                                                  seconds=round(time.monotonic() - self._t0, 1),
                                                  slowest_cell=tuple(self._slowest), notes=notes, tests=tests)
            records.save(rec, records.notes_path(self.notes_dir, assignment, student, "autograde"))
        _insert_notes_cell(nb, notes)


def _is_graded_test(cell) -> bool:
    """An autograded test cell: code, graded, not an answer cell."""
    meta = cell.metadata.get("nbgrader", {})
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def _insert_notes_cell(nb, notes: list[str]) -> None:
    """The "Grader notes" cell at the top of the autograded notebook (and so of the feedback)."""
    nb.cells = [c for c in nb.cells if not c.metadata.get(NOTES_MARK)]
    text = ("**Grader notes** (automatic):\n\n" + "\n".join(f"- {n}" for n in notes)) if notes else \
        "**Grader notes** (automatic): the notebook ran without problems."
    cell = new_markdown_cell(text)
    cell.metadata[NOTES_MARK] = True
    if nb.get("nbformat_minor", 5) < 5:
        cell.pop("id", None)
    nb.cells.insert(0, cell)
