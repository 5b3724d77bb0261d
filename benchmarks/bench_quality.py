"""Quality of the shipped checkpoints, judged by the benchmark's MNIST classifier.

    DDPM_DATA_DIR=/path/to/data python benchmarks/bench_quality.py [--models unet_digit6 unet_cond]
        [--n-uncond 300] [--per-class 30] [--threads 2] [--batch 100] [--seed 0]

For each model it samples with the course's sampler (``solutions.p_sample_loop_DDPM`` /
``p_sample_loop_cDDPM``, the full 1000 steps, fp32) and reports
  * unet_digit6: the share of samples the classifier reads as 6 (target ≥ 95 %);
  * unet_cond:   the classifier's accuracy against the requested labels (target ≥ 97 %), per class;
  * the Fréchet distance between the samples and MNIST test images in the classifier's 128-d
    penultimate feature space (the test 6s for unet_digit6, the whole test set for unet_cond), and
    its floor: the same distance for an equal number of real *training* images (same classes)
    against the same test images.  Small samples inflate the distance, so compare against the floor.
Results go to stdout and to ``benchmarks/quality_<model>.json`` (read by ``make_results.py``).
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from common import BENCH_DIR, classify, frechet_distance, load_classifier, machine, set_data_env


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", nargs="+", default=["unet_digit6", "unet_cond"])
    p.add_argument("--n-uncond", type=int, default=300)
    p.add_argument("--per-class", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-dir", default=None, help="default: the course's checkpoints/")
    p.add_argument("--sample-steps", type=int, default=1000, help="T of the sampler (smoke tests only)")
    args = p.parse_args()
    set_data_env()
    torch.set_num_threads(args.threads)
    import solutions
    from tutorial_utils import load_pretrained
    from tutorial_utils.checkpoints import checkpoint_paths
    from tutorial_utils.data import load_mnist_tensors

    sched = None if args.sample_steps == 1000 else solutions.Schedule.linear(args.sample_steps)
    clf = load_classifier()
    x_test, y_test = load_mnist_tensors(train=False)
    x_train, y_train = load_mnist_tensors(train=True)
    _, f_test = classify(clf, x_test)
    g = torch.Generator().manual_seed(args.seed)
    print(f"machine: {machine()}")

    for name in args.models:
        model = load_pretrained(name, directory=args.checkpoint_dir)
        meta = json.loads(checkpoint_paths(name, args.checkpoint_dir)[1].read_text())
        t0 = time.time()
        if name == "unet_digit6":
            n = args.n_uncond
            chunks = [solutions.p_sample_loop_DDPM(model, (min(args.batch, n - i), 1, 28, 28), progress=False,
                                                   seed=args.seed + i, schedule=sched) for i in range(0, n, args.batch)]
            labels = torch.full((n,), 6)
            ref_mask_test = y_test == 6
            real_pool = (y_train == 6).nonzero().flatten()
            real_idx = real_pool[torch.randperm(real_pool.numel(), generator=g)[:n]]
        else:
            labels = torch.arange(10).repeat_interleave(args.per_class)
            n = labels.numel()
            chunks = [solutions.p_sample_loop_cDDPM(model, (min(args.batch, n - i), 1, 28, 28),
                                                    labels[i:i + args.batch], progress=False, seed=args.seed + i,
                                                    schedule=sched)
                      for i in range(0, n, args.batch)]
            ref_mask_test = torch.ones_like(y_test, dtype=torch.bool)
            real_idx = torch.cat([(y_train == c).nonzero().flatten()[
                torch.randperm(int((y_train == c).sum()), generator=g)[:args.per_class]] for c in range(10)])
        secs = time.time() - t0
        samples = torch.cat(chunks)
        pred, f_samp = classify(clf, samples)
        _, f_real = classify(clf, x_train[real_idx])
        fd = frechet_distance(f_samp, f_test[ref_mask_test])
        fd_floor = frechet_distance(f_real, f_test[ref_mask_test])
        real_acc = (classify(clf, x_train[real_idx])[0] == y_train[real_idx]).float().mean().item()
        res = {"model": name, "n_samples": n, "sampling_seconds": round(secs, 1), "threads": args.threads,
               "sampler": f"{args.sample_steps}-step DDPM ancestral sampler (solutions), fp32",
               "checkpoint_steps": meta.get("steps"), "checkpoint_sha256": meta.get("sha256"),
               "frechet_distance": round(fd, 3), "frechet_floor_real_train": round(fd_floor, 3),
               "fd_reference": "MNIST test 6s" if name == "unet_digit6" else "MNIST test set (all 10k)",
               "classifier_acc_on_the_real_images": round(real_acc, 4),
               "out_of_range_pixels": round(((samples < -1.05) | (samples > 1.05)).float().mean().item(), 5),
               "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        if name == "unet_digit6":
            res["share_read_as_6"] = round((pred == 6).float().mean().item(), 4)
            res["predicted_counts"] = torch.bincount(pred, minlength=10).tolist()
            head = f"share read as 6: {res['share_read_as_6']:.1%} (target >= 95%)"
        else:
            res["accuracy"] = round((pred == labels).float().mean().item(), 4)
            res["per_class_accuracy"] = [round((pred[labels == c] == c).float().mean().item(), 3)
                                         for c in range(10)]
            head = f"conditional accuracy: {res['accuracy']:.1%} (target >= 97%), per class {res['per_class_accuracy']}"
        print(f"\n{name} ({meta.get('steps')} training steps): {n} samples in {secs:.0f} s, {args.threads} thread(s)")
        print(f"  {head}")
        print(f"  Fréchet distance to {res['fd_reference']}: {fd:.2f}   "
              f"(floor, {n} real training images: {fd_floor:.2f})")
        (BENCH_DIR / f"quality_{name}.json").write_text(json.dumps(res, indent=2) + "\n")
        if (BENCH_DIR.parent / "runs").is_dir():                  # git-ignored: for looking at the samples
            torch.save({"samples": samples.clone(), "labels": labels, "predicted": pred},
                       BENCH_DIR.parent / "runs" / f"samples_{name}.pt")


if __name__ == "__main__":
    main()
