"""Seconds to autograde one submission of each graded notebook, sandboxed, on this machine.

    DDPM_DATA_DIR=/path/to/data python benchmarks/bench_grading.py [--repeat 1] [--no-skip]

For each graded assignment it releases the notebook (earlier stages public), hands in the reference answers as one
student, autogrades it with ``./course instructor autograde``'s code (bubblewrap sandbox, the assignment's time
limits) and prints the wall time of the nbgrader run and the time the notebook itself took.  ``--no-skip`` also
runs the demonstration cells tagged ``grader-skip`` (what grading cost before they were tagged).
Results: stdout and ``benchmarks/grading_times.json``.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
import time
from pathlib import Path

import nbformat

from ddpm_instructor import autograde, collect, records, release
from ddpm_instructor.coursedir import REPO, CourseDir

GRADED = ["01_forward_1d", "02_forward_closed_form", "04_training", "05_sampling", "06_conditional", "07_beyond",
          "08_flow_matching"]
PUBLIC = ["01_forward_1d", "02_forward_closed_form", "04_training", "05_sampling", "06_conditional", "07_beyond"]


def answered(release_nb: Path, source_nb: Path):
    nb = nbformat.read(str(release_nb), as_version=4)
    src = nbformat.read(str(source_nb), as_version=4)
    refs = {c.metadata["nbgrader"]["grade_id"]: c.source for c in src.cells if c.metadata.get("nbgrader", {}).get("solution")}
    for c in nb.cells:
        gid = c.metadata.get("nbgrader", {}).get("grade_id")
        if gid in refs:
            c.source = "\n".join(l for l in refs[gid].split("\n") if "SOLUTION" not in l)
    return nb


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-skip", action="store_true", help="run the grader-skip cells too (the old cost)")
    ap.add_argument("--assignments", nargs="*", default=GRADED)
    args = ap.parse_args()
    out = {"machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores", "skip_demo_cells": not args.no_skip,
           "seconds": {}}
    with tempfile.TemporaryDirectory(prefix="ddpm-bench-grading-", dir="/var/tmp") as tmp:
        course = CourseDir(root=Path(tmp) / "course", quiet=True)
        release.release(course, args.assignments, public=PUBLIC)
        if args.no_skip:          # the same notebooks without the tag
            for a in args.assignments:
                for p in (course.release / a).glob("*.ipynb"):
                    nb = nbformat.read(str(p), as_version=4)
                    for c in nb.cells:
                        c.metadata["tags"] = [t for t in c.metadata.get("tags", []) if t != "grader-skip"]
                    nbformat.write(nb, str(p))
        inbox = Path(tmp) / "in" / "student"
        inbox.mkdir(parents=True)
        for a in args.assignments:
            rel = next((course.release / a).glob("*.ipynb"))
            nb = answered(rel, REPO / "notebooks" / "source" / a / rel.name)
            if args.no_skip:
                for c in nb.cells:
                    c.metadata["tags"] = [t for t in c.metadata.get("tags", []) if t != "grader-skip"]
            nbformat.write(nb, str(inbox / rel.name))
        collect.collect(course, [inbox.parent])
        for a in args.assignments:
            t0 = time.monotonic()
            res = autograde.autograde(course, [a], jobs=1)
            wall = time.monotonic() - t0
            rec = records.load_autograde(course.notes, a, "student")
            out["seconds"][a] = {"wall": round(wall, 1), "notebook": round(rec.seconds, 1) if rec else None,
                                 "score": f"{res[0].score:g}/{res[0].max_score:g}"}
            print(f"{a:<24} {wall:6.1f} s per submission (notebook {out['seconds'][a]['notebook']} s), "
                  f"score {out['seconds'][a]['score']}", flush=True)
        # the largest resident set among the processes the grading started and waited for (nbgrader, the judging
        # children, the sandboxed kernels, which are the largest: PyTorch), and the grader's own process
        out["peak_rss_mb"] = {"largest_child": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
                              "this_process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
        print(f"peak resident memory: largest child {out['peak_rss_mb']['largest_child']} MB, "
              f"this process {out['peak_rss_mb']['this_process']} MB")
    name = "grading_times_noskip.json" if args.no_skip else "grading_times.json"
    (Path(__file__).parent / name).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
