"""Train the course's pretrained checkpoints: a thin command line over the course's one training loop.

    python -m ddpm_instructor.train --model unet_digit6             # the shipped recipe (1800 steps)
    python -m ddpm_instructor.train --model unet_cond --resume      # continue an interrupted run

What it does (see docs/CHECKPOINTS.md):
  * the model, its constructor kwargs and the recipe's defaults (steps, lr, EMA, ...) come from the one
    table of shipped models, ``tutorial_utils.checkpoints.PRETRAINED``; command-line options override them;
  * MNIST as one tensor on the device (``load_mnist_tensors`` + ``TensorBatches``), channels_last;
  * the loop is ``solutions.train``, notebook 4's Algorithm 1 completed (the loss ``solutions.p_losses``, or for
    a recipe with ``"objective": "flow"`` ``solutions.flow.flow_matching_loss``, notebook 8), run with the parts
    of ``tutorial_utils.recipe.Recipe``: AdamW, linear warm-up then cosine decay (``torch.optim.lr_scheduler``),
    gradient clipping, an EMA of the weights (``torch.optim.swa_utils.AveragedModel``; the EMA weights are
    what is saved), bf16 autocast where the device has bf16 units (``--amp bf16``, the default; weights,
    optimizer state and EMA stay fp32);
  * seeded; a resume state (model, EMA, optimizer, step, RNG, data position) is written every
    ``--save-every`` steps under ``runs/train_<model>/`` and ``--resume`` continues from it;
  * writes ``<out>/<model>.pt`` and ``<out>/<model>.json`` through ``save_checkpoint`` (with the kwargs);
  * a recipe with ``"reflow"`` (``unet_flow_reflow``) trains on pairs instead of MNIST: the teacher's guided ODE
    maps noise z to an image x (``solutions.flow.reflow_pairs``, cached in ``runs/train_<model>/pairs.pt``), and
    flow matching on the pairs (x_t = (1 - t) x + t z, target z - x) starts from the teacher's weights.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

from tutorial_utils.checkpoints import CHECKPOINT_DIR, COURSE_ROOT, PRETRAINED, build_model, save_checkpoint
from tutorial_utils.data import TensorBatches, load_mnist_tensors
from tutorial_utils.recipe import Recipe

RUNS_DIR = COURSE_ROOT / "runs"

# Options whose default is the model's entry in PRETRAINED[name]["recipe"] (None on the command line = not given).
RECIPE_OPTIONS = ("steps", "batch_size", "lr", "warmup", "min_lr_ratio", "weight_decay", "grad_clip", "ema",
                  "p_uncond", "null_class")
# defaults of the options a recipe may leave out (an unconditional model has no label to drop)
RECIPE_FALLBACK = {"p_uncond": 0.0, "null_class": None}
# the training objectives a recipe may name ("objective", default "ddpm"): what the json records about each
OBJECTIVES = {
    "ddpm": "linear beta 1e-4..0.02, T=1000, loss solutions.p_losses",
    "flow": "flow matching: x_t = (1 - t) x_0 + t eps, t ~ U[0, 1], target eps - x_0, time input "
            "solutions.flow.TIME_SCALE * t, loss solutions.flow.flow_matching_loss",
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m ddpm_instructor.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, choices=sorted(PRETRAINED))
    d = "default: the shipped recipe, tutorial_utils.checkpoints.PRETRAINED"
    p.add_argument("--steps", type=int, default=None, help=f"optimizer steps ({d})")
    p.add_argument("--batch-size", type=int, default=None, help=f"({d})")
    p.add_argument("--lr", type=float, default=None, help=f"peak learning rate ({d})")
    p.add_argument("--warmup", type=int, default=None, help=f"linear warmup steps ({d})")
    p.add_argument("--min-lr-ratio", type=float, default=None, help=f"final lr as a fraction of --lr ({d})")
    p.add_argument("--weight-decay", type=float, default=None, help=f"({d})")
    p.add_argument("--grad-clip", type=float, default=None, help=f"(0 disables; {d})")
    p.add_argument("--ema", type=float, default=None, help=f"EMA decay of the saved weights (0 disables; {d})")
    p.add_argument("--p-uncond", type=float, default=None,
                   help="label dropout: probability that a training label is replaced by --null-class, so the same "
                        f"model also learns the unconditional eps(x_t, t) for classifier-free guidance ({d})")
    p.add_argument("--null-class", type=int, default=None,
                   help=f"the label that means 'no label' (an extra row of the class embedding; {d})")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="channels_last memory format (default: on for CUDA; off on CPU, where it measured slower)")
    p.add_argument("--amp", choices=["bf16", "none"], default="bf16",
                   help="bf16 autocast for the forward pass (weights, optimizer and EMA stay fp32); "
                        "halves the step time on CPUs with AVX512-BF16/AMX and on recent GPUs")
    p.add_argument("--out", default=str(CHECKPOINT_DIR), help="folder for <model>.pt and <model>.json")
    p.add_argument("--run-dir", default=None, help="resume state folder (default runs/train_<model>)")
    p.add_argument("--save-every", type=int, default=250, help="write the resume state every N steps")
    p.add_argument("--resume", action="store_true", help="continue from the resume state")
    p.add_argument("--limit", type=int, default=None, help="train on the first N images only (smoke tests)")
    p.add_argument("--reflow-pairs", type=int, default=None,
                   help="reflow recipes only: how many (noise, image) pairs to draw from the teacher (default: "
                        "the recipe's n_pairs)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--stop-after", type=int, default=None,
                   help="stop after N steps of this run, writing only the resume state (as if interrupted)")
    return p.parse_args(argv)


def apply_recipe(args) -> dict:
    """Fill the options not given on the command line from ``PRETRAINED[args.model]["recipe"]``; returns
    that recipe (which also says which digits to train on and whether the model takes the label)."""
    recipe = PRETRAINED[args.model]["recipe"]
    for key in RECIPE_OPTIONS:
        if getattr(args, key) is None:
            setattr(args, key, recipe.get(key, RECIPE_FALLBACK.get(key)) if key in RECIPE_FALLBACK else recipe[key])
    return recipe


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"{device.type} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def recipe_of(args) -> Recipe:
    """The run's ``tutorial_utils.recipe.Recipe``: the table's recipe with the command line's overrides."""
    return Recipe(**{k: getattr(args, k) for k in RECIPE_OPTIONS}, amp=args.amp)


class PairBatches:
    """``TensorBatches`` over images with their noise stacked as a second channel, yielding ``(x, y, z)``: the
    reflow pairs keep their coupling through the shuffle (and the resume state's data position)."""

    def __init__(self, batches: TensorBatches):
        self.batches, self.generator = batches, batches.generator

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for xz, y in self.batches:
            yield xz[:, :1], y, xz[:, 1:]


def reflow_pairs(cfg: dict, run_dir: Path, device, autocast, progress: bool = True):
    """The teacher's ``(z, x, y)`` pairs for the reflow recipe ``cfg``: from ``run_dir/pairs.pt`` when it was
    drawn with the same ``cfg``, else drawn now (``solutions.flow.reflow_pairs``) and saved there.
    Returns (z, x, y, info) where info records what the drawing cost."""
    from solutions.flow import network_calls, reflow_pairs as draw
    from tutorial_utils.checkpoints import file_sha256, load_pretrained, checkpoint_paths

    cache = run_dir / "pairs.pt"
    teacher_sha = file_sha256(checkpoint_paths(cfg["teacher"])[0])
    if cache.is_file():
        st = torch.load(cache, map_location="cpu", weights_only=True)
        if st["cfg"] == repr(cfg) and st["teacher_sha256"] == teacher_sha:
            print(f"reflow pairs: {st['x'].shape[0]} from {cache}", flush=True)
            return st["z"], st["x"], st["y"], st["info"]
    teacher = load_pretrained(cfg["teacher"], device=device)
    t0, c0 = time.time(), time.process_time()

    def show(done, total):
        if progress:
            print(f"\rreflow pairs: {done}/{total} ({time.time() - t0:.0f} s)", end="", flush=True)

    z, x, y = draw(teacher, cfg["n_pairs"], n_steps=cfg["sampler_steps"], method=cfg["sampler"], w=cfg["w"],
                   null_class=cfg["null_class"], seed=cfg["seed"], autocast=autocast, progress=show)
    info = {"teacher": cfg["teacher"], "teacher_sha256": teacher_sha, "n_pairs": int(x.shape[0]),
            "sampler": cfg["sampler"], "sampler_steps": cfg["sampler_steps"],
            "network_calls_per_pair": network_calls(cfg["sampler"], cfg["sampler_steps"]), "w": cfg["w"],
            "seed": cfg["seed"], "labels": "balanced, 0-9", "x": "clipped to [-1, 1]",
            "seconds": round(time.time() - t0, 1), "cpu_seconds": round(time.process_time() - c0, 1)}
    print(f"\nreflow pairs: {info['n_pairs']} in {info['seconds']} s (cpu {info['cpu_seconds']} s)", flush=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    torch.save({"cfg": repr(cfg), "teacher_sha256": teacher_sha, "z": z, "x": x, "y": y, "info": info}, tmp)
    os.replace(tmp, cache)
    return z, x, y, info


def main(argv=None) -> int:
    args = parse_args(argv)
    from tutorial_utils.runtime import get_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = get_device(args.device)
    name = args.model
    spec = PRETRAINED[name]
    steps_given = args.steps is not None
    table = apply_recipe(args)
    digits, conditional, objective = table["digits"], table["labels"], table.get("objective", "ddpm")
    if args.p_uncond:
        n_classes = spec["kwargs"].get("n_classes")
        if not conditional or args.null_class is None or n_classes is None or not 0 <= args.null_class < n_classes:
            print(f"error: --p-uncond needs a conditional model and a --null-class inside its n_classes "
                  f"({n_classes}); got null_class {args.null_class}.", file=sys.stderr)
            return 2
    run_dir = Path(args.run_dir) if args.run_dir else RUNS_DIR / f"train_{name}"
    state_path = run_dir / "resume.pt"
    st = None
    if args.resume:
        if not state_path.is_file():
            print(f"error: --resume but no resume state at {state_path}; run without --resume to start.",
                  file=sys.stderr)
            return 2
        st = torch.load(state_path, map_location="cpu", weights_only=False)
        if st["model"] != name:
            print(f"error: {state_path} is a resume state for {st['model']}, not {name}.", file=sys.stderr)
            return 2
        if not steps_given:
            args.steps = st["total_steps"]
    try:
        recipe = recipe_of(args)
    except ValueError as err:
        print(f"error: {err} (options --steps --warmup --lr --ema ...; see --help)", file=sys.stderr)
        return 2
    run_dir.mkdir(parents=True, exist_ok=True)
    if args.channels_last is None:
        args.channels_last = device.type == "cuda"
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format

    torch.manual_seed(args.seed)
    reflow, pairs_info = table.get("reflow"), None
    if args.reflow_pairs is not None:
        if not reflow:
            print(f"error: --reflow-pairs is for a reflow recipe (unet_flow_reflow), not {name}.", file=sys.stderr)
            return 2
        reflow = {**reflow, "n_pairs": args.reflow_pairs}
    if reflow:
        z, x, y, pairs_info = reflow_pairs(reflow, run_dir, device, recipe.autocast(device),
                                           progress=not args.no_progress)
        if args.limit:
            z, x, y = z[:args.limit], x[:args.limit], y[:args.limit]
        xz = torch.cat([x, z], dim=1).to(device).contiguous(memory_format=fmt)
        batches = PairBatches(TensorBatches(xz, y.to(device), batch_size=recipe.batch_size, shuffle=True,
                                            seed=args.seed))
        torch.manual_seed(args.seed)
    else:
        x, y = load_mnist_tensors(train=True, digits=digits, device=device, limit=args.limit)
        x = x.contiguous(memory_format=fmt)
        batches = TensorBatches(x, y, batch_size=recipe.batch_size, shuffle=True, seed=args.seed)
    model = build_model(spec).to(device).to(memory_format=fmt).train()
    if reflow and st is None:                      # reflow starts from the teacher's (EMA) weights
        from tutorial_utils.checkpoints import load_pretrained
        model.load_state_dict(load_pretrained(reflow["teacher"]).state_dict())
    # the recipe's parts, from torch (tutorial_utils.recipe): AdamW, warm-up + cosine, an AveragedModel EMA
    opt, scheduler, ema = recipe.optimizer(model), None, recipe.ema_model(model)
    scheduler = recipe.scheduler(opt)

    step, losses, seconds_before = 0, [], 0.0
    epoch_gen_state = batches.generator.get_state()   # generator state at the start of the current epoch
    batch_in_epoch = 0
    if st is not None:
        model.load_state_dict(st["model_state"])
        if ema is not None:
            ema.load_state_dict(st["ema_state"])
        opt.load_state_dict(st["opt_state"])
        scheduler.load_state_dict(st["sched_state"])
        step, losses = st["step"], st["losses"]
        seconds_before = st.get("train_seconds_total", 0.0)
        epoch_gen_state, batch_in_epoch = st["epoch_gen_state"], st["batch_in_epoch"]
        torch.set_rng_state(st["torch_rng"])
        if device.type == "cuda" and st.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(st["cuda_rng"], device)
        print(f"resumed {name} at step {step}/{recipe.steps} from {state_path}")
    start_step = step

    def save_state():
        tmp = state_path.with_suffix(".tmp")
        torch.save({"model": name, "model_state": model.state_dict(),
                    "ema_state": ema.state_dict() if ema is not None else None,
                    "opt_state": opt.state_dict(), "sched_state": scheduler.state_dict(),
                    "step": step, "total_steps": recipe.steps, "losses": losses,
                    "epoch_gen_state": epoch_gen_state, "batch_in_epoch": batch_in_epoch,
                    "torch_rng": torch.get_rng_state(),
                    "train_seconds_total": seconds_before + time.time() - t0,
                    "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                    "args": vars(args)}, tmp)
        os.replace(tmp, state_path)

    def epoch_iter():
        nonlocal epoch_gen_state, batch_in_epoch
        while True:
            batches.generator.set_state(epoch_gen_state)
            it = iter(batches)
            for _ in range(batch_in_epoch):          # resume mid-epoch: skip what was already used
                next(it)
            for batch in it:                         # (x, y), or (x, y, z) for reflow pairs
                batch_in_epoch += 1
                yield batch
            epoch_gen_state = batches.generator.get_state()
            batch_in_epoch = 0

    def on_step(n: int, loss: float):
        nonlocal step
        step = start_step + n
        losses.append(loss)
        if step % args.save_every == 0 and step < recipe.steps:
            save_state()

    precision = "bf16 autocast" if recipe.uses_bf16(device) else (            # the checkpoint's record
        "fp32 (no bf16 units on this device)" if recipe.amp_in_force() == "bf16" else "fp32")
    print(f"training {name}: {spec['class']}(**{spec['kwargs']}) on {x.shape[0]} images, {recipe.describe()}; "
          f"{recipe.precision(device)}, channels_last {args.channels_last}, device {_device_name(device)}", flush=True)
    t0 = time.time()
    stop_at = min(recipe.steps, step + args.stop_after) if args.stop_after else recipe.steps
    if stop_at > step:
        # the one training loop of the course (notebook 4's Algorithm 1, completed): solutions.train
        from solutions import train
        train(model, opt, epoch_iter(), epochs=1, max_steps=stop_at - step, progress=not args.no_progress,
              scheduler=scheduler, ema=ema, autocast=recipe.autocast(device), grad_clip=recipe.grad_clip,
              conditional=conditional, p_uncond=recipe.p_uncond, null_class=recipe.null_class,
              objective=objective, on_step=on_step, device=device)
    wall = time.time() - t0
    if step < recipe.steps:
        save_state()
        print(f"stopped at step {step}/{recipe.steps}; continue with --resume")
        return 0
    final = ema.module if ema is not None else model
    final = final.to(memory_format=torch.contiguous_format)
    curve = [(i + 50, sum(losses[i:i + 50]) / len(losses[i:i + 50])) for i in range(0, len(losses), 50)]
    meta = {
        "recipe": {"steps": recipe.steps, "batch_size": recipe.batch_size, "optimizer": "AdamW", "lr": recipe.lr,
                   "weight_decay": recipe.weight_decay, "schedule": f"linear warmup {recipe.warmup} steps + cosine "
                   f"to {recipe.min_lr_ratio}x", "grad_clip": recipe.grad_clip, "ema": recipe.ema, "seed": args.seed,
                   "channels_last": args.channels_last, "amp": precision, "data": spec["data"],
                   "n_images": int(x.shape[0]),
                   ("diffusion" if objective == "ddpm" else "objective"): OBJECTIVES[objective],
                   "weights": "EMA" if ema is not None else "raw",
                   **({"p_uncond": recipe.p_uncond, "null_class": recipe.null_class} if recipe.p_uncond else {}),
                   **({"reflow": pairs_info, "init": f"{reflow['teacher']} (its EMA weights)",
                       "sample_with": "w = 1 (guidance distilled from the w = %g pairs): 1 network call per "
                                      "Euler step" % reflow["w"]} if reflow else {})},
        "steps": step,
        "final_loss": round(sum(losses[-500:]) / max(1, len(losses[-500:])), 5),
        "loss_curve": [[s, round(l, 5)] for s, l in curve[::max(1, len(curve) // 60)]],
        "device": _device_name(device),
        "train_seconds_this_run": round(wall, 1),
        "train_seconds_total": round(seconds_before + wall, 1),
        "command": "python -m ddpm_instructor.train " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    save_state()
    pt, js = save_checkpoint(final, name, meta, directory=args.out, kwargs=spec["kwargs"])
    print(f"saved {pt} and {js}: {step} steps, final loss {meta['final_loss']}, {wall:.0f} s this run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
