"""MNIST-format idx folders: Fashion-MNIST from the Debian package, any idx folder, bad files."""

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_one_line_error

from hwnas.data import FASHION_MNIST_DIR, load_dataset, read_idx
from hwnas.errors import HwnasError

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def idx_bytes(a: np.ndarray) -> bytes:
    magic = 0x00000800 | a.ndim
    head = magic.to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in a.shape)
    return head + a.astype(np.uint8).tobytes()


def write_idx_folder(folder: Path, n_train=40, n_test=20, side=28, gz=False, seed=0) -> dict:
    """A tiny MNIST-format folder: labels cycle 0..9, every image a constant = 10 * label."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        y = (np.arange(n) % 10).astype(np.uint8)
        rng.shuffle(y)
        x = np.repeat((y * 10)[:, None, None], side * side, 1).reshape(n, side, side)
        out[split] = (x, y)
        for kind, arr in (("images-idx3", x), ("labels-idx1", y)):
            raw = idx_bytes(arr)
            name = f"{split}-{kind}-ubyte"
            if gz:
                (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
            else:
                (folder / name).write_bytes(raw)
    return out


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_keeps_the_official_split_labels_and_images(tmp_path, gz):
    arrays = write_idx_folder(tmp_path / "f", gz=gz)
    d = load_dataset(f"fashion-mnist:{tmp_path / 'f'}", 32)
    assert d.classes == 10 and d.channels == 3 and d.native_resolution == 28
    assert d.train_x.shape == (40, 3, 32, 32) and d.test_x.shape == (20, 3, 32, 32)
    assert torch.equal(d.train_y, torch.from_numpy(arrays["train"][1].astype(np.int64)))
    assert torch.equal(d.test_y, torch.from_numpy(arrays["t10k"][1].astype(np.int64)))
    # image i is constant 10 * label: after normalisation its mean still orders by label
    means = d.train_x.mean((1, 2, 3))
    order = torch.argsort(means)
    assert (torch.diff(d.train_y[order]) >= 0).all()
    assert d.flip and d.class_names[0] == "T-shirt/top"
    m = load_dataset(f"mnist:{tmp_path / 'f'}", 28)
    assert m.name == "mnist" and not m.flip and m.class_names[3] == "3"


def test_search_sees_only_a_validation_carve_of_the_training_split(tmp_path):
    write_idx_folder(tmp_path / "f", n_train=100, n_test=30)
    d = load_dataset(f"fashion-mnist:{tmp_path / 'f'}", 16)
    v = d.split_validation(0.2, seed=0)
    assert len(v.train_y) + len(v.test_y) == 100  # carved from the 100 training images
    assert len(v.test_y) == 20
    train_rows = {tuple(r.tolist()) for r in d.train_x.flatten(1)[:, :1]}
    assert {tuple(r.tolist()) for r in v.test_x.flatten(1)[:, :1]} <= train_rows


@pytest.mark.parametrize("damage, fragment", [
    ("missing", "train-labels-idx1-ubyte[.gz]: no such file"),
    ("magic", "magic number 0x00000000"),
    ("truncated", "truncated"),
    ("count", "labels for"),
    ("label", "outside 0..9"),
    ("gzip", "unreadable"),
])
def test_bad_idx_files_are_one_line_naming_the_file(tmp_path, cli, damage, fragment):
    f = tmp_path / "f"
    write_idx_folder(f)
    target = f / "train-labels-idx1-ubyte"
    raw = target.read_bytes()
    if damage == "missing":
        target.unlink()
    elif damage == "magic":
        target.write_bytes(b"\0\0\0\0" + raw[4:])
    elif damage == "truncated":
        target.write_bytes(raw[:-3])
    elif damage == "count":
        target.write_bytes(idx_bytes(np.zeros(39, np.uint8)))
    elif damage == "label":
        target.write_bytes(idx_bytes(np.full(40, 12, np.uint8)))
    elif damage == "gzip":
        target.unlink()
        (f / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8bnot gzip at all")
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in f.iterdir()}
    with pytest.raises(HwnasError) as e:
        load_dataset(f"fashion-mnist:{f}", 16)
    assert fragment in str(e.value) and "train-labels-idx1-ubyte" in str(e.value)
    r = cli("score", "mbv2-0.35", "--data", f"fashion-mnist:{f}", "-r", "16")
    assert_one_line_error(r, fragment)
    assert before == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in f.iterdir()}


def test_missing_folder_and_missing_path(tmp_path):
    with pytest.raises(HwnasError, match="no such folder"):
        load_dataset(f"fashion-mnist:{tmp_path / 'nope'}", 16)
    with pytest.raises(HwnasError, match="needs a path"):
        load_dataset("mnist", 16)


def test_read_idx_checks_dims(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(idx_bytes(np.zeros((2, 3, 3), np.uint8)))
    assert read_idx(p, 3).shape == (2, 3, 3)
    with pytest.raises(HwnasError, match="not an idx file of 1-d"):
        read_idx(p, 1)


@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(),
                    reason="apt-get install dataset-fashion-mnist (.ci/run installs it)")
def test_the_real_fashion_mnist_from_the_debian_package():
    d = load_dataset("fashion-mnist", 28)
    assert len(d.train_y) == 60000 and len(d.test_y) == 10000
    assert torch.equal(torch.bincount(d.train_y), torch.full((10,), 6000))
    assert torch.equal(torch.bincount(d.test_y), torch.full((10,), 1000))
    assert d.stored_resolution == 28
