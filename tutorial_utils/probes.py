"""What a graded (hidden) test cell runs: ``submit("<grade id>", <the student's object>)``.

While autograding (the grader puts this test's inputs, ``<grade id>.pt``, in the folder named by
``DDPM_GRADER_INPUTS`` just before this cell runs and removes them right after) ``submit`` only runs
the stage's probe (``tutorial_utils.checks``) on the grader's inputs -- its random draws included -- and shows
the record as this cell's output: plain tensors, numbers and strings, ``torch.save``-d and base64-encoded.  The
grader reads it outside the kernel against the fields and shapes its own inputs declare, judges it against its
own expected values, and replaces the output with the verdict; nothing done inside the kernel changes what the
record is judged against.

Anywhere else ``submit`` judges right here if the course's grading tooling is installed (it registers a judge
under the entry-point group ``tutorial_utils.graded_judge``, as the instructor's runs of the source notebooks
need), and otherwise only says that the grader runs this test.
"""
from __future__ import annotations

import base64
import io
import os
from importlib.metadata import distributions

import torch

from .checks import RECORDS

__all__ = ["submit", "encode", "PROBES", "RECORD_MIME", "INPUTS_ENV", "JUDGE_ENTRY_POINTS"]

RECORD_MIME = "application/x-ddpm-grader-record"
INPUTS_ENV = "DDPM_GRADER_INPUTS"
JUDGE_ENTRY_POINTS = "tutorial_utils.graded_judge"


# probe name -> function(obj, inputs) -> the plain record a graded cell shows
def _run(cls, obj, inputs):
    return cls.probe(obj, inputs)


PROBES = {kind: (lambda obj, inputs, cls=cls: _run(cls, obj, inputs).to_plain(inputs)) for kind, cls in RECORDS.items()}


def encode(grade_id: str, kind: str, plain: dict) -> str:
    """A record as a graded cell shows it: base64 of ``torch.save({"grade_id", "kind", "record"})``."""
    buf = io.BytesIO()
    torch.save({"grade_id": grade_id, "kind": kind, "record": plain}, buf)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _installed_judge():
    """The judge an installed package registers for graded cells run outside the grader, or None.  Every
    distribution is asked (not only the first of each name: a stale ``*.egg-info`` in the working directory
    would hide the installed one)."""
    for dist in distributions():
        for ep in dist.entry_points:
            if ep.group == JUDGE_ENTRY_POINTS:
                try:
                    return ep.load()
                except ImportError:      # metadata without the package (a copy of the course without its tooling)
                    continue
    return None


def submit(grade_id: str, obj) -> None:
    """Run the graded test ``grade_id`` on ``obj``: hand the record to the grader, or judge it here."""
    inputs_dir = os.environ.get(INPUTS_ENV)
    if not inputs_dir:
        judge = _installed_judge()
        if judge is None:
            print(f"[{grade_id}: a graded test, run by the grader on its own inputs when it grades your notebook]")
        else:
            judge(grade_id, obj)            # raises SelfCheckError when the answer is wrong
        return
    spec = torch.load(os.path.join(inputs_dir, f"{grade_id}.pt"), weights_only=True)
    cls = RECORDS[spec["probe"]]
    record = _run(cls, obj, spec["inputs"])
    from IPython.display import display
    display({RECORD_MIME: encode(grade_id, cls.kind, record.to_plain(spec["inputs"])),
             "text/plain": f"[result of {grade_id} for the grader]"}, raw=True)
