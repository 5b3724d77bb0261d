"""Every source notebook executed from the top in one profile, as a student's kernel runs it: the time of each
notebook and of its slowest cells.

    DDPM_DATA_DIR=/path/to/data python benchmarks/bench_notebooks.py [--profile laptop] [--threads N]
        [--only 04_training 06_conditional] [--out benchmarks/notebook_times_laptop.json]

The kernels get ``DDPM_PROFILE=<profile>`` and, unless ``--threads`` is given, no ``OMP_NUM_THREADS``: PyTorch's
default thread count, as in the kernels of ``./course lab`` (nbval's kernels use one thread, see
notebooks/conftest.py).  Notebook 4 saves ``runs/mine/unet_digit6.pt`` and notebook 6 ``runs/mine/unet_cond.pt``
exactly as a student's run does, so notebooks 5-7 sample those models (move ``runs/mine`` aside first to keep
yours).  The executed notebooks go to ``--keep`` when it is given; the figures go to ``--out`` (JSON), with the
machine, the load average, ``DDPM_AMP`` (``none`` times fp32 on a CPU that has bf16 units), the kernel's CPU seconds
(user + system, all its threads: on a shared machine, CPU seconds / threads is the 2-core time) and every code cell's
time, so that what a notebook spends beyond its training cell (the ``# Time:`` cell that trains) is visible.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import time
from pathlib import Path

from common import BENCH_DIR, machine, set_data_env

ROOT = BENCH_DIR.parent


def cell_seconds(cell) -> float | None:
    """The cell's execution time, from the timestamps nbclient records (``record_timing``)."""
    ex = cell.metadata.get("execution", {})
    a, b = ex.get("iopub.execute_input"), ex.get("shell.execute_reply")
    if not (a and b):
        return None
    return (dt.datetime.fromisoformat(b.rstrip("Z")) - dt.datetime.fromisoformat(a.rstrip("Z"))).total_seconds()


def summarise(nb, n_slowest: int = 3) -> dict:
    """Code cells, errors, the slowest cells (notebook cell index, seconds, first line) of an executed notebook, and
    every code cell's seconds by cell id."""
    timed, errors = [], []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        s = cell_seconds(cell)
        if s is not None:
            timed.append({"cell": i, "id": cell.get("id"), "seconds": round(s, 1),
                          "first_line": cell.source.split("\n")[0][:80]})
        errors += [f"cell {i}: {o.ename}: {o.evalue[:200]}" for o in cell.get("outputs", []) if o.output_type == "error"]
    every = {c["id"]: c["seconds"] for c in timed}
    timed.sort(key=lambda c: -c["seconds"])
    return {"code_cells": sum(c.cell_type == "code" for c in nb.cells), "errors": errors, "slowest": timed[:n_slowest],
            "cell_seconds": every}


def beyond_training(r: dict) -> str:
    """One line: the notebook's time, its slowest cell's (the training cell where there is one), and the rest."""
    if not r["slowest"]:
        return ""
    top = r["slowest"][0]
    rest = sorted(((s, cid) for cid, s in r["cell_seconds"].items() if cid != top["id"]), reverse=True)
    outside = r["seconds"] - sum(r["cell_seconds"].values())
    return (f"{r['seconds']:.0f} s = {top['seconds']:.0f} s in [{top['id']}] + {r['seconds'] - top['seconds']:.0f} s "
            f"elsewhere: " + ", ".join(f"[{cid}] {s:.0f} s" for s, cid in rest[:6])
            + f", {sum(s for s, _ in rest[6:]):.0f} s in the other {len(rest[6:])} cells, {outside:.0f} s outside "
              f"the cells (the kernel's start and shutdown)")


def main():
    import nbformat
    from nbclient import NotebookClient

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="laptop", choices=["laptop", "smoke", "full"])
    p.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for the kernels (default: unset)")
    p.add_argument("--only", nargs="+", default=None, help="assignments, e.g. 04_training (default: all eight)")
    p.add_argument("--keep", default=None, help="folder for the executed notebooks")
    p.add_argument("--out", default=None, help="JSON (default benchmarks/notebook_times_<profile>.json)")
    args = p.parse_args()
    set_data_env()
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["DDPM_PROFILE"] = args.profile
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    out = Path(args.out or BENCH_DIR / f"notebook_times_{args.profile}.json")
    results = {"machine": machine(), "profile": args.profile, "DDPM_AMP": os.environ.get("DDPM_AMP"),
               "threads": args.threads or "PyTorch's default (as ./course lab)", "notebooks": {}}
    for path in sorted((ROOT / "notebooks" / "source").glob("*/*.ipynb")):
        if args.only and path.parent.name not in args.only:
            continue
        nb = nbformat.read(str(path), as_version=4)
        client = NotebookClient(nb, timeout=3600, kernel_name="python3", allow_errors=True, record_timing=True,
                                resources={"metadata": {"path": str(path.parent)}})
        load0, t0, cpu0 = os.getloadavg()[0], time.time(), resource.getrusage(resource.RUSAGE_CHILDREN)
        client.execute(env=env)
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)        # the kernel, a child of this process, has exited
        r = {"seconds": round(time.time() - t0, 1),
             "kernel_cpu_seconds": round(cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime, 1),
             **summarise(nb), "load_average_start_end": [round(load0, 2), round(os.getloadavg()[0], 2)],
             "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
        results["notebooks"][path.parent.name] = r
        if args.keep:
            Path(args.keep).mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, str(Path(args.keep) / path.name))
        slow = "; ".join(f"cell {c['cell']} {c['seconds']:.0f} s ({c['first_line'][:40]})" for c in r["slowest"][:2])
        print(f"{path.parent.name}: {r['seconds']:.0f} s (kernel CPU {r['kernel_cpu_seconds']:.0f} s, load "
              f"{r['load_average_start_end']}); slowest: {slow}" + (f"; ERRORS: {r['errors']}" if r["errors"] else ""),
              flush=True)
        print(f"  {beyond_training(r)}", flush=True)
        out.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    total = sum(r["seconds"] for r in results["notebooks"].values())
    print(f"total {total:.0f} s ({total / 60:.1f} min), profile {args.profile}, {results['machine']}; wrote {out}")


if __name__ == "__main__":
    main()
