"""tutorial_utils.recipe: the precision switch (DDPM_AMP) and the line the training cell prints about it."""
import pytest
import torch

from tutorial_utils.recipe import AMP_ENV, Recipe, bf16_supported


def test_ddpm_amp_none_forces_fp32_even_where_bf16_units_exist(monkeypatch):
    recipe = Recipe(steps=10, warmup=2)                               # amp="bf16" by default
    monkeypatch.setenv(AMP_ENV, "none")
    assert not recipe.uses_bf16("cpu")
    with recipe.autocast("cpu"):
        assert not torch.is_autocast_cpu_enabled()
    assert "fp32" in recipe.precision("cpu") and f"{AMP_ENV}=none" in recipe.precision("cpu")


def test_without_the_switch_bf16_follows_the_hardware(monkeypatch):
    monkeypatch.delenv(AMP_ENV, raising=False)
    recipe = Recipe(steps=10, warmup=2)
    assert recipe.uses_bf16("cpu") == bf16_supported("cpu")
    line = recipe.precision("cpu")
    assert ("bf16 autocast" in line) == bf16_supported("cpu"), line
    with recipe.autocast("cpu"):
        assert torch.is_autocast_cpu_enabled() == bf16_supported("cpu")


def test_ddpm_amp_bf16_cannot_invent_units_and_a_typo_is_refused(monkeypatch):
    monkeypatch.setenv(AMP_ENV, "bf16")
    assert Recipe(steps=10, warmup=2, amp="none").uses_bf16("cpu") == bf16_supported("cpu")
    monkeypatch.setenv(AMP_ENV, "fp16")
    with pytest.raises(ValueError, match="DDPM_AMP=none"):
        Recipe(steps=10, warmup=2).uses_bf16("cpu")
