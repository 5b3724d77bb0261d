"""Judge the graded cells of one notebook in a bounded child process, never in the grader's own.

A graded cell's output is a record written by code the grader does not trust.  Decoding and judging it can cost
far more than its size: a few kilobytes of stride-0 (expanded) tensor stand for gigabytes once any arithmetic
touches them, and a crafted record can make a judge work for as long as it likes.  So:

* the grader's own process only gathers the cells' outputs (it never imports PyTorch, never decodes a record)
  and sends them to a child process with a time limit per test (``timeout_s``, wall clock, enforced by killing
  the child) and a memory limit (``memory_mb`` of address space beyond what Python and PyTorch take at start,
  ``RLIMIT_AS``), plus a CPU-time limit as a backstop;
* in the child, ``graded.judge_outputs`` refuses a payload longer than ``graded.record_limit(grade_id)`` unread
  and an expanded, oversized or mis-shaped entry before any arithmetic (the record's own validation); the limits
  here bound whatever that misses: a judge that allocates too much fails with its error, one that runs too long
  is stopped;
* a test the child does not finish (killed after its time, or the child dies) costs that test only, with a note
  saying so; the remaining tests are judged in a fresh child.

The children are forked from a server process that has imported PyTorch and the judges once
(``multiprocessing``'s *forkserver*), so each notebook gets a fresh process without paying PyTorch's import
again.  The child sends its verdicts back as JSON (never pickle), one message per test.

    batch = judge_cells([GradedCell.from_outputs(gid, points, cell.outputs), ...], inputs_dir, 30, 1024)
    batch.results      # [TestResult], in the order given
"""
from __future__ import annotations

import json
import multiprocessing
import os
import resource
from dataclasses import asdict, dataclass, field

from .records import TestResult

__all__ = ["GradedCell", "JudgeBatch", "JudgingError", "judge_cells"]

READY_TIMEOUT_S = 300                       # starting a child (the first one imports PyTorch in the fork server)
MAX_MESSAGE = 1 << 20                       # the largest verdict message the grader reads from a child
PRELOAD = ["ddpm_instructor.graded", "solutions.beyond"]


class JudgingError(RuntimeError):
    """The grader could not judge at all (no child process would start): a grader fault, not the student's."""


@dataclass
class GradedCell:
    """What a judging child needs of one graded cell: its grade id, points, and the outputs that can matter (error
    outputs, cut short; the text entries of displayed data, among them the record); streams and the rest stay
    behind.  Nothing here reads the record: the grader's process never imports PyTorch."""
    grade_id: str
    max_points: float
    outputs: list = field(default_factory=list)

    @classmethod
    def from_outputs(cls, grade_id: str, max_points: float, outputs: list) -> "GradedCell":
        kept = []
        for out in outputs or []:
            if out.get("output_type") == "error":
                kept.append({"output_type": "error", "ename": str(out.get("ename", "Error"))[:200],
                             "evalue": str(out.get("evalue", ""))[:1000], "traceback": []})
            data = out.get("data")
            if isinstance(data, dict):
                text = {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)
                        and not k.startswith("image/")}
                if text:
                    kept.append({"output_type": "display_data", "metadata": {}, "data": text})
        return cls(grade_id, float(max_points), kept)


@dataclass
class JudgeBatch:
    """The verdicts on one notebook's graded cells, and what the grader had to stop."""
    results: list = field(default_factory=list)     # [TestResult], in the order of the cells given
    notes: list = field(default_factory=list)       # notebook-level notes (a test the grader stopped)
    peak_mb: float = 0.0                            # the largest resident size a judging child reached
    children: int = 0                               # how many child processes it took


# --------------------------------------------------------------------------- the grader's side
def judge_cells(cells: list, inputs_dir, timeout_s: float, memory_mb: int, judge=None) -> JudgeBatch:
    """Judge ``cells`` ([GradedCell]) against the graded inputs in ``inputs_dir``, each test in at most
    ``timeout_s`` seconds and ``memory_mb`` MB, in child processes.  ``judge`` (a module-level function with
    ``graded.judge_outputs``'s signature) replaces the judge, for tests.  Raises ``JudgingError`` only when no
    child process will start."""
    batch = JudgeBatch(results=[None] * len(cells))
    pending = list(range(len(cells)))
    while pending:
        done = _run_child([cells[i] for i in pending], str(inputs_dir), timeout_s, memory_mb, judge, batch)
        for k, res in enumerate(done):
            batch.results[pending[k]] = res
        pending = pending[len(done):]
    return batch


def _context():
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(PRELOAD)
    return ctx


def _receive(conn, timeout_s: float):
    """The next message from a child: a dict, ``"timeout"``, or ``"dead"`` (it ended or sent garbage)."""
    if not conn.poll(timeout_s):
        return "timeout"
    try:
        msg = json.loads(conn.recv_bytes(MAX_MESSAGE).decode("utf-8"))
    except (EOFError, OSError, ValueError, UnicodeDecodeError):
        return "dead"
    return msg if isinstance(msg, dict) else "dead"


def _stop(proc) -> str:
    """Kill a child (and anything it started: it leads its own process group) and say how it ended."""
    if proc.is_alive():
        for kill in (lambda: os.killpg(proc.pid, 9), proc.kill):
            try:
                kill()
            except (ProcessLookupError, PermissionError, OSError):
                pass
    proc.join(10)
    code = proc.exitcode
    return f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"


def _run_child(cells: list, inputs_dir: str, timeout_s: float, memory_mb: int, judge, batch: JudgeBatch) -> list:
    """Judge ``cells`` in one child until it finishes or one test is stopped: the verdicts it got, the stopped
    test's (a failure with a note) last; the caller sends the rest to a fresh child."""
    ctx = _context()
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child_main, args=(send, cells, inputs_dir, memory_mb, timeout_s, judge), daemon=True)
    proc.start()
    send.close()
    batch.children += 1
    done = []
    try:
        if _receive(receive, READY_TIMEOUT_S) != {"ready": True}:
            raise JudgingError(f"the grader's judging process did not start ({_stop(proc)}); see the log.")
        for cell in cells:
            msg = _receive(receive, timeout_s)
            if isinstance(msg, dict) and isinstance(msg.get("result"), dict):
                done.append(_result(cell, msg["result"]))
                batch.peak_mb = max(batch.peak_mb, float(msg.get("peak_mb", 0) or 0))
                continue
            done.append(_stopped(cell, msg, timeout_s, _stop(proc), batch))
            break
    finally:
        receive.close()
        proc.join(1)
        _stop(proc)
    return done


def _result(cell: GradedCell, data: dict) -> TestResult:
    """A child's verdict, taken only for the cell it was asked about, with the cell's own points."""
    passed = data.get("passed") is True and data.get("grade_id") == cell.grade_id
    message = str(data.get("message", ""))[:2000]
    return TestResult(cell.grade_id, cell.max_points, passed, message, points=cell.max_points if passed else 0.0)


def _stopped(cell: GradedCell, why, timeout_s: float, ended: str, batch: JudgeBatch) -> TestResult:
    if why == "timeout":
        message = (f"the grader stopped judging this test after {timeout_s:g} s (the time it allows for judging one "
                   "test); nothing earned.")
    else:
        message = (f"the grader stopped judging this test: its judging process ended without a verdict ({ended}; "
                   f"the limits are {timeout_s:g} s and the memory allowed for judging); nothing earned.")
    batch.notes.append(f"The grader stopped judging `{cell.grade_id}` ({'time limit' if why == 'timeout' else ended}); "
                       "the other tests were judged.")
    return TestResult(cell.grade_id, cell.max_points, False, message)


# --------------------------------------------------------------------------- the child's side
def _vm_bytes() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _limit_self(memory_mb: int, cpu_s: int) -> None:
    """Bound this process before it reads anything untrusted: address space, CPU time, no core dumps."""
    base = _vm_bytes()
    if base is not None:
        cap = base + memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _child_main(conn, cells, inputs_dir, memory_mb, timeout_s, judge) -> None:
    """In the child: limits first, then one verdict per cell (JSON), in order."""
    os.setpgid(0, 0)
    import torch
    torch.set_num_threads(1)
    from . import graded
    judge = judge or graded.judge_outputs
    _limit_self(memory_mb, int(timeout_s * len(cells)) + 30)
    conn.send_bytes(json.dumps({"ready": True}).encode())
    for cell in cells:
        try:
            res = judge(cell.grade_id, cell.outputs, inputs_dir, cell.max_points)
        except MemoryError:                 # the judge needed more than the memory allowed for judging
            res = TestResult(cell.grade_id, cell.max_points, False,
                             f"the grader stopped judging this test at {memory_mb} MB (the memory it allows for "
                             "judging); nothing earned.")
        except Exception as e:              # the judge itself failed: this test is not earned, the others go on
            res = TestResult(cell.grade_id, cell.max_points, False,
                             f"the grader could not judge this test ({type(e).__name__}: {str(e)[:200]}); "
                             "nothing earned.")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        conn.send_bytes(json.dumps({"result": asdict(res), "peak_mb": round(peak, 1)}).encode())
    conn.close()
