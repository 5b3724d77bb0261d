"""Classifier-free guidance and DDIM on the class-conditional checkpoint, judged by the course's MNIST classifier.

    DDPM_DATA_DIR=/path/to/data python benchmarks/bench_guidance.py --runs ddpm:1 ddpm:3 ddim50:1 ddim50:3
        [--per-class 30] [--threads 1] [--batch 100] [--seed 0] [--amp bf16|none] [--checkpoint-dir DIR]
        [--write-quality]

Each run is ``<sampler>:<w>``: ``ddpm`` is the 1000-step ancestral sampler (``solutions.p_sample_loop_cDDPM``
for w = 1, ``solutions.p_sample_loop_cfg`` with the guided ε̃ = ε_u + w (ε_c - ε_u) otherwise), ``ddim<N>``
is ``solutions.ddim_sample_loop`` with N evenly spaced steps, η = ``--ddim-eta`` (0 by default) and, with
``--ddim-clip``, x̂_0 clamped to [-1, 1].  Every run draws ``per_class`` images of
each digit from the same seeds (the same starting noise), so the runs differ only in sampler and w.  Reported:
accuracy against the asked-for digit (overall, per class, the worst class), the Fréchet distance to the MNIST test
set in the classifier's feature space with its real-data floor (``tutorial_utils.judge.judge_samples``), and the
wall-clock and process CPU seconds.  Results are merged into ``benchmarks/guidance_unet_cond.json`` (one entry
per run, so two processes can measure different runs at once); ``--write-quality`` also writes the ``ddpm:1`` run
as ``quality_unet_cond.json`` (the format of ``bench_quality.py``), read by ``make_results.py``.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import tempfile
import time
from pathlib import Path

import torch

from common import BENCH_DIR, judge_samples, load_classifier, machine, set_data_env

OUT = BENCH_DIR / "guidance_unet_cond.json"


def parse_run(s: str) -> tuple[str, int, float]:
    sampler, w = s.split(":")
    n = 1000 if sampler == "ddpm" else int(sampler.removeprefix("ddim"))
    return sampler, n, float(w)


def sample(model, sampler, n_steps, w, labels, seed, null_class, clip_x0=False, eta=0.0):
    import solutions

    shape = (labels.numel(), 1, 28, 28)
    if sampler == "ddpm":
        if w == 1:
            return solutions.p_sample_loop_cDDPM(model, shape, labels, progress=False, seed=seed)
        return solutions.p_sample_loop_cfg(model, shape, labels, w, null_class, progress=False, seed=seed)
    return solutions.ddim_sample_loop(model, shape, n_steps=n_steps, eta=eta, seed=seed, y=labels,
                                      w=None if w == 1 else w, null_class=null_class, clip_x0=clip_x0)


def load_cond(directory):
    """``unet_cond`` from ``directory`` with the architecture its own json records (sha256 checked), so a
    candidate checkpoint can be measured before the PRETRAINED table describes it."""
    from tutorial_utils.checkpoints import CheckpointError, build_model, checkpoint_paths, file_sha256, load_pretrained

    if directory is None:
        model = load_pretrained("unet_cond")
        return model, json.loads(checkpoint_paths("unet_cond")[1].read_text())
    pt, js = checkpoint_paths("unet_cond", directory)
    meta = json.loads(js.read_text())
    if file_sha256(pt) != meta["sha256"]:
        raise CheckpointError(f"{pt} does not match the sha256 in {js}")
    model = build_model(meta["architecture"])
    model.load_state_dict(torch.load(pt, map_location="cpu", weights_only=True))
    return model.eval(), meta


def merge(entry: dict) -> None:
    lock = Path(tempfile.gettempdir()) / "ddpm_bench_guidance.lock"          # kept: unlinking would race
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        data = json.loads(OUT.read_text()) if OUT.is_file() else {"runs": {}}
        data["runs"][entry["run"]] = entry
        data["runs"] = dict(sorted(data["runs"].items()))
        OUT.write_text(json.dumps(data, indent=2) + "\n")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", nargs="+", default=["ddpm:1", "ddpm:2", "ddpm:3", "ddpm:4", "ddim50:1", "ddim50:3"])
    p.add_argument("--per-class", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=100, help="images per sampler call (a guided call runs 2x that)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--amp", choices=["bf16", "none"], default="bf16",
                   help="bf16 autocast for the model's forward pass (see check_bf16_sampling.py)")
    p.add_argument("--checkpoint-dir", default=None, help="default: the course's checkpoints/")
    p.add_argument("--write-quality", action="store_true")
    p.add_argument("--ddim-clip", action="store_true", help="clamp DDIM's predicted x_0 to [-1, 1]")
    p.add_argument("--ddim-eta", type=float, default=0.0, help="DDIM's η (0: deterministic, 1: DDPM-like noise)")
    args = p.parse_args()
    set_data_env()
    torch.set_num_threads(args.threads)
    model, meta = load_cond(args.checkpoint_dir)
    null_class = meta["recipe"].get("null_class")
    clf = load_classifier()
    labels = torch.arange(10).repeat_interleave(args.per_class)
    print(f"machine: {machine()}")
    for run in args.runs:
        sampler, n_steps, w = parse_run(run)
        if w != 1 and null_class is None:
            raise SystemExit(f"{run}: the checkpoint has no null class, so it cannot be guided")
        amp = torch.autocast("cpu", dtype=torch.bfloat16) if args.amp == "bf16" else contextlib.nullcontext()
        t0, c0 = time.time(), time.process_time()
        with amp:
            chunks = [sample(model, sampler, n_steps, w, labels[i:i + args.batch], args.seed + i, null_class,
                             args.ddim_clip, args.ddim_eta)
                      for i in range(0, labels.numel(), args.batch)]
        secs, cpu = time.time() - t0, time.process_time() - c0
        samples = torch.cat(chunks).float()
        r = judge_samples(samples, labels, classifier=clf, seed=args.seed)
        per_class = [round(r["per_class_accuracy"][c], 3) for c in range(10)]
        if sampler != "ddpm":
            run = f"{sampler}:{w:g}:eta{args.ddim_eta:g}" + (":clip" if args.ddim_clip else "")
        entry = {"run": run, "sampler": "DDPM ancestral" if sampler == "ddpm" else
                 f"DDIM (η {args.ddim_eta:g}" + (", x̂_0 clipped)" if args.ddim_clip else ")"),
                 "eta": 1.0 if sampler == "ddpm" else args.ddim_eta, "clip_x0": sampler != "ddpm" and args.ddim_clip,
                 "sampler_steps": n_steps, "w": w, "guided": w != 1, "n_samples": r["n_samples"],
                 "per_class": args.per_class, "accuracy": round(r["accuracy"], 4), "per_class_accuracy": per_class,
                 "min_class_accuracy": min(per_class), "frechet_distance": round(r["frechet_distance"], 3),
                 "frechet_floor_real_train": round(r["frechet_floor"], 3),
                 "sampling_seconds": round(secs, 1), "sampling_cpu_seconds": round(cpu, 1),
                 "seconds_per_100_images": round(100 * secs / r["n_samples"], 1), "threads": args.threads,
                 "amp": args.amp, "batch": args.batch, "seed": args.seed,
                 "checkpoint_steps": meta.get("steps"), "checkpoint_sha256": meta.get("sha256"),
                 "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        merge(entry)
        print(f"{run:>9}: {r['n_samples']} samples in {secs:.0f} s (cpu {cpu:.0f} s); accuracy {r['accuracy']:.1%}, "
              f"worst class {min(per_class):.0%}, per class {per_class}; FD {r['frechet_distance']:.2f} "
              f"(floor {r['frechet_floor']:.2f})", flush=True)
        if args.write_quality and run == "ddpm:1":
            q = {"model": "unet_cond", "n_samples": r["n_samples"], "sampling_seconds": round(secs, 1),
                 "threads": args.threads,
                 "sampler": "1000-step DDPM ancestral sampler (solutions)"
                            + (", bf16 autocast" if args.amp == "bf16" else ", fp32"),
                 "checkpoint_steps": meta.get("steps"), "checkpoint_sha256": meta.get("sha256"),
                 "frechet_distance": round(r["frechet_distance"], 3),
                 "frechet_floor_real_train": round(r["frechet_floor"], 3), "fd_reference": "MNIST test set (all 10k)",
                 "out_of_range_pixels": round(((samples < -1.05) | (samples > 1.05)).float().mean().item(), 5),
                 "machine": machine(), "date": entry["date"], "accuracy": entry["accuracy"],
                 "per_class_accuracy": per_class, "written_by": "bench_guidance.py --write-quality"}
            (BENCH_DIR / "quality_unet_cond.json").write_text(json.dumps(q, indent=2) + "\n")
        if (BENCH_DIR.parent / "runs").is_dir():                  # git-ignored: for looking at the samples
            torch.save({"samples": samples, "labels": labels}, BENCH_DIR.parent / "runs" / f"guidance_{run.replace(':', '_w')}.pt")


if __name__ == "__main__":
    main()
