"""Run by path by tests/test_kernel_answers.py: a notebook's code cells executed as the grading kernel runs them,
with only a student bundle importable and the grader's inputs in ``DDPM_GRADER_INPUTS``:

    python tests/kernel_harness.py BUNDLE CELLS.json OUT.json

CELLS.json is a list of code cell sources; OUT.json gets one list of nbformat outputs per cell (what ``display``
showed, and an ``error`` output for an exception), which the test hands to ``ddpm_instructor.graded.judge_outputs``
exactly as autograde does.  It runs no sandbox: what it shows is what the bundle itself makes reachable.
"""
from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

from bundle_walker import _isolate


def main(argv) -> int:
    bundle, cells, out = Path(argv[0]).resolve(), json.loads(Path(argv[1]).read_text()), Path(argv[2])
    _isolate(bundle)
    import IPython.display

    outputs: list = []

    def display(*objs, raw=False, **kwargs):
        for obj in objs:
            data = obj if raw and isinstance(obj, dict) else {"text/plain": repr(obj)}
            outputs[-1].append({"output_type": "display_data", "data": data, "metadata": {}})

    IPython.display.display = display
    namespace: dict = {"__name__": "__main__"}
    for i, source in enumerate(cells):
        outputs.append([])
        try:
            exec(compile(source, f"<cell {i}>", "exec"), namespace)
        except Exception as e:
            outputs[-1].append({"output_type": "error", "ename": type(e).__name__, "evalue": str(e)[:500],
                                "traceback": traceback.format_exception_only(type(e), e)})
    out.write_text(json.dumps(outputs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
