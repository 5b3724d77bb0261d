"""Re-execute the source notebooks in the `smoke` profile and store small, reviewable outputs.

    .venv/bin/python tools/notebook_outputs.py [NOTEBOOK ...]     # default: every notebooks/source/*/*.ipynb

nbval (in the test suite) compares each code cell's fresh output with the output stored in the notebook,
except cells tagged `nbval-ignore-output` (nbval reads the tag; students never see a marker).  This tool refreshes the stored outputs after you edit a source
notebook, and keeps them small:

* figures are kept as small PNGs (rendered at ``FIGURE_DPI``, re-encoded with a palette when that is smaller), so
  the course reads on the web before anyone runs it; a PNG over ``PNG_CAP`` bytes is dropped (its text stays).
  nbval never compares images (only with ``--nbdime``), so the stored PNGs cannot fail a test;
* cells tagged `nbval-ignore-output` (timings, random samples) are stored with their output but not compared;
  progress bars (stderr, widgets) are dropped everywhere;
* it prints every cell that took longer than ``SLOW_S`` seconds (state that time in the notebook, next to the cell).

The budget (checked by tests/test_notebooks.py, stated in notebooks/README.md): at most ``PNG_CAP`` bytes per
stored figure, ``NOTEBOOK_CAP`` per source notebook, ``TOTAL_CAP`` for all of them together.
Then regenerate the student versions with `./course release` (they keep the outputs that reveal no answer).
"""
from __future__ import annotations

import base64
import io
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
KEEP_MIME = ("text/plain", "text/html", "text/markdown", "text/latex", "image/png")
IGNORE_TAGS = {"nbval-ignore-output", "nbval-skip"}
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"   # tqdm's progress bar in a notebook
FIGURE_DPI = 60            # the stored PNGs' resolution (the figures' size in inches, hence their repr, is unchanged)
PNG_CAP = 60_000           # bytes per stored PNG (decoded); bigger ones are dropped
TEXT_CAP = 20_000          # bytes per stored text/html output (an animation's HTML is dropped, not stored)
NOTEBOOK_CAP = 400_000     # bytes per source notebook file
TOTAL_CAP = 1_500_000      # bytes for all source notebooks together
SLOW_S = 10.0              # cells slower than this (smoke profile, CPU) must state their time
# Run before the notebook's own cells, then removed: only the PNG's dpi changes (not figure.dpi, so the
# "<Figure size WxH ...>" text that nbval compares stays what a student's kernel prints).
SETUP = (f"%config InlineBackend.print_figure_kwargs = {{'bbox_inches': 'tight', 'dpi': {FIGURE_DPI}}}")


def cell_seconds(nb) -> list[tuple[float, str, str]]:
    """(seconds, cell id, first line) of every executed code cell, from nbclient's timing metadata."""
    from datetime import datetime

    times = []
    for cell in nb.cells:
        ex = cell.metadata.get("execution", {})
        if "iopub.execute_input" in ex and "shell.execute_reply" in ex:
            a, b = (datetime.fromisoformat(ex[k].replace("Z", "+00:00"))
                    for k in ("iopub.execute_input", "shell.execute_reply"))
            lines = [l for l in cell.source.splitlines() if l.strip() and not l.startswith("#")]
            times.append(((b - a).total_seconds(), cell.get("id", "?"), lines[0][:60] if lines else ""))
    return times


def small_png(b64: str) -> str | None:
    """The PNG re-encoded with an adaptive palette when that is smaller; None if it stays over PNG_CAP."""
    raw = base64.b64decode(b64)
    try:
        from PIL import Image

        import numpy as np

        img = Image.open(io.BytesIO(raw)).convert("RGB")
        rgb = np.asarray(img).astype(int)
        gray = np.abs(rgb - rgb.mean(axis=2, keepdims=True)).max() < 8     # digits and noise: 16 grey levels
        small = img.convert("L").quantize(colors=16) if gray else img.quantize(colors=64)
        buf = io.BytesIO()
        small.save(buf, format="PNG", optimize=True)
        if len(buf.getvalue()) < len(raw):
            raw = buf.getvalue()
    except ImportError:      # Pillow comes with matplotlib; without it the PNG is kept as rendered
        pass
    return base64.b64encode(raw).decode("ascii") if len(raw) <= PNG_CAP else None


def shrink(nb) -> int:
    """Shrink images (drop those over PNG_CAP), drop widget state and progress bars; returns the compared cells."""
    nb.metadata.pop("widgets", None)                 # tqdm's progress-bar widgets: big and never useful
    nb.metadata["language_info"] = {"name": "python"}  # not the executing interpreter's version
    compared = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.metadata.pop("execution", None)
        ignored = bool(IGNORE_TAGS & set(cell.metadata.get("tags", [])))
        if ignored:
            # not compared by nbval (the output varies: timings, samples), but stored, so the notebook shows what it
            # does before anyone runs it; progress bars (stderr, widgets) dropped
            cell.outputs = [o for o in cell.outputs if not (o.get("output_type") == "stream" and o.get("name") == "stderr")
                            and WIDGET_MIME not in o.get("data", {})]
        else:
            compared += 1
        for out in cell.outputs:
            if "data" in out:
                out["data"] = {k: v for k, v in out["data"].items() if k in KEEP_MIME}
                for k in [k for k, v in out["data"].items() if k != "image/png" and len("".join(v)) > TEXT_CAP]:
                    print(f"  dropped a {k} output over {TEXT_CAP} bytes in cell {cell.get('id')} (an animation?)")
                    del out["data"][k]
                if "image/png" in out["data"]:
                    png = small_png(out["data"]["image/png"])
                    if png is None:
                        print(f"  dropped a PNG over {PNG_CAP} bytes in cell {cell.get('id')}")
                        del out["data"]["image/png"]
                    else:
                        out["data"]["image/png"] = png
            out.pop("metadata", None) if out.get("output_type") == "stream" else None
            if "metadata" in out:
                out["metadata"] = {}
        cell.outputs = [o for o in cell.outputs if o.get("output_type") == "stream" or o.get("data")
                        or o.get("output_type") == "error"]
    return compared


def refresh(path: Path, timeout: int = 1200) -> tuple[float, int]:
    nb = nbformat.read(path, as_version=4)
    env = {"DDPM_PROFILE": "smoke", "OMP_NUM_THREADS": "1", **os.environ}   # as in notebooks/conftest.py
    setup = nbformat.v4.new_code_cell(SETUP)
    nb.cells.insert(0, setup)
    start = time.time()
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=True,
                       resources={"metadata": {"path": str(path.parent)}}).execute(env=env)
    finally:
        nb.cells.remove(setup)
    elapsed = time.time() - start
    for cell in nb.cells:                       # as if the setup cell had not run
        if cell.cell_type == "code" and cell.get("execution_count"):
            cell.execution_count -= 1
            for out in cell.outputs:
                if out.get("execution_count"):
                    out["execution_count"] -= 1
    times = sorted(cell_seconds(nb), reverse=True)
    print(f"{path.name}: slowest cells: " + "; ".join(f"{t:.0f} s [{cid}] `{src}`" for t, cid, src in times[:3]))
    for t, cid, src in times:
        if t > SLOW_S:
            print(f"  over {SLOW_S:.0f} s: {t:.0f} s in cell [{cid}] `{src}` — state it in the notebook")
    compared = shrink(nb)
    nbformat.write(nb, path)
    size = path.stat().st_size
    print(f"{path.name}: {size / 1000:.0f} kB" + (f" — OVER the {NOTEBOOK_CAP // 1000} kB budget" if size > NOTEBOOK_CAP else ""))
    return elapsed, compared


def main(argv) -> int:
    paths = [Path(p) for p in argv] or sorted((ROOT / "notebooks" / "source").glob("*/*.ipynb"))
    for p in paths:
        elapsed, compared = refresh(p.resolve())
        print(f"{p.name}: executed in {elapsed:.0f} s, {compared} compared code cells")
    total = sum(p.stat().st_size for p in (ROOT / "notebooks" / "source").glob("*/*.ipynb"))
    print(f"all source notebooks: {total / 1000:.0f} kB (budget {TOTAL_CAP // 1000} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
