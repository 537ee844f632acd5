"""Datasets: digits, CIFAR-10 python batches (restricted unpickler), ImageFolder, bad paths."""

import os
import pickle
import sys

import numpy as np
import pytest
import torch
from conftest import assert_one_line_error

from hwnas.data import augment_batch, load_dataset, read_cifar_batch
from hwnas.errors import HwnasError

TINY = "r32c3_s16k3s2r6_k3e1c16s1_k3e4c24s2_k3e4c24s1_k5e4c32s2_h256r6_n10"


# ---- digits -------------------------------------------------------------------------------------

def test_digits_shapes_classes_and_normalisation():
    d = load_dataset("digits", 32)
    assert d.classes == 10 and d.channels == 3 and d.native_resolution == 8
    assert d.train_x.shape == (len(d.train_y), 3, 32, 32) and d.train_x.dtype == torch.float32
    assert d.test_x.shape == (len(d.test_y), 3, 32, 32)
    assert len(d.train_y) + len(d.test_y) == 1797
    assert abs(len(d.test_y) / 1797 - 0.2) < 0.01
    # stratified: every class in both splits, in about the same proportion
    tr, te = torch.bincount(d.train_y, minlength=10), torch.bincount(d.test_y, minlength=10)
    assert (te > 0).all() and ((tr / te.clamp_min(1)) - 4).abs().max() < 0.5
    # grey replicated to 3 channels, normalised with the training split's statistics
    assert torch.equal(d.train_x[:, 0], d.train_x[:, 2])
    assert abs(d.train_x.mean().item()) < 0.05 and abs(d.train_x.std().item() - 1) < 0.2
    assert not d.flip  # no flips for digits


def test_digits_split_is_deterministic_by_seed():
    a, b, c = load_dataset("digits", 16, seed=3), load_dataset("digits", 16, seed=3), load_dataset("digits", 16, seed=4)
    assert torch.equal(a.test_x, b.test_x) and torch.equal(a.test_y, b.test_y)
    assert not torch.equal(a.test_x, c.test_x)


def test_large_resolution_is_resized_per_batch_not_materialised():
    d = load_dataset("digits", 512)  # 1797 x 3 x 512 x 512 floats would be 5.6 GB
    assert d.stored_resolution < 512 and d.resolution == 512
    xb, yb = next(d.batches("train", 4))
    assert xb.shape == (4, 3, 512, 512) and yb.shape == (4,)
    xb, _ = next(d.batches("test", 4, resolution=40))
    assert xb.shape == (4, 3, 40, 40)


def test_augmentation_shifts_with_zero_fill_and_flips_only_when_asked():
    x = torch.randn(16, 3, 12, 12)
    g = torch.Generator().manual_seed(0)
    y = augment_batch(x, g, flip=False, max_shift=2)
    for i in range(len(x)):  # each output is x[i] translated by some (dy, dx) in [-2, 2]^2
        padded = torch.nn.functional.pad(x[i], (2, 2, 2, 2))
        hits = [(dy, dx) for dy in range(5) for dx in range(5)
                if torch.equal(padded[:, dy:dy + 12, dx:dx + 12], y[i])]
        assert hits, f"image {i} is not a translation of its input"
    assert any(not torch.equal(y[i], x[i]) for i in range(len(x)))  # some images did move
    f = augment_batch(x, torch.Generator().manual_seed(0), flip=True, max_shift=0)
    flipped = [torch.equal(f[i], x[i].flip(-1)) for i in range(len(x))]
    kept = [torch.equal(f[i], x[i]) for i in range(len(x))]
    assert all(a or b for a, b in zip(flipped, kept, strict=True)) and any(flipped) and any(kept)


# ---- CIFAR-10 -----------------------------------------------------------------------------------

def _write_cifar(folder, n_train=(12, 8), n_test=10, protocols=(2, 4, 5), seed=0):
    """A tiny python-format CIFAR-10 folder; returns the arrays written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    names = [f"data_batch_{i + 1}" for i in range(len(n_train))] + ["test_batch"]
    for name, n, proto in zip(names, [*n_train, n_test], protocols, strict=True):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        with open(folder / name, "wb") as f:  # writing with pickle is fine; reading is not
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data,
                         b"filenames": [b"x.png"] * n}, f, protocol=proto)
        written[name] = (data, labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)], b"num_vis": 3072}, f,
                    protocol=2)
    return written


def test_cifar10_reader_on_synthetic_python_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    written = _write_cifar(folder)
    for name, (data, labels) in written.items():  # pickle protocols 2, 4 and 5
        x, y = read_cifar_batch(folder / name)
        assert np.array_equal(x, data.reshape(-1, 3, 32, 32)) and y.tolist() == labels
    d = load_dataset(f"cifar10:{tmp_path}", 32)  # the parent folder works too
    assert d.train_x.shape == (20, 3, 32, 32) and d.test_x.shape == (10, 3, 32, 32)
    assert d.train_y.tolist() == written["data_batch_1"][1] + written["data_batch_2"][1]
    assert d.flip and d.class_names[3] == "c3"
    # images keep their content (up to the per-channel normalisation)
    raw = torch.from_numpy(written["test_batch"][0].reshape(-1, 3, 32, 32)).float()
    corr = torch.corrcoef(torch.stack([raw[:, 0].flatten(), d.test_x[:, 0].flatten()]))[0, 1]
    assert corr > 0.999
    d64 = load_dataset(f"cifar10:{folder}", 64)
    assert next(d64.batches("train", 5))[0].shape == (5, 3, 64, 64)


def test_cifar10_malicious_pickle_is_refused_without_running_it(tmp_path, cli):
    folder = tmp_path / "cifar"
    _write_cifar(folder)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (folder / "data_batch_1").write_bytes(pickle.dumps({b"labels": [1], b"data": Evil()}))
    with pytest.raises(HwnasError, match=r"refused: .*system"):
        load_dataset(f"cifar10:{folder}", 32)
    r = cli("score", TINY, "--data", f"cifar10:{folder}")
    assert_one_line_error(r, "data_batch_1", "refused")
    assert not marker.exists()


@pytest.mark.parametrize("content, fragment", [
    (b"not a pickle at all", "not a CIFAR-10 python-format batch"),
    (pickle.dumps({b"labels": [1, 2], b"data": np.zeros((2, 100), np.uint8)}, protocol=2), "3072"),
    (pickle.dumps({b"labels": [1], b"data": np.zeros((1, 3072), np.float32)}, protocol=2), "uint8"),
    (pickle.dumps([1, 2, 3], protocol=2), "expected a dict"),
])
def test_cifar10_malformed_batch_is_one_clear_error(tmp_path, content, fragment):
    folder = tmp_path / "c"
    _write_cifar(folder)
    (folder / "data_batch_1").write_bytes(content)
    with pytest.raises(HwnasError, match=fragment) as e:
        load_dataset(f"cifar10:{folder}", 32)
    assert "data_batch_1" in str(e.value) and "\n" not in str(e.value)


def test_bad_dataset_specs_are_one_clear_line(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    for spec, fragments in [
        (f"cifar10:{tmp_path / 'empty'}", ("no data_batch_1", "cifar-10-batches-py")),
        ("imagefolder:/no/such/dir", ("imagefolder:/no/such/dir", "no such folder")),
        ("cifar10", ("needs a path",)),
        ("mnist", ("needs a path", "mnist:PATH")),  # a known kind since the idx reader
        ("svhn", ("unknown dataset 'svhn'", "digits", "fashion-mnist")),
    ]:
        with pytest.raises(HwnasError) as e:
            load_dataset(spec, 32)
        assert all(f in str(e.value) for f in fragments) and "\n" not in str(e.value)
    assert_one_line_error(cli("score", TINY, "--data", "cifar10:/no/such/dir"),
                          "cifar10:/no/such/dir", "no such folder")


# ---- ImageFolder --------------------------------------------------------------------------------

def _write_tree(root, split_dirs, per_class=6):
    from PIL import Image

    colours = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 230)}
    for split in split_dirs:
        for c, rgb in colours.items():
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(per_class):
                size = (40 + 3 * i, 30 + 2 * i)  # varied sizes and aspect ratios
                Image.new("RGB", size, tuple(max(0, v - 5 * i) for v in rgb)).save(d / f"{i}.png")
    return list(colours)


def test_imagefolder_train_val_and_seeded_split(tmp_path):
    pytest.importorskip("PIL")
    names = _write_tree(tmp_path / "a", ["train", "val"])
    d = load_dataset(f"imagefolder:{tmp_path / 'a'}", 24)
    assert d.classes == 3 and list(d.class_names) == sorted(names)
    assert d.train_x.shape == (18, 3, 24, 24) and d.test_x.shape == (18, 3, 24, 24)
    # a class is told apart by its colour: the red channel is highest for 'red'
    red = d.class_names.index("red")
    assert d.train_x[d.train_y == red, 0].mean() > d.train_x[d.train_y != red, 0].mean()

    _write_tree(tmp_path / "b", ["."])  # PATH/<class>/<image>: a seeded stratified split
    s1 = load_dataset(f"imagefolder:{tmp_path / 'b'}", 16, seed=1)
    s2 = load_dataset(f"imagefolder:{tmp_path / 'b'}", 16, seed=1)
    assert len(s1.train_y) + len(s1.test_y) == 18 and len(set(s1.test_y.tolist())) == 3
    assert torch.equal(s1.test_x, s2.test_x)


def test_imagefolder_without_pillow_is_one_clear_error(tmp_path, monkeypatch):
    (tmp_path / "t" / "cat").mkdir(parents=True)
    monkeypatch.setitem(sys.modules, "PIL", None)  # as if Pillow were not installed
    with pytest.raises(HwnasError, match="needs Pillow"):
        load_dataset(f"imagefolder:{tmp_path / 't'}", 32)


def test_imagefolder_without_class_folders(tmp_path):
    pytest.importorskip("PIL")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "readme.txt").write_text("no images")
    with pytest.raises(HwnasError, match="no class folders with images"):
        load_dataset(f"imagefolder:{tmp_path / 'x'}", 32)
