"""Speed: the seed's training loop and sampler against the course's fast path, in one run.

    DDPM_DATA_DIR=/path/to/data python benchmarks/bench_speed.py [--threads 1] [--train-steps 30]
        [--sample-steps 100] [--extras] [--device cpu]

Training (images/s, Unet(ch=32) on the 6s, batch 128, Adam):
  * seed   — torchvision MNIST with per-image ToTensor + Lambda transforms through a DataLoader,
             contiguous (NCHW) model, a plain loop calling ``model(x_t, t)`` via p_losses, loss.item()
             every step;
  * course — ``load_mnist_tensors`` + ``TensorBatches`` (the data sits on the device as one tensor),
             channels_last model and batches, ``solutions.train``.
Sampling (seconds for 32 images, 1000 steps): the seed's per-step loop (extract of every constant,
torch.no_grad, a CPU copy of x_t kept every step, contiguous layout) against
``solutions.p_sample_loop_DDPM`` (inference_mode, channels_last).  Only ``--sample-steps`` steps are
timed, with the same per-step cost as the full chain, and scaled to 1000 (said in the output).
The course side is timed as the notebooks run it (fp32, channels_last), in NCHW, and with bf16
autocast (what ``python -m ddpm_instructor.train`` uses; opt-in for sampling:
``with torch.autocast("cpu", dtype=torch.bfloat16): p_sample_loop_DDPM(...)``).
``--extras`` also times a ``torch.compile`` variant of the sampler.  Writes benchmarks/speed.json.

Both sides run in the same process with the same thread count, alternating, and the best of
``--repeats`` timings is kept, to damp noise from other jobs on a shared machine.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import time

import torch

from common import BENCH_DIR, machine, set_data_env

IMG = (1, 28, 28)


_CPU = {}


def _timed(fn) -> float:
    """Wall seconds of ``fn()``; the process CPU seconds go to ``_CPU['last']`` (robust on a shared machine)."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    _CPU["last"] = time.process_time() - c0
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------------ training
def seed_training(model, loader, steps, device):
    """The seed's loop as written: DataLoader batches, default layout, loss.item() every step."""
    from solutions import p_losses

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses, n = [], 0
    while n < steps:
        for step, batch in enumerate(loader):
            optimizer.zero_grad()
            batch_size = batch[0].shape[0]
            batch = batch[0].to(device)
            t = torch.randint(0, 1000, (batch_size,), device=device).long()
            loss = p_losses(model, batch, t)
            losses.append(loss.item())
            loss.backward()
            optimizer.step()
            n += 1
            if n >= steps:
                break
    return losses


def course_training(model, batches, steps, autocast=False):
    from solutions import train

    device = next(model.parameters()).device
    ctx = torch.autocast(device.type, dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    return train(model, torch.optim.Adam(model.parameters(), lr=1e-3), batches, epochs=10 ** 6, max_steps=steps,
                 progress=False, autocast=ctx)


# ------------------------------------------------------------------------------------ sampling
def seed_sampling(model, n_images, steps, device):
    """The seed's sampler: a per-step Python loop recomputing every constant, default layout."""
    from solutions import extract, linear_beta_schedule

    betas = linear_beta_schedule(1000)[:steps]                 # per-step cost is that of the full chain
    alphas = 1. - betas
    alphas_cumprod = torch.cumprod(alphas, axis=0)
    sqrt_recip_alphas = torch.sqrt(1.0 / alphas)
    sqrt_one_minus_alphas_cumprod = torch.sqrt(1. - alphas_cumprod)
    alphas_cumprod_prev = torch.nn.functional.pad(alphas_cumprod[:-1], (1, 0), value=1.0)
    posterior_variance = betas * (1. - alphas_cumprod_prev) / (1. - alphas_cumprod)

    @torch.no_grad()
    def p_sample(model, x, t, t_index):
        betas_t = extract(betas, t, x.shape)
        sqrt_one_minus_alphas_cumprod_t = extract(sqrt_one_minus_alphas_cumprod, t, x.shape)
        sqrt_recip_alphas_t = extract(sqrt_recip_alphas, t, x.shape)
        model_mean = sqrt_recip_alphas_t * (x - betas_t * model(x, t) / sqrt_one_minus_alphas_cumprod_t)
        if t_index == 0:
            return model_mean
        posterior_variance_t = extract(posterior_variance, t, x.shape)
        noise = torch.randn_like(x)
        return model_mean + torch.sqrt(posterior_variance_t) * noise

    @torch.no_grad()
    def p_sample_loop(model, shape):
        b = shape[0]
        img = torch.randn(shape, device=device)
        imgs = []
        for i in reversed(range(0, steps)):
            img = p_sample(model, img, torch.full((b,), i, device=device, dtype=torch.long), i)
            imgs.append(img.cpu().numpy())
        return imgs

    return p_sample_loop(model, (n_images, *IMG))


def course_sampling(model, n_images, steps, autocast=False):
    from solutions import Schedule, p_sample_loop_DDPM

    sched = Schedule.linear(1000)
    sched = Schedule(sched.betas[:steps])
    device = next(model.parameters()).device
    ctx = torch.autocast(device.type, dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with ctx:
        return p_sample_loop_DDPM(model, (n_images, *IMG), schedule=sched, progress=False)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--train-steps", type=int, default=30)
    p.add_argument("--sample-steps", type=int, default=100)
    p.add_argument("--n-images", type=int, default=32)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--extras", action="store_true")
    args = p.parse_args()
    set_data_env()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    import solutions
    from tutorial_utils.data import TensorBatches, get_dataloaders, load_mnist_tensors

    print(f"machine: {machine()}")
    bs = 128
    torch.manual_seed(0)
    base = solutions.Unet(ch=32)

    def fresh(channels_last):
        m = solutions.Unet(ch=32)
        m.load_state_dict(base.state_dict())
        m = m.to(device)
        return m.to(memory_format=torch.channels_last) if channels_last else m

    # --- data setup (one-time costs, reported separately)
    t_seed_data = _timed(lambda: get_dataloaders(batch_size=bs, digits=[6]))
    loader, _ = get_dataloaders(batch_size=bs, digits=[6])
    holder = {}
    t_course_data = _timed(lambda: holder.update(xy=load_mnist_tensors(train=True, digits=[6], device=device)))
    x, y = holder["xy"]
    x = x.contiguous(memory_format=torch.channels_last)
    batches = TensorBatches(x, y, batch_size=bs, seed=0)
    batches_nchw = TensorBatches(x.contiguous(), y, batch_size=bs, seed=0)
    print(f"data setup (one-time): seed DataLoader {t_seed_data:.2f} s, course tensor load {t_course_data:.2f} s")

    variants_train = {
        "seed": lambda n: seed_training(fresh(False).train(), loader, n, device),
        "course fp32 channels_last": lambda n: course_training(fresh(True), batches, n),
        "course fp32 NCHW": lambda n: course_training(fresh(False), batches_nchw, n),
        "course bf16 autocast NCHW": lambda n: course_training(fresh(False), batches_nchw, n, autocast=True),
    }
    variants_sample = {
        "seed": lambda n: seed_sampling(fresh(False).eval(), args.n_images, n, device),
        "course fp32 channels_last": lambda n: course_sampling(fresh(True).eval(), args.n_images, n),
        "course fp32 NCHW": lambda n: course_sampling(fresh(False).eval(), args.n_images, n),
        "course bf16 autocast NCHW": lambda n: course_sampling(fresh(False).eval(), args.n_images, n, autocast=True),
    }
    if args.extras:
        def compiled_sampling(n):
            m = torch.compile(fresh(False).eval())
            course_sampling(m, args.n_images, 3)                 # compile outside the timing
            return _timed(lambda: course_sampling(m, args.n_images, n))
        variants_sample["course+torch.compile"] = compiled_sampling

    # warm-up (first-call allocations, oneDNN kernel selection)
    for f in variants_train.values():
        f(2)
    best_train = {k: float("inf") for k in variants_train}
    best_sample = {k: float("inf") for k in variants_sample}
    cpu_train = {k: float("inf") for k in variants_train}
    cpu_sample = {k: float("inf") for k in variants_sample}
    for _ in range(args.repeats):
        for k, f in variants_train.items():
            best_train[k] = min(best_train[k], _timed(lambda: f(args.train_steps)))
            cpu_train[k] = min(cpu_train[k], _CPU["last"])
        for k, f in variants_sample.items():
            if k == "course+torch.compile":
                best_sample[k] = min(best_sample[k], f(args.sample_steps))
            else:
                best_sample[k] = min(best_sample[k], _timed(lambda: f(args.sample_steps)))
            cpu_sample[k] = min(cpu_sample[k], _CPU["last"])

    print(f"\ntraining, Unet(ch=32) on the 6s, batch {bs}, {args.train_steps} steps, {args.threads} thread(s):")
    ips = {k: args.train_steps * bs / v for k, v in best_train.items()}
    for k, v in ips.items():
        print(f"  {k:28s} {v:8.1f} images/s   ({best_train[k] / args.train_steps:.3f} s/step)   "
              f"speed-up {v / ips['seed']:.2f}x   (CPU time: {cpu_train['seed'] / cpu_train[k]:.2f}x)")
    scale = 1000 / args.sample_steps
    print(f"\nsampling {args.n_images} images, 1000 steps (timed {args.sample_steps} steps, x{scale:g}):")
    for k, v in best_sample.items():
        print(f"  {k:28s} {v * scale:8.1f} s   ({v / args.sample_steps * 1000:.1f} ms/step)   "
              f"speed-up {best_sample['seed'] / v:.2f}x   (CPU time: {cpu_sample['seed'] / cpu_sample[k]:.2f}x)")
    out = {"machine": machine(), "threads": args.threads, "device": str(device),
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "train": {"batch_size": bs, "steps_timed": args.train_steps,
                     "images_per_s": {k: round(v, 1) for k, v in ips.items()},
                     "speedup": {k: round(v / ips["seed"], 2) for k, v in ips.items()},
                     "speedup_cpu_time": {k: round(cpu_train["seed"] / v, 2) for k, v in cpu_train.items()}},
           "sample": {"n_images": args.n_images, "steps_timed": args.sample_steps, "extrapolated_to": 1000,
                      "seconds_1000_steps": {k: round(v * scale, 1) for k, v in best_sample.items()},
                      "speedup": {k: round(best_sample["seed"] / v, 2) for k, v in best_sample.items()},
                      "speedup_cpu_time": {k: round(cpu_sample["seed"] / v, 2) for k, v in cpu_sample.items()}},
           "data_setup_s": {"seed DataLoader": round(t_seed_data, 2), "course tensor": round(t_course_data, 2)}}
    (BENCH_DIR / "speed.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
