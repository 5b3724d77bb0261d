"""Your own model: the `laptop` profile's training runs of notebooks 4 and 6, timed and judged.

    DDPM_DATA_DIR=/path/to/data python benchmarks/bench_student.py [--only digit6 cond] [--amp bf16 none]
        [--threads 2] [--steps N] [--n 100]

For each run it does what the notebook's cells do, with the same seeds: the profile's recipe
(``tutorial_utils.runtime.PROFILES["laptop"]``), the course's loop (``solutions.train``, notebook 4's
``train_ddpm`` with its blanks filled in), the EMA weights; then it draws ``--n`` samples with DDIM-50
(η = 1, ``solutions.ddim_sample_loop``) and asks the course's judge (``tutorial_utils.judge``):

* notebook 4 (``unet_digit6`` on the 6s): the share read as a 6 (target ≥ 95 %, training ≤ 3 min on 2 fp32 cores,
  ≤ 90 s with bf16 units);
* notebook 6 (``UNet_cond`` with label dropout): the share read as the asked-for digit, guided at w = 2 and
  plain (w = 1) (target ≥ 97 % guided, training ≤ 6 min on 2 fp32 cores, ≤ 3 min with bf16 units).

``--amp bf16 none`` trains each run in both precisions, one after the other, on this machine (the recipe's
``amp`` set per run; a CPU with bf16 units, AVX512-BF16 or AMX, measures both) and writes ``student.json`` (bf16)
and ``student_fp32.json`` (fp32); without ``--amp`` the profile's precision (``DDPM_AMP`` may force fp32) goes to
``student.json``.  Each json (read by ``make_results.py``) holds: training seconds (wall and process CPU),
seconds per step, images per second, the precision, the load average during the run, and the judge's figures.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import resource
import time

import torch

from common import BENCH_DIR, judge_samples, machine, set_data_env


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _precision(recipe, device) -> str:
    from tutorial_utils.recipe import bf16_supported
    if recipe.uses_bf16(device):
        return "bf16 autocast"
    return "fp32" + ("" if recipe.amp_in_force() == "none" or bf16_supported(device) else " (no bf16 units on this CPU)")


def model_name(kind: str, unet: dict) -> str:
    """How a run's json names its model, e.g. ``Unet(ch=16, input_skip=True)``."""
    args = ", ".join(f"{k}={v}" for k, v in {**unet, **({"n_classes": 11} if kind == "cond" else {})}.items())
    return f"{'UNet_cond' if kind == 'cond' else 'Unet'}({args})"


def run(kind: str, steps: int | None, n: int, seed: int = 0, *, recipe=None, unet: dict | None = None,
        amp: str | None = None) -> dict:
    """One training run of notebook 4 (``kind="digit6"``) or 6 (``"cond"``), timed and judged.

    By default the laptop profile's recipe and UNet (``profile.unet_kwargs``); ``recipe``/``unet`` replace them (``bench_recipe.py``'s
    candidates) and ``amp`` (``"bf16"`` or ``"none"``) sets the recipe's precision for this run."""
    import solutions
    from tutorial_utils import TensorBatches, load_mnist_tensors, seed_everything
    from tutorial_utils.runtime import PROFILES

    profile = PROFILES["laptop"]
    cond = kind == "cond"
    recipe = recipe or (profile.recipe_cond if cond else profile.recipe_digit6)
    unet = dict(unet or profile.unet_kwargs)
    if amp is not None:
        recipe = recipe.replace(amp=amp)
    if steps:
        recipe = recipe.replace(steps=steps, warmup=min(recipe.warmup, steps - 1))
    device = torch.device("cpu")
    x, y = load_mnist_tensors(train=True, digits=None if cond else [6], device=device)
    loader = TensorBatches(x, y, batch_size=recipe.batch_size, seed=0)
    seed_everything(seed)                                   # as the notebook's training cell
    model = solutions.UNet_cond(n_classes=11, **unet) if cond else solutions.Unet(**unet)
    opt, ema = recipe.optimizer(model), recipe.ema_model(model)
    load0, cpu0, t0 = os.getloadavg()[0], _cpu_seconds(), time.time()
    losses = solutions.train(model, opt, loader, epochs=math.ceil(recipe.steps / len(loader)), max_steps=recipe.steps,
                             progress=False, scheduler=recipe.scheduler(opt), ema=ema, autocast=recipe.autocast(device),
                             grad_clip=recipe.grad_clip, conditional=cond, p_uncond=recipe.p_uncond,
                             null_class=recipe.null_class)
    wall, cpu = time.time() - t0, _cpu_seconds() - cpu0
    load1 = os.getloadavg()[0]
    mine = ema.module if ema is not None else model
    out = {"notebook": 6 if cond else 4, "model": model_name(kind, unet), "width": unet["ch"],
           "input_skip": bool(unet.get("input_skip")),
           "recipe": recipe.describe(), "steps": len(losses), "batch_size": recipe.batch_size,
           "precision": _precision(recipe, device),
           "train_seconds": round(wall, 1), "train_cpu_seconds": round(cpu, 1),
           "seconds_per_step": round(wall / len(losses), 3),
           "images_per_second": round(len(losses) * recipe.batch_size / wall, 1),
           "load_average_start_end": [round(load0, 2), round(load1, 2)],
           "final_loss": round(sum(losses[-50:]) / len(losses[-50:]), 5),
           "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    t1 = time.time()
    if cond:
        labels = torch.arange(10).repeat_interleave(math.ceil(n / 10))[:n]
        for w in (2.0, 1.0):
            xs = solutions.ddim_sample_loop(mine, (n, 1, 28, 28), n_steps=50, eta=1.0, seed=seed, y=labels,
                                            w=None if w == 1 else w, null_class=None if w == 1 else 10)
            rep = judge_samples(xs, labels)
            out[f"w{w:g}"] = {"accuracy": rep["accuracy"], "per_class": rep["per_class_accuracy"],
                              "frechet_distance": round(rep["frechet_distance"], 2),
                              "frechet_floor": round(rep["frechet_floor"], 2)}
    else:
        xs = solutions.ddim_sample_loop(mine, (n, 1, 28, 28), n_steps=50, eta=1.0, seed=seed)
        rep = judge_samples(xs, torch.full((n,), 6))          # asked for 6s: FD against the test 6s
        out["share_six"] = rep["accuracy"]
        out["predicted_counts"] = rep["predicted_counts"]
        out["frechet_distance"], out["frechet_floor"] = round(rep["frechet_distance"], 2), round(rep["frechet_floor"], 2)
    out["n_samples"], out["sampler"] = n, "DDIM-50, η = 1"
    out["sample_and_judge_seconds"] = round(time.time() - t1, 1)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=["digit6", "cond"], default=["digit6", "cond"])
    p.add_argument("--amp", nargs="+", choices=["bf16", "none"], default=None,
                   help="train in these precisions, one after the other in this run (the recipe's amp, set per "
                        "run: bf16 autocast / none = fp32); default: the profile's, as DDPM_AMP leaves it")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=None, help="override the profile's steps (smoke tests only)")
    p.add_argument("--n", type=int, default=100, help="samples judged")
    p.add_argument("--out", default=None, help="the json to write (default benchmarks/student.json; with --amp, "
                   "student.json for bf16 and student_fp32.json for fp32)")
    args = p.parse_args()
    if args.amp and os.environ.get("DDPM_AMP"):
        p.error("unset DDPM_AMP when you pass --amp: DDPM_AMP would overrule the precision --amp sets")
    set_data_env()
    torch.set_num_threads(args.threads)
    for amp in args.amp or [None]:
        default = "student_fp32.json" if amp == "none" else "student.json"
        path = os.path.abspath(args.out or str(BENCH_DIR / default))
        if args.out and len(args.amp or []) > 1:
            root, ext = os.path.splitext(path)
            path = f"{root}_{'fp32' if amp == 'none' else amp}{ext}"
        results = json.load(open(path)) if os.path.isfile(path) else {}
        results["machine"] = machine()
        for kind in args.only:
            r = run(kind, args.steps, args.n, amp=amp)
            results[kind] = r
            bf16 = r["precision"].startswith("bf16")
            if kind == "digit6":
                verdict = f"{r['share_six']:.0%} of {r['n_samples']} read as a 6 (target ≥ 95 %)"
                limit = 90 if bf16 else 180
            else:
                verdict = (f"guided w = 2: {r['w2']['accuracy']:.0%} read as their label (target ≥ 97 %), "
                           f"w = 1: {r['w1']['accuracy']:.0%}")
                limit = 180 if bf16 else 360
            print(f"notebook {r['notebook']}: {r['steps']} steps of {r['batch_size']} in {r['train_seconds']:.0f} s "
                  f"({r['train_cpu_seconds'] / args.threads:.0f} s of {args.threads}-core time, "
                  f"{r['seconds_per_step']:.3f} s/step, {r['images_per_second']:.0f} images/s, {r['precision']}; "
                  f"target ≤ {limit} s on 2 cores); {verdict}; load average {r['load_average_start_end']}", flush=True)
            with open(path, "w") as f:
                json.dump(results, f, indent=1)
                f.write("\n")
        print(f"machine: {results['machine']}; wrote {path}")


if __name__ == "__main__":
    main()
