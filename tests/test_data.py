"""tutorial_utils.data: MNIST loading (real files), the data-folder resolution and its error path."""
import os

import pytest
import torch

from tutorial_utils import DatasetNotFoundError, get_dataloaders, load_mnist_tensors, mnist_dataset, resolve_data_root
from tutorial_utils import data as data_mod


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
