"""Re-execute the source notebooks in the `smoke` profile and store small, reviewable outputs.

    .venv/bin/python tools/notebook_outputs.py [NOTEBOOK ...]     # default: every notebooks/source/*/*.ipynb
    .venv/bin/python tools/notebook_outputs.py --profile laptop [NOTEBOOK ...]   # default: those with laptop cells

The cells tagged ``laptop-output`` (the cells notebooks 4 and 6 fill from their training: loss curve, sanity check,
samples, the judge's verdict) store a real laptop-profile run's outputs, labelled (tools/laptop_outputs.py): the
smoke refresh keeps them, and ``--profile laptop`` re-makes them (only those cells: every other cell keeps its smoke
output) and records the run in benchmarks/notebook_laptop_outputs.json.  A laptop run trains for minutes and, like
a student's, saves runs/mine/<model>.pt (move runs/mine aside first to keep yours).

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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import laptop_outputs as lo  # noqa: E402  (tools/ is not a package)

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


def execute(nb, path: Path, env: dict, timeout: int) -> tuple[float, float, tuple[float, float]]:
    """Run ``nb`` in place with the figure setup cell; returns (wall seconds, the kernel's CPU seconds, load average at
    the start and the end).  The kernel is this process's child: its CPU time is the growth of RUSAGE_CHILDREN."""
    import resource

    setup = nbformat.v4.new_code_cell(SETUP)
    nb.cells.insert(0, setup)
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    load0, start = os.getloadavg()[0], time.time()
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=True,
                       resources={"metadata": {"path": str(path.parent)}}).execute(env=env)
    finally:
        nb.cells.remove(setup)
    elapsed, load1 = time.time() - start, os.getloadavg()[0]
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    for cell in nb.cells:                       # as if the setup cell had not run
        if cell.cell_type == "code" and cell.get("execution_count"):
            cell.execution_count -= 1
            for out in cell.outputs:
                if out.get("execution_count"):
                    out["execution_count"] -= 1
    times = sorted(cell_seconds(nb), reverse=True)
    print(f"{path.name}: slowest cells: " + "; ".join(f"{t:.0f} s [{cid}] `{src}`" for t, cid, src in times[:3]))
    return elapsed, cpu, (round(load0, 2), round(load1, 2))


def refresh(path: Path, timeout: int = 1200) -> tuple[float, int]:
    """The smoke refresh: every cell's output from a smoke run, except the laptop-output cells' laptop runs."""
    nb = nbformat.read(path, as_version=4)
    stored = nbformat.read(path, as_version=4)
    env = {"DDPM_PROFILE": "smoke", "OMP_NUM_THREADS": "1", **os.environ}   # as in notebooks/conftest.py
    elapsed, _, _ = execute(nb, path, env, timeout)
    for t, cid, src in sorted(cell_seconds(nb), reverse=True):
        if t > SLOW_S:
            print(f"  over {SLOW_S:.0f} s: {t:.0f} s in cell [{cid}] `{src}` — state it in the notebook")
    kept, missing = lo.keep_laptop_outputs(nb, stored)
    if kept:
        print(f"  kept the laptop run's outputs of cells {', '.join(kept)}")
    source = ROOT / "notebooks" / "source"
    run = lo.read_runs().get(path.relative_to(source).as_posix()) if path.is_relative_to(source) else None
    stale = lo.stale_cells(nb, run) if run else []
    if stale:
        print(f"  cells {', '.join(stale)} changed since the laptop run of {run.date}: re-make it with "
              f"`tools/notebook_outputs.py --profile laptop {path.relative_to(ROOT)}`")
    if missing:
        print(f"  cells {', '.join(missing)} are tagged {lo.LAPTOP_TAG} but store no laptop run: they keep the smoke "
              f"output; run `tools/notebook_outputs.py --profile laptop {path.relative_to(ROOT)}`")
    compared = shrink(nb)
    nbformat.write(nb, path)
    size = path.stat().st_size
    print(f"{path.name}: {size / 1000:.0f} kB" + (f" — OVER the {NOTEBOOK_CAP // 1000} kB budget" if size > NOTEBOOK_CAP else ""))
    return elapsed, compared


def _code_state() -> str:
    """The commit the run used, and the course files that differed from it (the working tree is shared)."""
    import subprocess

    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    dirty = [line[3:] for line in git("status", "--porcelain", "--", "solutions", "tutorial_utils",
                                      "notebooks/source").splitlines() if line.strip()]
    return git("rev-parse", "--short", "HEAD").strip() + (f" with uncommitted changes to {', '.join(dirty)}"
                                                          if dirty else "")


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()


def _laptop_profile() -> str:
    """The laptop profile as tutorial_utils/runtime.py defines it now (re-read: it may change while a notebook runs)."""
    import importlib

    import tutorial_utils.runtime as runtime

    return importlib.reload(runtime).PROFILES["laptop"].describe()


def refresh_laptop(path: Path, timeout: int = 3600, source_root: Path = ROOT / "notebooks" / "source",
                   json_path: Path = lo.LAPTOP_JSON) -> lo.LaptopRun:
    """Run the notebook in the laptop profile (as ``./course lab``'s kernels: PyTorch's own thread count) and store
    its outputs in the laptop-output cells only; record the run in LAPTOP_JSON.  Raises LaptopOutputError."""
    from datetime import datetime, timezone

    rel = path.relative_to(source_root).as_posix()
    nb = nbformat.read(path, as_version=4)
    if not lo.laptop_cells(nb):
        raise lo.LaptopOutputError(f"{rel} has no cell tagged {lo.LAPTOP_TAG!r}: nothing to store")
    import re

    trains = set(re.findall(r"TrainingRun\(\s*[\"'](\w+)[\"']", "\n".join(c.source for c in nb.cells)))
    leftovers = [p for p in sorted((ROOT / "runs" / "mine").glob("*.resume.pt")) if p.name.split(".")[0] in trains]
    if leftovers:
        raise lo.LaptopOutputError(f"{', '.join(str(p.relative_to(ROOT)) for p in leftovers)}: a stopped run's state, "
                                   f"which the training cell would resume; move it aside and run again")
    for cell in lo.laptop_cells(nb):            # stderr (progress bars) is dropped from ignored cells
        lo.ensure_ignored(cell)
    sources = {c.get("id"): lo.source_hash(c.source) for c in lo.laptop_cells(nb)}
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["DDPM_PROFILE"] = "laptop"
    profile = _laptop_profile()
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    elapsed, cpu, loads = execute(nb, path, env, timeout)
    precision, line = lo.precision_of(nb)
    if _laptop_profile() != profile:
        raise lo.LaptopOutputError(f"{rel}: the laptop profile changed while the notebook ran; run it again")
    run = lo.LaptopRun(
        notebook=rel, date=date, cpu=_cpu_name(), cores=os.cpu_count() or 1, precision=precision,
        precision_line=line, amp_env=os.environ.get("DDPM_AMP"), seconds=round(elapsed, 1),
        kernel_cpu_seconds=round(cpu, 1), load_average_start_end=loads, nice=os.nice(0),
        cell_seconds={cid: round(t, 1) for t, cid, _ in cell_seconds(nb)}, cell_sources=sources, code=_code_state(),
        profile=profile)
    went = "; ".join(f"[{cid}] {t:.0f} s" for t, cid, _ in sorted(cell_seconds(nb), reverse=True) if t >= 1)
    shrink(nb)
    target = nbformat.read(path, as_version=4)          # as it is now: others may have edited other cells meanwhile
    stored = lo.store_laptop_outputs(target, nb, run)
    nbformat.write(target, path)
    lo.write_run(run, json_path)
    print(f"{rel}: laptop run stored in cells {', '.join(stored)}; {run.minutes:.1f} min wall, kernel CPU "
          f"{run.kernel_cpu_seconds:.0f} s, {precision}, load {loads[0]} -> {loads[1]}")
    print(f"  where the time went: {went}")
    return run


def main(argv) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="smoke", choices=["smoke", "laptop"])
    p.add_argument("notebooks", nargs="*")
    args = p.parse_args(argv)
    everything = sorted((ROOT / "notebooks" / "source").glob("*/*.ipynb"))
    if args.profile == "laptop":
        paths = [Path(x).resolve() for x in args.notebooks] or \
            [x for x in everything if lo.laptop_cells(nbformat.read(x, as_version=4))]
        for x in paths:
            try:
                refresh_laptop(x)
            except lo.LaptopOutputError as e:
                print(f"error: {e}", file=sys.stderr)
                return 1
        return 0
    for x in [Path(x) for x in args.notebooks] or everything:
        elapsed, compared = refresh(x.resolve())
        print(f"{x.name}: executed in {elapsed:.0f} s, {compared} compared code cells")
    total = sum(x.stat().st_size for x in everything)
    print(f"all source notebooks: {total / 1000:.0f} kB (budget {TOTAL_CAP // 1000} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
