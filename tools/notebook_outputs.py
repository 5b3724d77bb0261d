"""Re-execute the source notebooks in the `fast` profile and store small, reviewable outputs.

    .venv/bin/python tools/notebook_outputs.py [NOTEBOOK ...]     # default: every notebooks/source/*/*.ipynb

nbval (in the test suite) compares each code cell's fresh output with the output stored in the notebook,
except cells marked `# NBVAL_IGNORE_OUTPUT`.  This tool refreshes the stored outputs after you edit a source
notebook, and keeps them small: images are dropped (nbval never compares them), and cells marked
`# NBVAL_IGNORE_OUTPUT` (timings, progress bars, random samples) are stored without output.
Then regenerate the student versions with `./course release`.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
KEEP_MIME = ("text/plain", "text/html", "text/markdown", "text/latex")


def cell_seconds(nb) -> list[tuple[float, str]]:
    """(seconds, first line) of every executed code cell, from nbclient's timing metadata."""
    from datetime import datetime

    times = []
    for cell in nb.cells:
        ex = cell.metadata.get("execution", {})
        if "iopub.execute_input" in ex and "shell.execute_reply" in ex:
            a, b = (datetime.fromisoformat(ex[k].replace("Z", "+00:00"))
                    for k in ("iopub.execute_input", "shell.execute_reply"))
            times.append(((b - a).total_seconds(), cell.source.splitlines()[-1][:60] if cell.source else ""))
    return times


def shrink(nb) -> int:
    """Drop images, widget state and execution timings; clear the outputs of ignored cells."""
    nb.metadata.pop("widgets", None)                 # tqdm's progress-bar widgets: big and never useful
    nb.metadata["language_info"] = {"name": "python"}  # not the executing interpreter's version
    compared = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.metadata.pop("execution", None)
        if "NBVAL_IGNORE_OUTPUT" in cell.source or "NBVAL_SKIP" in cell.source:
            cell.outputs, cell.execution_count = [], None
            continue
        compared += 1
        for out in cell.outputs:
            if "data" in out:
                out["data"] = {k: v for k, v in out["data"].items() if k in KEEP_MIME}
            out.pop("metadata", None) if out.get("output_type") == "stream" else None
            if "metadata" in out:
                out["metadata"] = {}
    return compared


def refresh(path: Path, timeout: int = 1200) -> tuple[float, int]:
    nb = nbformat.read(path, as_version=4)
    env = {"DDPM_PROFILE": "fast", "OMP_NUM_THREADS": "1", **os.environ}   # as in notebooks/conftest.py
    start = time.time()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute(env=env)
    elapsed = time.time() - start
    slow = sorted(cell_seconds(nb), reverse=True)[:3]
    print(f"{path.name}: slowest cells: " + "; ".join(f"{t:.0f} s `{src}`" for t, src in slow))
    compared = shrink(nb)
    nbformat.write(nb, path)
    return elapsed, compared


def main(argv) -> int:
    paths = [Path(p) for p in argv] or sorted((ROOT / "notebooks" / "source").glob("*/*.ipynb"))
    for p in paths:
        elapsed, compared = refresh(p.resolve())
        print(f"{p.name}: executed in {elapsed:.0f} s, {compared} compared code cells")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
