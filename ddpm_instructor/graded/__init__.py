"""The graded tests, judged outside the student's kernel.

Each graded (hidden) test cell of a notebook runs ``tutorial_utils.probes.submit("<grade id>", <the student's
object>)``.  While autograding, the kernel (sandboxed, without the reference of the assignment being graded)
only runs the stage's probe on the inputs written here -- the random draws the handed-out code makes (t, ε, z)
included -- and shows the record as the cell's output.  ``judge_outputs`` then, in the grader's own process:

1. refuses a payload longer than ``record_limit(grade_id)`` unread;
2. decodes it (``torch.load(weights_only=True)``: tensors and plain data only, stored zip entries only);
3. reads it back against the fields, shapes and dtypes that **its own** inputs declare
   (``tutorial_utils.checks.core.Record.from_plain``): a missing, extra, short, expanded or oversized entry
   fails the test with a message saying which, before any arithmetic;
4. judges it with the judges of ``tutorial_utils.checks`` against expected values computed here from
   ``solutions`` on its own inputs and its own draws; nothing the record says the code drew is taken as truth.

The inputs are regenerated here from their seeds, never read back from the folder the kernel saw.

Layout: one module per notebook stage (``diffusion``, ``training``, ``sampling``, ``conditional``, ``beyond``, ``flow``)
with its inputs, expected values and declarations: ``TESTS``, one ``Graded`` per grade id, which points at the
``Blank`` of ``tutorial_utils.checks`` it judges (its record, probe and judge); ``SELF_CHECKS``, one ``CheckData``
per ``SelfCheck``.  ``case`` holds what they share.  The self-checks' stored data (``tutorial_utils/check_data.pt``)
is written by the same code on other inputs:

    python -m ddpm_instructor.graded --write-check-data
"""
from __future__ import annotations

import argparse
import base64
import binascii
import functools
import io
import zipfile
from pathlib import Path

import torch

from tutorial_utils.checks import CHECK_DATA, RecordError, SelfCheckError
from tutorial_utils.probes import RECORD_MIME

from ..records import TestResult
from . import applications, beyond, conditional, diffusion, flow, lab2d, sampling, score1d, training
from .case import CONSTANTS, CheckData, Graded

__all__ = ["TESTS", "SELF_CHECKS", "Graded", "CheckData", "CONSTANTS", "write_inputs", "judge_outputs", "record_limit", "decode",
           "judge_record", "run_in_process", "write_check_data", "main"]

STAGES = (score1d, diffusion, training, sampling, conditional, beyond, lab2d, flow, applications)


def _one_each(decls, key, what: str) -> dict:
    """The declarations by ``key``; a key declared twice is an error (a dict literal would keep the last silently)."""
    out = {}
    for d in decls:
        k = key(d)
        if k in out:
            raise ValueError(f"{what} {k!r} is declared twice in ddpm_instructor.graded: keep one declaration.")
        out[k] = d
    return out


# grade id -> Graded.  Inputs differ from the self-checks' (other seeds, sizes, timesteps): tests/test_judges.py
TESTS: dict[str, Graded] = _one_each((g for stage in STAGES for g in stage.TESTS), lambda g: g.grade_id, "the grade id")
# self-check name (its key in check_data.pt) -> CheckData
SELF_CHECKS: dict[str, CheckData] = _one_each((d for stage in STAGES for d in stage.SELF_CHECKS),
                                              lambda d: d.check.name, "the self-check")


@functools.lru_cache(maxsize=None)
def _inputs(grade_id: str) -> dict:
    return TESTS[grade_id].make_inputs()


@functools.lru_cache(maxsize=None)
def _expected(grade_id: str) -> dict:
    return TESTS[grade_id].expected(_inputs(grade_id))


def write_inputs(directory: Path, grade_ids=None) -> list[Path]:
    """The inputs of every graded test (``{"probe", "inputs"}``), one file per grade id, for the kernel to read."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for gid in grade_ids or TESTS:
        path = directory / f"{gid}.pt"
        torch.save({"probe": TESTS[gid].kind, "inputs": TESTS[gid].make_inputs()}, path)
        written.append(path)
    return written


def record_limit(grade_id: str) -> int:
    """The longest base64 payload (characters) a record of ``grade_id`` can take: its declared tensors in float64,
    its texts at full length, the serialisation's overhead per entry, and a quarter more."""
    nbytes, entries = TESTS[grade_id].blank.record.size_bound(_inputs(grade_id))
    return int((nbytes + 1024 * entries + 16_384) * 4 / 3 * 1.25)


def decode(payload: str, limit: int | None = None) -> dict:
    """A record shown by a graded cell: base64 of ``torch.save``; only stored (uncompressed) zip entries no larger
    in total than the payload, read with ``weights_only=True`` (plain data).  ``limit``: the most characters
    accepted (``record_limit``); a longer payload is refused unread."""
    if limit is not None and len(payload) > limit:
        raise RecordError(f"the result is {len(payload):,} characters long; a record of this test has at most {limit:,}.")
    try:
        raw = base64.b64decode(payload.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as e:
        raise RecordError(f"the result is not base64 ({e}).") from None
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            infos = zf.infolist()
    except zipfile.BadZipFile:
        raise RecordError("the result is not a torch.save archive.") from None
    if any(i.compress_type != zipfile.ZIP_STORED for i in infos) or sum(i.file_size for i in infos) > len(raw):
        raise RecordError("the result's archive holds compressed or oversized entries, which torch.save never writes.")
    data = torch.load(io.BytesIO(raw), weights_only=True)
    if not isinstance(data, dict) or not {"grade_id", "record"} <= set(data) <= {"grade_id", "kind", "record"}:
        raise RecordError("the result is not a grader record.")
    return data


def judge_record(grade_id: str, plain) -> tuple[bool, str]:
    """(passed, message) for one decoded record, read against this grader's own inputs and judged against the
    expected values computed here."""
    case = TESTS[grade_id]
    try:
        rec = case.blank.record.from_plain(plain, _inputs(grade_id))
    except RecordError as e:
        return False, f"the result of this test is not one its probe writes: {e} Nothing earned."
    try:
        return True, case.blank.judge(rec, _inputs(grade_id), case.expected_for(_inputs(grade_id), _expected(grade_id),
                                                                               rec))
    except SelfCheckError as e:
        return False, str(e)
    except Exception as e:          # a judge that cannot cope with what it read earns nothing, and says so
        return False, f"the result of this test could not be judged ({type(e).__name__}: {str(e)[:200]})."


def judge_outputs(grade_id: str, outputs: list, inputs_dir: Path, max_points: float) -> TestResult:
    """Judge a graded cell from its outputs: exactly one record for this grade id, else 0 points with the reason.
    (``inputs_dir`` is where the kernel read its inputs; they are regenerated here, never read back.)"""
    def failed(message: str) -> TestResult:
        return TestResult(grade_id, max_points, False, message)
    if grade_id not in TESTS:
        return failed(f"the grader has no test called {grade_id}.")
    records, errors = [], []
    for out in outputs:
        if out.get("output_type") == "error":
            errors.append(f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"[:300])
        payload = (out.get("data") or {}).get(RECORD_MIME)
        if isinstance(payload, str):
            records.append(payload)
    if len(records) != 1:
        why = errors[0] if errors else ("it produced no result" if not records else "it produced more than one result")
        return failed(f"this test could not run your code ({why}).")
    try:
        data = decode(records[0], record_limit(grade_id))
    except RecordError as e:
        return failed(f"{e} Nothing earned.")
    except Exception as e:
        return failed(f"the result of this test could not be read ({type(e).__name__}); nothing earned.")
    if data["grade_id"] != grade_id or data.get("kind", TESTS[grade_id].kind) != TESTS[grade_id].kind:
        return failed("the result shown in this cell belongs to another test.")
    passed, message = judge_record(grade_id, data["record"])
    return TestResult(grade_id, max_points, passed, message, points=max_points if passed else 0.0)


def run_in_process(grade_id: str, obj) -> str:
    """The instructor's own run of a graded test (source notebooks under nbval, tests): probe and judge here;
    raises ``SelfCheckError`` when the answer is wrong.  Registered as ``submit``'s judge (the entry point
    ``tutorial_utils.graded_judge`` in pyproject.toml)."""
    case = TESTS[grade_id]
    inputs = case.make_inputs()
    rec = case.blank.probe(obj, inputs)
    return case.blank.judge(rec, inputs, case.expected_for(inputs, case.expected(inputs), rec))


def write_check_data(path: Path = CHECK_DATA) -> Path:
    """The self-checks' fixed inputs and expected values, computed from the reference (stored in tutorial_utils)."""
    data = {}
    for name, stored in SELF_CHECKS.items():
        inputs = stored.make_inputs()
        data[name] = {"inputs": inputs, "expected": stored.expected(inputs)}
    torch.save(data, path)
    return Path(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ddpm_instructor.graded", description=__doc__.split("\n\n")[0])
    ap.add_argument("--write-check-data", action="store_true", help=f"rewrite {CHECK_DATA}")
    args = ap.parse_args(argv)
    if args.write_check_data:
        p = write_check_data()
        print(f"wrote {p} ({p.stat().st_size / 1024:.0f} KB)")
    return 0
