"""Few steps, judged: the flow model (Euler, Heun) against the diffusion model (DDIM, DPM-Solver++(2M)).

    DDPM_DATA_DIR=/path/to/data python benchmarks/bench_fewstep.py [--steps 1 2 4 8 16 32] [--w 2]
        [--per-class 20] [--samplers euler heun ddim dpm2m] [--threads 1] [--batch 100] [--seed 0]
        [--amp bf16|none] [--flow-dir DIR]

Every run draws ``per_class`` images of each digit, guided at the same ``w``, from the same seeds (the same
starting noise x_1 = x_T for every sampler: each draws ``torch.randn`` right after ``torch.manual_seed``):

* ``euler``, ``heun``: ``solutions.flow.flow_sample_loop`` on ``unet_flow`` (flow matching, notebook 8);
* ``ddim``: ``solutions.ddim_sample_loop`` on ``unet_cond`` (DDPM-trained), η = 0, x̂_0 clipped to [-1, 1];
* ``dpm2m``: ``solutions.dpm_solver_2m_sample_loop`` on ``unet_cond``, x̂_0 clipped the same way;
* ``reflow``: Euler on ``unet_flow_reflow`` (``unet_flow`` reflowed on pairs from its guided ODE at the pairs' w,
  its json's ``recipe.reflow.w``: the guidance is distilled in), so it is sampled unguided (w = 1): one call of
  batch B per step, where a guided call is one call of batch 2B.  It is measured only when ``--w`` equals the
  w its pairs were drawn at (the comparison is at the same guidance).

Reported per run: accuracy (the share the course's judge reads as the asked-for digit), the Fréchet distance
to the MNIST test set with its same-N floor (``tutorial_utils.judge.judge_samples``), wall and CPU seconds,
and the network calls per image (``solutions.flow.network_calls``: a guided call evaluates the conditional and
the null label in one batch of 2B, so it counts once).  The reference is DDPM-1000 at the same w from
``benchmarks/guidance_unet_cond.json`` (``bench_guidance.py``).  Results are merged into
``benchmarks/fewstep.json`` one run at a time; ``make_results.py`` renders them into RESULTS.md.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import time

import torch

from common import BENCH_DIR, judge_samples, load_classifier, machine, set_data_env

OUT = BENCH_DIR / "fewstep.json"
GUIDANCE = BENCH_DIR / "guidance_unet_cond.json"
SAMPLERS = {"euler": ("unet_flow", "flow matching, Euler"), "heun": ("unet_flow", "flow matching, Heun"),
            "ddim": ("unet_cond", "DDPM model, DDIM (η 0, x̂_0 clipped)"),
            "dpm2m": ("unet_cond", "DDPM model, DPM-Solver++(2M) (x̂_0 clipped)"),
            "reflow": ("unet_flow_reflow", "reflowed flow (guidance distilled), Euler, w = 1")}
TARGET = {"accuracy": 0.99, "fd_ratio": 1.3, "max_steps": 10}


def load(name, directory):
    """A shipped model (sha256 checked) with its metadata; ``directory`` to measure a candidate checkpoint."""
    from tutorial_utils.checkpoints import checkpoint_paths, load_pretrained

    model = load_pretrained(name, directory=directory)
    return model, json.loads(checkpoint_paths(name, directory)[1].read_text())


def sample(sampler, model, n_steps, labels, w, null_class, seed):
    import solutions
    from solutions import flow

    shape = (labels.numel(), 1, 28, 28)
    if sampler in ("euler", "heun"):
        return flow.flow_sample_loop(model, shape, labels, n_steps=n_steps, method=sampler, w=w,
                                     null_class=null_class, seed=seed)
    if sampler == "reflow":                  # guidance distilled into the weights: one unguided call per step
        return flow.flow_sample_loop(model, shape, labels, n_steps=n_steps, method="euler", seed=seed)
    if sampler == "ddim":
        return solutions.ddim_sample_loop(model, shape, n_steps=n_steps, eta=0.0, seed=seed, y=labels, w=w,
                                          null_class=null_class, clip_x0=True)
    return solutions.dpm_solver_2m_sample_loop(model, shape, labels, n_steps=n_steps, w=w, null_class=null_class,
                                          seed=seed, clip_x0=True)


def reference(w, n_samples):
    """DDPM-1000 at this w and this number of samples, from bench_guidance.py's json (None if not measured)."""
    runs = json.loads(GUIDANCE.read_text())["runs"] if GUIDANCE.is_file() else {}
    for r in runs.values():
        if r["sampler_steps"] == 1000 and r["w"] == w and r["n_samples"] == n_samples:
            keep = ("run", "sampler", "sampler_steps", "w", "n_samples", "accuracy", "frechet_distance",
                    "frechet_floor_real_train", "sampling_seconds", "seed", "checkpoint_sha256", "machine", "date")
            return {k: r[k] for k in keep}
    return None


def merge(entry: dict, ref) -> None:
    data = json.loads(OUT.read_text()) if OUT.is_file() else {"runs": {}}
    data["runs"][entry["run"]] = entry
    order = list(SAMPLERS)
    data["runs"] = dict(sorted(data["runs"].items(), key=lambda kv: (order.index(kv[1]["sampler"]),
                                                                     kv[1]["sampler_steps"])))
    data["reference_ddpm1000"] = ref
    data["target"] = TARGET
    OUT.write_text(json.dumps(data, indent=2) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    p.add_argument("--samplers", nargs="+", choices=list(SAMPLERS), default=list(SAMPLERS))
    p.add_argument("--w", type=float, default=2.0)
    p.add_argument("--per-class", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=100, help="images per sampler call (a guided call runs 2x that)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--amp", choices=["bf16", "none"], default="bf16")
    p.add_argument("--flow-dir", default=None,
                   help="folder of a candidate unet_flow or unet_flow_reflow (default: checkpoints/)")
    args = p.parse_args()
    set_data_env()
    torch.set_num_threads(args.threads)
    from solutions.flow import network_calls

    models = {name: load(name, args.flow_dir if name.startswith("unet_flow") else None)
              for name in {SAMPLERS[s][0] for s in args.samplers}}
    clf = load_classifier()
    labels = torch.arange(10).repeat_interleave(args.per_class)
    ref = reference(args.w, labels.numel())
    print(f"machine: {machine()}\nreference DDPM-1000 at w = {args.w:g}: {ref}")
    for sampler in args.samplers:
        name = SAMPLERS[sampler][0]
        model, meta = models[name]
        distilled = meta["recipe"].get("reflow", {}).get("w")            # the w a reflowed model's pairs had
        if distilled is not None and distilled != args.w:
            print(f"skipped {sampler}: {name} distils w = {distilled:g}, not --w {args.w:g}")
            continue
        null_class = meta["recipe"].get("null_class")
        for n_steps in args.steps:
            amp = torch.autocast("cpu", dtype=torch.bfloat16) if args.amp == "bf16" else contextlib.nullcontext()
            t0, c0 = time.time(), time.process_time()
            with amp:
                x = torch.cat([sample(sampler, model, n_steps, labels[i:i + args.batch], args.w, null_class,
                                      args.seed + i) for i in range(0, labels.numel(), args.batch)]).float()
            secs, cpu = time.time() - t0, time.process_time() - c0
            r = judge_samples(x, labels, classifier=clf, seed=args.seed)
            per_class = [round(r["per_class_accuracy"][c], 3) for c in range(10)]
            entry = {"run": f"{sampler}:{n_steps}", "sampler": sampler, "description": SAMPLERS[sampler][1],
                     "model": name, "sampler_steps": n_steps, "network_calls": network_calls(sampler, n_steps),
                     "w": args.w, "sampled_w": 1.0 if distilled is not None else args.w,
                     "images_per_call": "B" if distilled is not None or args.w == 1 else "2B",
                     "n_samples": r["n_samples"], "accuracy": round(r["accuracy"], 4),
                     "per_class_accuracy": per_class, "min_class_accuracy": min(per_class),
                     "frechet_distance": round(r["frechet_distance"], 3),
                     "frechet_floor_real_train": round(r["frechet_floor"], 3),
                     "sampling_seconds": round(secs, 2), "sampling_cpu_seconds": round(cpu, 2),
                     "threads": args.threads, "amp": args.amp, "batch": args.batch, "seed": args.seed,
                     "checkpoint_steps": meta.get("steps"), "checkpoint_sha256": meta.get("sha256"),
                     "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
            merge(entry, ref)
            print(f"{entry['run']:>9} ({entry['network_calls']:2d} calls): {secs:6.1f} s (cpu {cpu:5.1f}); accuracy "
                  f"{r['accuracy']:.1%}, worst class {min(per_class):.0%}; FD {r['frechet_distance']:.2f} "
                  f"(floor {r['frechet_floor']:.2f})", flush=True)


if __name__ == "__main__":
    main()
