"""Does bf16 autocast change what the sampler draws?  Same seed, fp32 vs bf16 autocast.

    DDPM_DATA_DIR=/path/to/data python benchmarks/check_bf16_sampling.py [--n 16] [--threads 1]

Samples ``--n`` images from the shipped ``unet_digit6`` with the full 1000-step sampler twice from
the same seed (the same x_T and the same noise every step), once in fp32 and once inside
``torch.autocast("cpu", dtype=torch.bfloat16)``, and prints the pixel differences, whether the
benchmark classifier reads each pair the same way, and the CPU seconds of each run.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from common import BENCH_DIR, classify, load_classifier, set_data_env


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=123)
    args = p.parse_args()
    set_data_env()
    torch.set_num_threads(args.threads)
    import solutions
    from tutorial_utils import load_pretrained

    model = load_pretrained("unet_digit6")
    out = {}
    for label, ctx in (("fp32", torch.autocast("cpu", enabled=False)),
                       ("bf16", torch.autocast("cpu", dtype=torch.bfloat16))):
        c0 = time.process_time()
        with ctx:
            out[label] = solutions.p_sample_loop_DDPM(model, (args.n, 1, 28, 28), progress=False, seed=args.seed)
        out[label + "_cpu_s"] = time.process_time() - c0
    a, b = out["fp32"].float(), out["bf16"].float()
    clf = load_classifier()
    pa, pb = classify(clf, a)[0], classify(clf, b)[0]
    res = {"n": args.n, "max_abs_diff": round((a - b).abs().max().item(), 4),
           "mean_abs_diff": round((a - b).abs().mean().item(), 5),
           "pixels_differing_by_more_than_0.1": round(((a - b).abs() > 0.1).float().mean().item(), 5),
           "classifier_agrees": round((pa == pb).float().mean().item(), 4),
           "read_as_6_fp32": int((pa == 6).sum()), "read_as_6_bf16": int((pb == 6).sum()),
           "cpu_seconds_fp32": round(out["fp32_cpu_s"], 1), "cpu_seconds_bf16": round(out["bf16_cpu_s"], 1),
           "threads": args.threads}
    print(json.dumps(res, indent=2))
    (BENCH_DIR / "bf16_sampling.json").write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
