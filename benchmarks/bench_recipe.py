"""The laptop recipe search: time to quality of notebook 4's and 6's training, in fp32 AND bf16 on one machine.

    DDPM_DATA_DIR=/path/to/data python benchmarks/bench_recipe.py speed [--threads 2]
    DDPM_DATA_DIR=/path/to/data python benchmarks/bench_recipe.py quality w16-s900 w16-s700-ema99 [--amp bf16 none]
    DDPM_DATA_DIR=/path/to/data python benchmarks/bench_recipe.py list
    python benchmarks/bench_recipe.py adopt w16-s900 cond-w16-s1500

``adopt`` copies the runs of the candidates that are the laptop profile (its width and recipe, checked) into
``student.json`` (bf16) and ``student_fp32.json`` (fp32), the files ``bench_student.py`` writes and notebooks 4
and 6 quote: one measurement, not two.  Their time is the 2-core time (the wall time of a shared machine is kept
beside it as ``wall_seconds``).

``speed`` times a few training steps of each (width, batch, precision, variant): what one step costs, for
widths 32/24/16, batches 128/64, channels-last, ``AdamW(fused=True)``/``foreach=False``, the input skip.  Cheap (a
minute).

``quality`` trains each named candidate (``CANDIDATES`` below: a width and the changes to the laptop profile's
recipe) once per precision, with the recipe's ``amp`` set for that run (``bf16`` autocast, ``none`` = fp32; the
CPU must have bf16 units for the bf16 row to mean bf16, and ``DDPM_AMP`` must be unset so it cannot overrule the
run), exactly as ``bench_student.run`` does for the profile itself: the course's loop, the same seeds, 100 DDIM-50
samples of the EMA weights judged by ``tutorial_utils.judge``.  Candidates are searched one after the other by
what they save (not a grid): each run is added to ``benchmarks/recipe_search.json`` (read by ``make_results.py``),
replacing an earlier run of the same candidate and precision.

"2-core time" is the process's CPU seconds over 2: the time the run takes on 2 otherwise idle cores that share
its work evenly (the speed phase shows they do: a step's CPU seconds are the same with 1 and 2 threads on a quiet
machine).  On a machine shared with other jobs, train with ``--threads 1``: two threads that must meet after every
operation lose most of their time waiting for each other when the cores are oversubscribed (measured here at a
load average of 9: 2.5 CPU-s per step with 2 threads against 0.2 with 1), and the CPU seconds are then no measure
of the work; one thread's are.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import time

import torch

from common import BENCH_DIR, machine, set_data_env

OUT = BENCH_DIR / "recipe_search.json"

# name -> (notebook kind, the UNet's constructor arguments, changes to the laptop profile's recipe for that notebook,
# why it is a candidate).  "skip": the input skip ε_θ(x_t, t) = UNet(x_t, t) + s(t)·x_t (solutions/model.py).
W32, W16 = {"ch": 32}, {"ch": 16}
W32S, W16S = {"ch": 32, "input_skip": True}, {"ch": 16, "input_skip": True}
CANDIDATES: dict[str, tuple[str, dict, dict, str]] = {
    "w32-s900": ("digit6", W32, dict(steps=900, warmup=50, ema=0.995), "the laptop recipe until this search"),
    "w16-s900": ("digit6", W16, dict(steps=900, warmup=50, ema=0.995), "half the width: ~2.5x cheaper steps"),
    "w32-s400-ema99": ("digit6", W32, dict(steps=400, warmup=30, ema=0.99), "full width, 56 % fewer steps"),
    "w32skip-s400-ema99": ("digit6", W32S, dict(steps=400, warmup=30, ema=0.99),
                           "full width with the input skip, 56 % fewer steps"),
    "w16skip-s900": ("digit6", W16S, dict(steps=900, warmup=50, ema=0.995), "half the width with the input skip"),
    "w16skip-s800": ("digit6", W16S, dict(steps=800, warmup=50, ema=0.995),
                     "half the width with the input skip, 11 % fewer steps"),
    "cond-w32-s1500": ("cond", W32, dict(steps=1500, warmup=100, ema=0.995), "the laptop recipe until this search"),
    "cond-w16-s1500": ("cond", W16, dict(steps=1500, warmup=100, ema=0.995), "half the width"),
    "cond-w16skip-s1500": ("cond", W16S, dict(steps=1500, warmup=100, ema=0.995),
                           "half the width with the input skip"),
    "cond-w16skip-s1700": ("cond", W16S, dict(steps=1700, warmup=100, ema=0.995),
                           "half the width with the input skip, 13 % more steps"),
    "cond-w16skip-s1800": ("cond", W16S, dict(steps=1800, warmup=100, ema=0.995),
                           "half the width with the input skip, 20 % more steps"),
}


def unet_label(unet: dict) -> str:
    return f"ch={unet['ch']}" + (" + skip" if unet.get("input_skip") else "")


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def speed(threads: int, steps: int = 6) -> list[dict]:
    """Seconds per training step (wall and 2-core) of each (width, batch, precision, variant), on random data."""
    import solutions
    from tutorial_utils.recipe import Recipe
    rows = []
    grid = [(w, 128, amp, "") for w in (32, 24, 16) for amp in ("none", "bf16")]
    grid += [(32, 64, amp, "") for amp in ("none", "bf16")]
    grid += [(32, 128, amp, v) for amp in ("none", "bf16") for v in ("channels_last", "AdamW fused", "AdamW foreach=False")]
    grid += [(16, 128, amp, "input skip") for amp in ("none", "bf16")]
    for width, batch, amp, variant in grid:
        torch.manual_seed(0)
        model = solutions.Unet(ch=width, input_skip=variant == "input skip")
        x = torch.randn(batch, 1, 28, 28)
        if variant == "channels_last":
            model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        recipe = Recipe(steps=100, batch_size=batch, warmup=2, amp=amp)
        if variant == "AdamW fused":
            opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, fused=True)
        elif variant == "AdamW foreach=False":
            opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, foreach=False)
        else:
            opt = recipe.optimizer(model)
        ema = recipe.ema_model(model)
        batches = [(x, torch.zeros(batch, dtype=torch.long))] * steps

        def go(b):
            solutions.train(model, opt, b, 1, progress=False, ema=ema, autocast=recipe.autocast("cpu"),
                            grad_clip=recipe.grad_clip)
        go(batches[:2])                                                   # warm-up: oneDNN picks its kernels
        c0, t0 = _cpu_seconds(), time.time()
        go(batches)
        wall, cpu = (time.time() - t0) / steps, (_cpu_seconds() - c0) / 2 / steps
        rows.append({"width": width, "batch_size": batch, "precision": "bf16 autocast" if recipe.uses_bf16("cpu")
                     else "fp32", "variant": variant or "default", "seconds_per_step": round(wall, 3),
                     "two_core_seconds_per_step": round(cpu, 3), "threads": threads,
                     "load_average": round(os.getloadavg()[0], 2)})
        print(rows[-1], flush=True)
    return rows


def quality(name: str, amp: str) -> dict:
    import bench_student
    from tutorial_utils.runtime import PROFILES
    kind, unet, changes, why = CANDIDATES[name]
    base = PROFILES["laptop"].recipe_cond if kind == "cond" else PROFILES["laptop"].recipe_digit6
    recipe = base.replace(**changes)
    r = bench_student.run(kind, None, 100, recipe=recipe, unet=unet, amp=amp)
    threads = torch.get_num_threads()
    row = {"candidate": name, "why": why, "notebook": r["notebook"], "amp": amp, "precision": r["precision"],
           "width": unet["ch"], "input_skip": bool(unet.get("input_skip")), "unet": unet_label(unet),
           "model": r["model"], "steps": r["steps"], "batch_size": r["batch_size"], "lr": recipe.lr, "ema": recipe.ema,
           "recipe": r["recipe"], "train_seconds": r["train_seconds"],
           "threads": threads, "train_cpu_seconds": r["train_cpu_seconds"],
           "two_core_seconds": round(r["train_cpu_seconds"] / 2, 1),
           "seconds_per_step": r["seconds_per_step"],
           "two_core_seconds_per_step": round(r["train_cpu_seconds"] / 2 / r["steps"], 4),
           "load_average_start_end": r["load_average_start_end"], "final_loss": r["final_loss"],
           "n_samples": r["n_samples"], "date": r["date"]}
    if kind == "cond":
        row.update(share=r["w2"]["accuracy"], share_w1=r["w1"]["accuracy"], frechet_distance=r["w2"]["frechet_distance"],
                   frechet_floor=r["w2"]["frechet_floor"], judged="guided (w = 2) read as their label")
    else:
        row.update(share=r["share_six"], frechet_distance=r["frechet_distance"], frechet_floor=r["frechet_floor"],
                   judged="read as 6")
    return row


def _save(data: dict) -> None:
    tmp = OUT.with_suffix(f".{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    os.replace(tmp, OUT)


def _add_run(row: dict) -> None:
    """Add one run to the json as it is now (several searches may run side by side), replacing an earlier run of
    the same candidate and precision."""
    data = json.load(open(OUT)) if OUT.is_file() else {}
    data["machine"] = machine()
    runs = [r for r in data.get("runs", []) if (r["candidate"], r["amp"]) != (row["candidate"], row["amp"])]
    data["runs"] = runs + [row]
    _save(data)


def adopt(names: list[str]) -> list[str]:
    """Write the runs of ``names`` (each the laptop profile's own recipe and width) into student*.json."""
    from tutorial_utils.runtime import PROFILES
    data = json.load(open(OUT)) if OUT.is_file() else {}
    profile, written = PROFILES["laptop"], []
    for name in names:
        kind, unet, changes, _ = CANDIDATES[name]
        base = profile.recipe_cond if kind == "cond" else profile.recipe_digit6
        if unet != profile.unet_kwargs or base.replace(**changes) != base:
            raise ValueError(f"{name} is not the laptop profile ({profile.unet_kwargs}, {base.describe()}): "
                             f"only the profile's own runs go into student*.json")
        for amp, file in (("bf16", "student.json"), ("none", "student_fp32.json")):
            row = next((r for r in data.get("runs", []) if (r["candidate"], r["amp"]) == (name, amp)), None)
            if row is None:
                continue
            path = BENCH_DIR / file
            st = json.load(open(path)) if path.is_file() else {}
            if st.get("machine") != data["machine"]:
                st = {"machine": data["machine"]}                   # one machine per file: drop another's runs
            cond = kind == "cond"
            run = {"notebook": row["notebook"], "model": row["model"], "width": row["width"],
                   "input_skip": row["input_skip"],
                   "recipe": row["recipe"], "steps": row["steps"], "batch_size": row["batch_size"],
                   "precision": row["precision"], "train_seconds": row["two_core_seconds"],
                   "train_cpu_seconds": row["train_cpu_seconds"],
                   "seconds_per_step": round(row["two_core_seconds_per_step"], 3),
                   "images_per_second": round(row["batch_size"] / row["two_core_seconds_per_step"], 1),
                   "load_average_start_end": row["load_average_start_end"], "final_loss": row["final_loss"],
                   "wall_seconds": row["train_seconds"], "threads": row["threads"], "date": row["date"],
                   "n_samples": row["n_samples"], "sampler": "DDIM-50, η = 1",
                   "note": f"`bench_recipe.py` candidate `{name}` ({row['threads']} thread"
                           f"{'s' if row['threads'] > 1 else ''}): the time is its 2-core time, CPU seconds over 2 "
                           f"(wall {row['train_seconds'] / 60:.1f} min at load {row['load_average_start_end']})"}
            if cond:
                run["w2"] = {"accuracy": row["share"], "frechet_distance": row["frechet_distance"],
                             "frechet_floor": row["frechet_floor"]}
                run["w1"] = {"accuracy": row["share_w1"]}
            else:
                run.update(share_six=row["share"], frechet_distance=row["frechet_distance"],
                           frechet_floor=row["frechet_floor"])
            st[kind] = run
            with open(path, "w") as f:
                json.dump(st, f, indent=1)
                f.write("\n")
            written.append(f"{file}: {kind} <- {name} [{amp}]")
    return written


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("phase", choices=["speed", "quality", "list", "adopt"])
    p.add_argument("candidates", nargs="*", help="candidate names for 'quality' (see 'list')")
    p.add_argument("--amp", nargs="+", choices=["bf16", "none"], default=["bf16", "none"],
                   help="precisions to train each candidate in, one after the other (default: both)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    if args.phase == "list":
        for name, (kind, unet, changes, why) in CANDIDATES.items():
            print(f"{name:24s} notebook {4 if kind == 'digit6' else 6}, {unet_label(unet)}, {changes}: {why}")
        return
    unknown = [c for c in args.candidates if c not in CANDIDATES]
    if args.phase == "adopt" and not unknown:
        print("\n".join(adopt(args.candidates)) or "nothing adopted: no run of those candidates yet")
        return
    if unknown or (args.phase == "quality" and not args.candidates):
        p.error(f"name candidates from {sorted(CANDIDATES)} (unknown: {unknown})")
    if os.environ.get("DDPM_AMP"):
        p.error("unset DDPM_AMP: this benchmark sets each run's precision itself (--amp), and DDPM_AMP would "
                "overrule it")
    from tutorial_utils.recipe import bf16_supported
    if "bf16" in args.amp and not bf16_supported("cpu"):
        print("note: this CPU has no bf16 units, so the 'bf16' runs train in fp32 (their precision column says so)")
    set_data_env()
    torch.set_num_threads(args.threads)
    if args.phase == "speed":
        rows = speed(args.threads)
        data = json.load(open(OUT)) if OUT.is_file() else {}
        data["machine"] = machine()
        data["speed"] = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                         "threads": args.threads, "rows": rows}
        _save(data)
        return
    for name in args.candidates:
        for amp in args.amp:
            row = quality(name, amp)
            _add_run(row)
            print(f"{name} [{row['precision']}]: {row['steps']} steps of {row['batch_size']}, {row['unet']}: "
                  f"{row['two_core_seconds']:.0f} s on 2 cores ({row['train_seconds']:.0f} s wall, load "
                  f"{row['load_average_start_end']}), {row['two_core_seconds_per_step']:.3f} s/step; "
                  f"{row['share']:.0%} of {row['n_samples']} {row['judged']}, FD {row['frechet_distance']} "
                  f"(floor {row['frechet_floor']})", flush=True)
    print(f"machine: {machine()}; wrote {OUT}")


if __name__ == "__main__":
    main()
