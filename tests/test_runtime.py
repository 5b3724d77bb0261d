"""tutorial_utils.runtime: the run profiles (smoke, laptop, full), chosen by DDPM_PROFILE or set_profile."""
import dataclasses
import json
from pathlib import Path

import pytest
import torch

from tutorial_utils import PROFILES, get_profile, set_profile

ROOT = Path(__file__).resolve().parent.parent


def test_profile_switch(monkeypatch):
    monkeypatch.setenv("DDPM_PROFILE", "full")
    full = get_profile()
    assert full is PROFILES["full"] and full.timesteps == 1000
    # the seed's lengths: 400 epochs over the 5,918 training sixes, 100 over the 60,000 digits, batches of 128
    assert full.recipe_digit6.steps == 400 * -(-5918 // 128) and full.recipe_cond.steps == 100 * -(-60000 // 128)
    monkeypatch.setenv("DDPM_PROFILE", "smoke")
    assert get_profile().name == "smoke" and get_profile().recipe_digit6.steps == 20
    monkeypatch.setenv("DDPM_PROFILE", "fast")                    # the smoke profile's former name
    assert get_profile() is PROFILES["smoke"]
    monkeypatch.setenv("DDPM_PROFILE", " Laptop ")
    assert get_profile() is PROFILES["laptop"]
    assert set_profile("full").name == "full"
    set_profile(None)
    monkeypatch.setenv("DDPM_PROFILE", "turbo")
    with pytest.raises(ValueError, match="not a profile"):
        get_profile()
    monkeypatch.delenv("DDPM_PROFILE")
    assert get_profile().name == ("full" if torch.cuda.is_available() else "laptop")
    with pytest.raises(ValueError, match="unknown profile"):
        set_profile("slow")


def test_the_laptop_profile_trains_for_real_and_the_smoke_profile_does_not():
    laptop, smoke = PROFILES["laptop"], PROFILES["smoke"]
    for r in (laptop.recipe_digit6, laptop.recipe_cond):
        assert r.steps >= 500 and r.batch_size == 128 and r.ema > 0 and r.warmup < r.steps
    for r in (laptop.recipe_cond, smoke.recipe_cond):                # label dropout to the null class 10
        assert r.p_uncond == 0.1 and r.null_class == 10
    assert smoke.recipe_digit6.steps == smoke.recipe_cond.steps == 20 and smoke.train_limit == 1280
    assert laptop.train_limit is None


def test_the_unet_width_is_the_shipped_one_unless_a_profile_says_otherwise():
    # the shipped checkpoints, the smoke profile's stored outputs and the GPU runs keep the course's ch=32
    assert PROFILES["smoke"].width == PROFILES["full"].width == 32
    assert "ch=" not in PROFILES["smoke"].describe()
    assert PROFILES["smoke"].unet_kwargs == PROFILES["full"].unet_kwargs == {"ch": 32}     # no input skip either
    narrow = dataclasses.replace(PROFILES["laptop"], width=16, input_skip=False)   # what notebooks 4 and 6 would build
    assert "ch=16" in narrow.describe() and "ch=16 and the input skip" not in narrow.describe()
    assert narrow.unet_kwargs == {"ch": 16}
    skip = dataclasses.replace(narrow, input_skip=True)
    assert skip.unet_kwargs == {"ch": 16, "input_skip": True} and "ch=16 and the input skip" in skip.describe()


@pytest.mark.parametrize("file, amp", [("student.json", "bf16"), ("student_fp32.json", "none")])
def test_the_laptop_profile_is_what_the_benchmark_measured(file, amp):
    """benchmarks/student*.json, which RESULTS.md and notebooks 4 and 6 quote, measured the profile's own width and
    recipe (in that file's precision): changing the profile without re-measuring it fails here."""
    laptop = PROFILES["laptop"]
    data = json.loads((ROOT / "benchmarks" / file).read_text())
    args = ", ".join(f"{k}={v}" for k, v in laptop.unet_kwargs.items())
    for key, recipe, model in (("digit6", laptop.recipe_digit6, f"Unet({args})"),
                               ("cond", laptop.recipe_cond, f"UNet_cond({args}, n_classes=11)")):
        run = data[key]
        assert run["model"] == model, (file, key)
        # the recipe, whose amp the run may have set itself (fp32 forced on a CPU with bf16 units)
        assert run["recipe"] in {recipe.replace(amp=a).describe() for a in ("bf16", "none")}, (file, key)
        assert run["steps"] == recipe.steps and run["batch_size"] == recipe.batch_size
        assert run["precision"].startswith("bf16" if amp == "bf16" else "fp32"), (file, key)
