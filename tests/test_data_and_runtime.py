"""MNIST loading (real files), the data-folder resolution and its error path, run profiles, plots."""
import os
from pathlib import Path

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from tutorial_utils import (DatasetNotFoundError, PROFILES, get_dataloaders, get_profile, load_mnist_tensors,
                            mnist_dataset, resolve_data_root, set_profile)
from tutorial_utils import data as data_mod
from tutorial_utils import plotting


def test_full_mnist_is_read_from_the_configured_folder():
    assert os.environ.get("DDPM_DATA_DIR"), "the test suite expects DDPM_DATA_DIR (./course test sets it)"
    train, test = mnist_dataset(train=True), mnist_dataset(train=False)
    assert len(train) == 60000 and len(test) == 10000
    x, label = train[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32
    assert x.min().item() == -1.0 and x.max().item() == 1.0
    assert label == 5  # the first training digit of MNIST is a 5


def test_digit_subset_holds_exactly_that_digit():
    x, y = load_mnist_tensors(train=True, digits=[6])
    full_y = load_mnist_tensors(train=True)[1]
    assert x.shape == (int((full_y == 6).sum()), 1, 28, 28) == (5918, 1, 28, 28)
    assert (y == 6).all()
    sub = mnist_dataset(train=False, digits=[6])
    assert len(sub) == 958 and all(sub[i][1] == 6 for i in range(0, 958, 97))


def test_fast_path_tensors_equal_the_seed_transform():
    ds = mnist_dataset(train=False)
    x, y = load_mnist_tensors(train=False, limit=50)
    for i in range(0, 50, 7):
        torch.testing.assert_close(x[i], ds[i][0], rtol=0, atol=1e-6)
        assert y[i].item() == ds[i][1]


def test_dataloaders_batches():
    train_loader, test_loader = get_dataloaders(batch_size=64, digits=[6])
    xb, yb = next(iter(train_loader))
    assert xb.shape == (64, 1, 28, 28) and (yb == 6).all()
    assert len(train_loader) == 5918 // 64


def test_resolution_order(monkeypatch, tmp_path):
    monkeypatch.setenv("DDPM_DATA_DIR", str(tmp_path / "from_env"))
    assert resolve_data_root(tmp_path / "explicit") == (tmp_path / "explicit").resolve()
    assert resolve_data_root() == (tmp_path / "from_env").resolve()
    monkeypatch.delenv("DDPM_DATA_DIR")
    assert resolve_data_root() == data_mod.COURSE_ROOT / "data"


def test_missing_data_error_names_folder_and_both_fixes(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetNotFoundError) as err:
        mnist_dataset(root=empty, download=False)
    msg = str(err.value)
    assert str(empty / "MNIST" / "raw") in msg
    assert "DDPM_DATA_DIR" in msg and "internet" in msg
    assert isinstance(err.value, FileNotFoundError)
    assert list(empty.iterdir()) == [] or all(p.is_dir() for p in empty.rglob("*"))  # nothing half-written


def test_missing_data_error_names_the_folder_beside_the_notebook_and_that_fix_works_at_once(tmp_path, monkeypatch):
    """A bundle's kernel runs beside its notebook, with data/ there: the message names that folder first (no restart)
    and says that DDPM_DATA_DIR needs a JupyterLab restart; copying the four files in makes the same call work."""
    have = resolve_data_root() / "MNIST" / "raw"
    if not all((have / f).is_file() for f in data_mod.MNIST_FILES):
        pytest.skip(f"no MNIST in {have} to copy (set DDPM_DATA_DIR)")
    monkeypatch.chdir(tmp_path)                       # the notebook's folder
    with pytest.raises(DatasetNotFoundError) as err:
        load_mnist_tensors(train=False, root=tmp_path / "data", download=False, limit=5)
    msg = str(err.value)
    first, fix, *rest = msg.splitlines()
    assert fix.startswith("Simplest fix: copy the four MNIST files") and all(f in fix for f in data_mod.MNIST_FILES)
    assert rest[0].strip() == f"{tmp_path / 'data' / 'MNIST' / 'raw'} (the data folder beside this notebook)"
    assert rest[1] == "and run this cell again: no restart needed."
    assert "read when the kernel starts" in msg and "restart JupyterLab" in msg and "%env DDPM_DATA_DIR=" in msg
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in data_mod.MNIST_FILES:
        (raw / f).symlink_to(have / f)
    x, y = load_mnist_tensors(train=False, root=tmp_path / "data", download=False, limit=5)
    assert x.shape == (5, 1, 28, 28) and y.shape == (5,)


def test_missing_data_error_when_download_fails(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(data_mod.datasets.MNIST, "download", offline)
    with pytest.raises(DatasetNotFoundError, match="download failed.*network is unreachable"):
        load_mnist_tensors(root=tmp_path, download=True)


def test_bad_digit_is_rejected():
    with pytest.raises(ValueError, match="between 0 and 9"):
        load_mnist_tensors(digits=[12])


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


def test_every_figure_helper_draws(tmp_path):
    import matplotlib.pyplot as plt
    from solutions import forward_diffuse_1d, q_sample

    x = torch.rand(10, 1, 28, 28) * 2 - 1
    labels = torch.arange(10)
    figs = [
        plotting.show_images(x, nrow=5).figure,
        plotting.plot_forward_1d(forward_diffuse_1d(torch.randn(500), 0.05, 20)),
        plotting.plot_noising_grid(x[:2], [25, 999], q_sample),
        plotting.plot_pixel_histogram(torch.randn(1000)),
        plotting.plot_class_grid(x, labels),
        plotting.plot_real_vs_generated(x, x),
        plotting.plot_reverse_strip([(t, x) for t in (10, 5, 0)]),
        plotting.plot_losses([1.0] * 100),
    ]
    for i, fig in enumerate(figs):
        assert fig.axes, f"figure {i} has no axes"
        fig.savefig(tmp_path / f"{i}.png")
    assert len(figs[1].axes[0].lines) >= 1  # the N(0, 1) overlay
    assert len(figs[2].axes) == 3            # x_0 + two timesteps
    assert len(figs[4].axes) == 10           # one row per class
    strip = plotting.plot_reverse_strip([(t, x, -x) for t in (10, 5, 0)], show_x0=True)
    assert len(strip.axes) == 6                # x_t above, x̂_0 below, for each of the 3 frames
    with pytest.raises(ValueError, match="x0_hat"):
        plotting.plot_reverse_strip([(t, x) for t in (10, 5, 0)], show_x0=True)
    plt.close("all")


def test_the_reverse_animation_holds_every_frame():
    """to_jshtml embeds one PNG per frame: as many as frames given, and they differ (the frames really change)."""
    import re

    x = torch.rand(4, 1, 28, 28) * 2 - 1
    frames = [(t, x * t / 10) for t in (10, 7, 4, 0)]
    html = plotting.animate_reverse(frames, nrow=2).to_jshtml()
    pngs = re.findall(r'frames\[(\d+)\] = "data:image/png;base64,([^"]+)"', html)
    assert [int(k) for k, _ in pngs] == list(range(len(frames)))
    assert re.search(r"new Array\((\d+)\)", html).group(1) == str(len(frames))
    assert len({png for _, png in pngs}) == len(frames), "the animation repeats a frame: update() did not draw"
    html3 = plotting.animate_reverse([(t, x, -x) for t in (10, 0)], nrow=2).to_jshtml()   # frames with x̂_0
    assert len(re.findall(r'frames\[\d+\] = "data:image/png', html3)) == 2
