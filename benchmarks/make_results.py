"""Write benchmarks/RESULTS.md from speed.json, quality_*.json, guidance_unet_cond.json, checkpoints/mnist_classifier.json and
the checkpoints' metadata.

    python benchmarks/make_results.py
"""
from __future__ import annotations

import json

from common import BENCH_DIR, CLASSIFIER_PATH          # also puts the course root on sys.path
from tutorial_utils.judge import share_interval

SMALL_SAMPLE = 200         # a judged share from this many samples or fewer is printed with its 95 % interval
INTERVAL_NOTE = (f"A share followed by [lo–hi%] comes from {SMALL_SAMPLE} samples or fewer (per-class shares included): the "
                 "brackets give its 95 % Wilson interval (`tutorial_utils.judge.share_interval`).")


def _load(path):
    return json.loads(path.read_text()) if path.is_file() else None


def share(p: float, n: int, fmt: str = ".1%") -> str:
    """A judged share p of n samples as RESULTS.md prints it: with its 95 % Wilson interval, [lo–hi%], when n <= 200."""
    text = f"{p:{fmt}}"
    if n > SMALL_SAMPLE:
        return text
    lo, hi = share_interval(round(p * n), n)
    return f"{text} [{100 * lo:.0f}–{100 * hi:.0f}%]"


def guidance_section(g, meta) -> list[str]:
    """Classifier-free guidance (w) and DDIM vs DDPM on `unet_cond`, from bench_guidance.py."""
    if not g or not g.get("runs"):
        return []
    runs = list(g["runs"].values())
    runs.sort(key=lambda r: (r["sampler_steps"] != 1000, r["sampler_steps"], r.get("eta", 1), r["w"]))
    r0 = runs[0]
    out = ["## Classifier-free guidance and DDIM (`unet_cond`)", "",
           f"`bench_guidance.py`: {r0['threads']} thread(s), {r0['amp']} autocast in the model's forward pass, "
           f"the same seeds (starting noise) in every run, {min(r['date'] for r in runs)} to "
           f"{max(r['date'] for r in runs)[-9:]}; wall-clock times are noisy (other jobs shared the 2 cores), the "
           "CPU-time ratios are not. The checkpoint was trained with label "
           f"dropout (10 % of the labels replaced by the null class 10), so one network gives both "
           "ε(x, t, y) and ε(x, t, ∅); guided ε̃ = ε(x, t, ∅) + w (ε(x, t, y) − ε(x, t, ∅)), w = 1 is the plain "
           "conditional model (one network pass per step; guided steps cost two). Accuracy: the share of samples "
           "the classifier reads as the asked-for digit. FD: to the MNIST test set, floor: as many real training "
           "images. " + INTERVAL_NOTE, ""]
    stale = [r["run"] for r in runs if meta and r.get("checkpoint_sha256") != meta.get("sha256")]
    if stale:
        out += [f"**Stale:** {', '.join(stale)} were measured on another checkpoint than the shipped one.", ""]
    out += ["| sampler | steps | w | samples | accuracy | worst class | FD | FD floor | seconds / 100 images |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        out.append(f"| {r['sampler']} | {r['sampler_steps']} | {r['w']:g} | {r['n_samples']} | {share(r['accuracy'], r['n_samples'])} | "
                   f"{share(r['min_class_accuracy'], r['per_class'], '.0%')}"
                   + (f" (digit {r['per_class_accuracy'].index(r['min_class_accuracy'])})" if r['min_class_accuracy'] < 1 else "")
                   + " | "
                   f"{r['frechet_distance']:.2f} | {r['frechet_floor_real_train']:.2f} | "
                   f"{r['seconds_per_100_images']:.0f} |")
    out += ["", "Per-class accuracy (digits 0-9):", ""]
    for r in runs:
        out.append(f"- {r['sampler']} {r['sampler_steps']}, w = {r['w']:g}: "
                   + ", ".join(f"{c}: {share(a, r['per_class'], '.0%')}" for c, a in enumerate(r["per_class_accuracy"])))
    pairs = [(a, b) for a in runs for b in runs if a["sampler_steps"] == 1000 and b["sampler_steps"] < 1000
             and a["w"] == b["w"] and a["n_samples"] == b["n_samples"]]
    if pairs:
        out += ["", "DDIM vs the 1000-step DDPM sampler (same w, same number of samples, same seeds):", "",
                "| w | sampler | steps | speed-up (wall) | speed-up (CPU time) | FD DDIM / FD DDPM |",
                "|---|---|---|---|---|---|"]
        for a, b in pairs:
            out.append(f"| {a['w']:g} | {b['sampler']} | {b['sampler_steps']} | "
                       f"{a['sampling_seconds'] / b['sampling_seconds']:.1f}x | "
                       f"{a['sampling_cpu_seconds'] / b['sampling_cpu_seconds']:.1f}x | "
                       f"{b['frechet_distance']:.2f} / {a['frechet_distance']:.2f} = "
                       f"{b['frechet_distance'] / a['frechet_distance']:.2f} |")
    return out + [""]


def fewstep_section(f, metas) -> list[str]:
    """Few steps, judged: flow matching (Euler, Heun) against DDIM and DPM-Solver++(2M), from bench_fewstep.py."""
    if not f or not f.get("runs"):
        return []
    runs, ref, target = list(f["runs"].values()), f.get("reference_ddpm1000"), f["target"]
    r0 = runs[0]
    reflowed = [r for r in runs if r.get("sampled_w", r["w"]) != r["w"]]
    distilled = (f" (`unet_flow_reflow` has the guidance distilled in: it was reflowed on pairs drawn at w = {r0['w']:g} "
                 "and is sampled unguided, one call of batch B per step)") if reflowed else ""
    out = ["## Few steps, judged (`unet_flow` against `unet_cond`)", "",
           f"`bench_fewstep.py`: {r0['n_samples']} samples per run ({r0['n_samples'] // 10} of each digit), all guided "
           f"at w = {r0['w']:g}{distilled}, the same seeds (starting noise) in every run, {r0['threads']} thread(s), {r0['amp']} "
           f"autocast, on {r0['machine']}, {min(r['date'] for r in runs)} to {max(r['date'] for r in runs)[-9:]} "
           "(wall-clock seconds are noisy: other jobs shared the 2 cores; the CPU seconds are not). Network calls per "
           "image: a guided call evaluates the label and the null label in one batch of 2B and counts once; Heun "
           "takes 2 per step except the last. DDIM: η 0, x̂_0 clipped to [-1, 1]; DPM-Solver++(2M): x̂_0 clipped, "
           "timesteps evenly spaced in log(α/σ). " + INTERVAL_NOTE]
    stale = [r["run"] for r in runs if metas.get(r["model"]) and r.get("checkpoint_sha256") != metas[r["model"]].get("sha256")]
    if stale:
        out += ["", f"**Stale:** {', '.join(stale)} were measured on another checkpoint than the shipped one."]
    rm = metas.get(reflowed[0]["model"]) if reflowed else None
    if rm and rm["recipe"].get("reflow"):
        pairs = rm["recipe"]["reflow"]
        out += ["", f"`{reflowed[0]['model']}` is `{pairs['teacher']}` reflowed once (docs/CHECKPOINTS.md): "
                f"{pairs['n_pairs']:,} (noise, image) pairs from its {pairs['sampler'].capitalize()} ODE in "
                f"{pairs['sampler_steps']} steps ({pairs['network_calls_per_pair']} calls) at w = {pairs['w']:g} took "
                f"{pairs['seconds']:.0f} s ({pairs['cpu_seconds']:.0f} s CPU), then {rm['steps']} steps of flow matching on "
                f"the pairs from its weights {rm['train_seconds_total']:.0f} s, on {rm['device']} (shared with other jobs)."]
    if ref:
        out += ["", f"Reference: DDPM-1000 at w = {ref['w']:g} on `unet_cond` ({ref['n_samples']} samples, "
                f"`bench_guidance.py`): accuracy {share(ref['accuracy'], ref['n_samples'])}, FD {ref['frechet_distance']:.2f} "
                f"(floor {ref['frechet_floor_real_train']:.2f}), {ref['sampling_seconds']:.0f} s."]
    out += ["", "| sampler | model | steps | network calls | accuracy | worst class | FD | FD floor | FD / DDPM-1000's "
            "| seconds (CPU) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        ratio = f"{r['frechet_distance'] / ref['frechet_distance']:.2f}" if ref else "—"
        out.append(f"| {r['description']} | `{r['model']}` | {r['sampler_steps']} | {r['network_calls']} | "
                   f"{share(r['accuracy'], r['n_samples'])} | {share(r['min_class_accuracy'], r['n_samples'] // 10, '.0%')} | "
                   f"{r['frechet_distance']:.2f} | "
                   f"{r['frechet_floor_real_train']:.2f} | {ratio} | {r['sampling_seconds']:.1f} "
                   f"({r['sampling_cpu_seconds']:.1f}) |")
    out += ["", f"**Target:** ≥ {target['accuracy']:.0%} read as their label and FD within {target['fd_ratio']:g}x of "
            f"DDPM-1000's at the same w, with ≤ {target['max_steps']} sampler steps."]
    if ref:
        for sampler in dict.fromkeys(r["sampler"] for r in runs):
            hit = next((r for r in runs if r["sampler"] == sampler and r["sampler_steps"] <= target["max_steps"]
                        and r["accuracy"] >= target["accuracy"]
                        and r["frechet_distance"] <= target["fd_ratio"] * ref["frechet_distance"]), None)
            name = next(r["description"] for r in runs if r["sampler"] == sampler)
            out.append(f"- {name}: " + (f"**met at {hit['sampler_steps']} steps** ({hit['network_calls']} network "
                                        f"calls): {share(hit['accuracy'], hit['n_samples'])}, FD {hit['frechet_distance']:.2f} = "
                                        f"{hit['frechet_distance'] / ref['frechet_distance']:.2f}x DDPM-1000's, "
                                        f"{ref['sampler_steps'] // hit['network_calls']}x fewer network calls than DDPM-1000"
                                        if hit else "not met within the target's steps") + ".")
    return out + [""]


RECIPE_TARGETS = {4: (0.95, {"bf16": 90, "none": 180}), 6: (0.97, {"bf16": 180, "none": 360})}


def recipe_section(rs) -> list[str]:
    """The laptop recipe search (issue 24), from bench_recipe.py: each candidate in fp32 and bf16 on one machine."""
    if not rs or not (rs.get("runs") or rs.get("speed")):
        return []
    out = ["## The laptop recipe search (fp32 and bf16 on one machine)", "",
           f"`bench_recipe.py`, {rs['machine']}. Each candidate is the laptop profile's recipe with the changes "
           "named; each row is one training run in one precision (the recipe's `amp` set for that run: `none` = "
           "fp32, `bf16` = bf16 autocast on this CPU's AVX512-BF16 units; `bench_recipe.py quality NAME` trains "
           "both by default), judged like `bench_student.py` (100 DDIM-50 samples of the EMA weights). \"2-core "
           "time\" is the process's CPU seconds over 2: the training time on 2 otherwise idle cores sharing the "
           "work evenly (the wall time, threads and load average of each run are in `recipe_search.json`: runs with "
           "1 thread shared the machine with other jobs, see the notes at the end). UNet: its width `ch`; \"+ "
           "skip\": the input skip ε_θ(x_t, t) = UNet(x_t, t) + s(t)·x_t (`solutions/model.py`). Targets: notebook 4 ≥ 95 % read as 6 in ≤ 3 min fp32 / ≤ 90 s bf16; "
           "notebook 6 ≥ 97 % guided (w = 2) read as their label in ≤ 6 min fp32 / ≤ 3 min bf16. " + INTERVAL_NOTE,
           ""]
    runs = rs.get("runs") or []
    if runs:
        out += ["| candidate | notebook | precision | UNet | steps × batch | EMA | 2-core time | s / step (2-core) "
                "| judged | FD (floor) | target |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in runs:
            need, limits = RECIPE_TARGETS[r["notebook"]]
            limit = limits[r["amp"]]
            met = []
            if r["two_core_seconds"] > limit:
                met.append(f"{r['two_core_seconds']:.1f} s > {limit} s" if r["two_core_seconds"] < 1.05 * limit
                           else f"{r['two_core_seconds'] / limit:.2f}× the {limit} s")
            if r["share"] < need:
                met.append(f"{100 * (need - r['share']):.0f} points below {need:.0%}")
            verdict = "met" if not met else "missed: " + ", ".join(met)
            unet = r.get("unet") or f"ch={r['width']}"          # rows from before the input skip: width only
            out.append(f"| `{r['candidate']}` ({r['why']}) | {r['notebook']} | {r['precision']} | {unet} | "
                       f"{r['steps']} × {r['batch_size']} | {r['ema']:g} | {r['two_core_seconds'] / 60:.1f} min "
                       f"({r['two_core_seconds']:.0f} s) | {r['two_core_seconds_per_step']:.3f} | "
                       f"{share(r['share'], r['n_samples'], '.0%')} {r['judged']} | {r['frechet_distance']} "
                       f"({r['frechet_floor']}) | {verdict} |")
        out.append("")
        from bench_recipe import CANDIDATES
        done = {r["candidate"] for r in runs}
        left = [f"`{n}` ({why})" for n, (_, _, _, why) in CANDIDATES.items() if n not in done]
        if left:
            out += ["Candidates defined in `bench_recipe.py` but not run in this search: " + "; ".join(left) + ".", ""]
    sp = rs.get("speed")
    if sp:
        out += [f"One training step of `Unet(ch=width)` on random data ({sp['threads']} thread(s), {sp['date']}; 6 steps "
                "timed after 2; the 2-core column is CPU seconds over 2): what width, batch, precision, channels-last and the AdamW implementation cost.", "",
                "| width | batch | precision | variant | s / step (wall) | s / step (2-core) | load |",
                "|---|---|---|---|---|---|---|"]
        for r in sp["rows"]:
            out.append(f"| {r['width']} | {r['batch_size']} | {r['precision']} | {r['variant']} | "
                       f"{r['seconds_per_step']} | {r['two_core_seconds_per_step']} | {r['load_average']} |")
        out.append("")
    return out


def student_section(runs) -> list[str]:
    """Your own model: the laptop profile's training runs of notebooks 4 and 6, from bench_student.py.

    ``runs``: (file name, contents) of each ``student*.json``, one machine each (``student.json`` is where
    bench_student.py writes; a run kept from another machine is renamed, e.g. ``student_fp32.json``)."""
    runs = [(name, st) for name, st in runs if st and any(k in st for k in ("digit6", "cond"))]
    if not runs:
        return []
    out = ["## Your own model (the `laptop` profile)", "",
           "What notebooks 4 and 6 do in the `laptop` profile (the profile's UNet and recipe, the course's loop "
           "`solutions.train`, the same seeds), then 100 samples from the EMA weights with DDIM-50 (η = 1) judged by "
           "the course's classifier: `bench_student.py`, or `bench_recipe.py quality` for the profile's own "
           "candidate, whose runs `bench_recipe.py adopt` copies here (`student.json` the bf16 run, "
           "`student_fp32.json` the fp32 run, both from one machine). The training column is 2 cores' time (CPU "
           "seconds over 2; the wall time and the load average at the start and end of the training are in the "
           "json). bf16 autocast is used only where the CPU has bf16 units (AVX512-BF16 or AMX); without them the "
           "same recipe runs in fp32, and `DDPM_AMP=none` forces fp32 on a CPU that has them. " + INTERVAL_NOTE, ""]
    for name, st in runs:
        out += student_table(name, st)
    return out


def student_table(name, st) -> list[str]:
    out = [f"`{name}`, {st['machine']}:", "",
           "| notebook | model | recipe | precision | training | s / step | images / s | load | judged | target |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for key, target in (("digit6", "≥ 95 % read as 6, ≤ 3 min on 2 fp32 cores, ≤ 90 s with bf16 units"),
                        ("cond", "≥ 97 % guided (w = 2), ≤ 6 min on 2 fp32 cores, ≤ 3 min with bf16 units")):
        r = st.get(key)
        if not r:
            continue
        if key == "digit6":
            judged = f"{share(r['share_six'], r['n_samples'], '.0%')} of {r['n_samples']} read as 6 (FD {r['frechet_distance']}, floor {r['frechet_floor']})"
        else:
            judged = (f"w = 2: {share(r['w2']['accuracy'], r['n_samples'], '.0%')} of {r['n_samples']} read as their "
                      f"label; w = 1: {share(r['w1']['accuracy'], r['n_samples'], '.0%')}")
        out.append(f"| {r['notebook']} | `{r['model']}` | {r['recipe']} | {r['precision']} | "
                   f"{r['train_seconds'] / 60:.1f} min ({r['train_cpu_seconds'] / 60:.1f} CPU-min) | "
                   f"{r['seconds_per_step']} | {r['images_per_second']:.0f} | {r['load_average_start_end']} | "
                   f"{judged} | {target} |")
    notes = [f"- notebook {st[k]['notebook']}: {st[k]['note']}." for k in ("digit6", "cond") if st.get(k, {}).get("note")]
    missing = [f"- notebook {n}: not measured yet (`python benchmarks/bench_student.py --only {k}`)."
               for k, n in (("digit6", 4), ("cond", 6)) if k not in st]
    out += [""] + notes + missing + ([""] if notes or missing else [])
    return out


def main():
    speed = _load(BENCH_DIR / "speed.json")
    q6 = _load(BENCH_DIR / "quality_unet_digit6.json")
    qc = _load(BENCH_DIR / "quality_unet_cond.json")
    clf = _load(CLASSIFIER_PATH.with_suffix(".json"))
    from tutorial_utils.checkpoints import CHECKPOINT_DIR, PRETRAINED      # the one table of shipped models

    metas = {n: _load(CHECKPOINT_DIR / f"{n}.json") for n in PRETRAINED}
    out = ["# Benchmark results", "",
           "Generated by `python benchmarks/make_results.py` from the JSON files the benchmark scripts write.",
           "Rerun: `python benchmarks/train_classifier.py` (once), `python benchmarks/bench_speed.py`, "
           "`python benchmarks/bench_quality.py`, `python benchmarks/bench_guidance.py`, `python benchmarks/bench_fewstep.py`, `python benchmarks/bench_student.py`, then "
           "`python benchmarks/make_results.py`.", ""]
    machine = (speed or q6 or qc or {}).get("machine", "unknown")
    out += ["## Machine", "", f"{machine}.",
            "Shared machine: other jobs ran on the same 2 cores during most measurements, so wall-clock "
            "figures are noisy; the speed table also gives the ratio of process CPU time, which is not.", ""]

    out += ["## Checkpoints", "", "| name | steps | batch | lr | EMA | amp | final loss | train time | trained on |",
            "|---|---|---|---|---|---|---|---|---|"]
    for n, m in metas.items():
        if not m:
            out.append(f"| {n} | not trained yet | | | | | | | |")
            continue
        r = m["recipe"]
        secs = m.get("train_seconds_total", m.get("train_seconds_this_run"))
        out.append(f"| `{n}` | {m['steps']} | {r['batch_size']} | {r['lr']} | {r['ema']} | {r.get('amp', 'none')} | "
                   f"{m['final_loss']} | {secs / 60:.0f} min | {m['device']} |")
    out.append("")

    out += ["## Sample quality", ""]
    if clf:
        out.append(f"Judge: a separate small CNN (`checkpoints/mnist_classifier.pt`, {clf['test_accuracy']:.2%} "
                   "MNIST test accuracy). Fréchet distance (FD) in its 128-d penultimate feature space; the floor "
                   "is the FD of an equal number of real training images to the same test images "
                   "(FD is biased upward for small samples, so compare with the floor, not with 0). " + INTERVAL_NOTE)
        out.append("")
    out += ["| model | samples | classifier figure | target | FD to test set | FD floor (real train) | sampling time |",
            "|---|---|---|---|---|---|---|"]
    if q6:
        out.append(f"| `unet_digit6` | {q6['n_samples']} | {share(q6['share_read_as_6'], q6['n_samples'])} read as 6 | ≥ 95 % | "
                   f"{q6['frechet_distance']:.2f} (vs test 6s) | {q6['frechet_floor_real_train']:.2f} | "
                   f"{q6['sampling_seconds']:.0f} s, {q6['threads']} thread(s) |")
    if qc:
        out.append(f"| `unet_cond` | {qc['n_samples']} | {share(qc['accuracy'], qc['n_samples'])} classified as their label | ≥ 97 % | "
                   f"{qc['frechet_distance']:.2f} (vs all test) | {qc['frechet_floor_real_train']:.2f} | "
                   f"{qc['sampling_seconds']:.0f} s, {qc['threads']} thread(s) |")
    out.append("")
    if qc:
        out.append(f"Per-class accuracy of `unet_cond` (digits 0-9, {qc['n_samples'] // 10} samples each): "
                   + ", ".join(f"{c}: {share(a, qc['n_samples'] // 10, '.0%')}" for c, a in enumerate(qc["per_class_accuracy"])) + ".")
    if q6:
        out.append(f"Classes the classifier gave the `unet_digit6` samples (0-9): {q6['predicted_counts']}.")
    for n, q in (("unet_digit6", q6), ("unet_cond", qc)):
        if q:
            out.append(f"`{n}`: sampler {q['sampler']}; measured {q['date']}"
                       + (f" by `{q['written_by']}`" if q.get("written_by") else "") + ".")
            m = metas.get(n)
            if m and q.get("checkpoint_sha256") and q["checkpoint_sha256"] != m.get("sha256"):
                out.append(f"**Stale:** these `{n}` figures were measured on another checkpoint "
                           f"(sha256 {q['checkpoint_sha256'][:12]}..., the shipped one is {m['sha256'][:12]}...).")
    out.append("")
    out += guidance_section(_load(BENCH_DIR / "guidance_unet_cond.json"), metas.get("unet_cond"))
    out += fewstep_section(_load(BENCH_DIR / "fewstep.json"), metas)
    out += student_section([(p.name, _load(p)) for p in sorted(BENCH_DIR.glob("student*.json"))])
    out += recipe_section(_load(BENCH_DIR / "recipe_search.json"))

    if speed:
        tr, sa = speed["train"], speed["sample"]
        out += ["## Speed", "",
                f"`bench_speed.py`, {speed['threads']} thread(s), {speed['device']}, {speed['date']}. "
                "Best of the repeats; the seed and the course run alternately in one process.", "",
                f"Training Unet(ch=32) on the 6s, batch {tr['batch_size']} ({tr['steps_timed']} steps timed):", "",
                "| path | images/s | speed-up (wall) | speed-up (CPU time) |", "|---|---|---|---|"]
        for k, v in tr["images_per_s"].items():
            out.append(f"| {k} | {v:.0f} | {tr['speedup'][k]:.2f}x | {tr['speedup_cpu_time'][k]:.2f}x |")
        out += ["", f"Sampling {sa['n_images']} images with the 1000-step sampler ({sa['steps_timed']} steps timed "
                f"and scaled to 1000; every step costs the same):", "",
                "| path | seconds for 1000 steps | speed-up (wall) | speed-up (CPU time) |", "|---|---|---|---|"]
        for k, v in sa["seconds_1000_steps"].items():
            out.append(f"| {k} | {v:.0f} | {sa['speedup'][k]:.2f}x | {sa['speedup_cpu_time'][k]:.2f}x |")
        out += ["", f"One-time data setup: seed DataLoader {speed['data_setup_s']['seed DataLoader']} s, "
                f"course tensor load {speed['data_setup_s']['course tensor']} s.", ""]
    bf = _load(BENCH_DIR / "bf16_sampling.json")
    if bf:
        out += ["## bf16 autocast in the sampler", "",
                f"`check_bf16_sampling.py`: {bf['n']} images from `unet_digit6`, full 1000-step sampler, the same "
                f"seed in fp32 and under bf16 autocast ({bf['threads']} thread): max |pixel difference| "
                f"{bf['max_abs_diff']}, mean {bf['mean_abs_diff']}, {bf['pixels_differing_by_more_than_0.1']:.2%} "
                f"of pixels differ by more than 0.1; the classifier reads {share(bf['classifier_agrees'], bf['n'], '.0%')} of the "
                f"pairs the same ({bf['read_as_6_fp32']} vs {bf['read_as_6_bf16']} read as 6); CPU time "
                f"{bf['cpu_seconds_fp32']} s vs {bf['cpu_seconds_bf16']} s.", ""]
    notes = BENCH_DIR / "RESULTS_NOTES.md"
    if notes.is_file():
        out += [notes.read_text().strip(), ""]
    (BENCH_DIR / "RESULTS.md").write_text("\n".join(out) + "\n")
    print((BENCH_DIR / "RESULTS.md").read_text())


if __name__ == "__main__":
    main()
