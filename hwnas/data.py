"""Datasets for accuracy estimation and retraining: digits, CIFAR-10 from disk, ImageFolder.

``load_dataset(spec, resolution)`` with ``spec`` one of

* ``digits`` -- scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes),
  a fixed stratified 80/20 train/test split chosen by ``seed``, upsampled (bilinear);
* ``cifar10:PATH`` -- the python-format folder ``cifar-10-batches-py`` (``data_batch_1``..
  ``data_batch_5``, ``test_batch``; PATH may also be its parent). The batches are pickles:
  they are read with a restricted unpickler that executes nothing (see
  :func:`read_cifar_batch`), never with the unrestricted unpickler;
* ``fashion-mnist`` -- Fashion-MNIST (Xiao et al. 2017; 60,000 + 10,000 28x28 grey images, 10
  classes, the official split) from the idx files in :data:`FASHION_MNIST_DIR`, where the
  Debian package ``dataset-fashion-mnist`` puts them; ``fashion-mnist:PATH`` reads them from
  another folder and ``mnist:PATH`` reads any MNIST-format idx folder
  (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``, ``t10k-...``) with
  numpy (:func:`read_idx`);
* ``imagefolder:PATH`` -- ``PATH/<class>/<image>``, or ``PATH/train/<class>/...`` with
  ``PATH/val`` (or ``valid``/``validation``/``test``) as the test split; without one, a
  seeded stratified 80/20 split. Images are decoded with Pillow (needed only here), resized
  so the shorter side is the resolution and centre-cropped.

Every image gets 3 channels (grey replicated) and is normalised per channel with the
training split's mean and std.

Memory: ``train_x``/``test_x`` are float32 at the requested ``resolution`` when that takes at
most :data:`EAGER_BYTES` (1 GiB); otherwise (e.g. CIFAR-10 at 64 px and above) they stay at
the native resolution and are resized per batch. Read images through :meth:`Dataset.batches`
or :meth:`Dataset.prepare`, which resize when needed (and to any other resolution asked for).
"""

from __future__ import annotations

import gzip
import io
import logging
import pickle
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .errors import HwnasError

log = logging.getLogger(__name__)

EAGER_BYTES = 1 << 30
KNOWN_SPECS = "digits, fashion-mnist[:PATH], mnist:PATH, cifar10:PATH, imagefolder:PATH"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".gif", ".webp", ".tif", ".tiff")
_VAL_DIRS = ("val", "valid", "validation", "test")


@dataclass
class Dataset:
    """Images (N, 3, H, W) float32, normalised; labels (N,) int64.

    ``resolution`` is the size batches come out at; ``train_x`` may be stored smaller (see the
    module docstring). ``flip``: horizontal flips preserve the labels (natural images, not
    digits). ``shift``: the largest random translation of the standard augmentation, as a
    fraction of the side (CIFAR-10: 4 px at 32).
    """

    name: str
    classes: int
    channels: int
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    native_resolution: int
    resolution: int = 0
    flip: bool = False
    shift: float = 0.125
    class_names: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.resolution:
            self.resolution = int(self.train_x.shape[-1])

    @property
    def stored_resolution(self) -> int:
        return int(self.train_x.shape[-1])

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        if name not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {name!r}")
        return (self.train_x, self.train_y) if name == "train" else (self.test_x, self.test_y)

    def prepare(self, x: torch.Tensor, resolution: int | None = None) -> torch.Tensor:
        """``x`` (stored images) resized to ``resolution`` (default: the dataset's)."""
        return resize(x, resolution or self.resolution)

    def batches(self, split: str, batch_size: int, *, resolution: int | None = None,
                shuffle: bool = False, generator: torch.Generator | None = None,
                augment: bool = False, drop_last: bool = False,
                indices: torch.Tensor | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (images, labels) at ``resolution``; shuffling and augmentation draw from
        ``generator`` only (reproducible)."""
        x, y = self.split(split)
        idx = indices if indices is not None else torch.arange(len(y))
        if shuffle:
            idx = idx[torch.randperm(len(idx), generator=generator)]
        res = resolution or self.resolution
        stop = len(idx) - (len(idx) % batch_size if drop_last and len(idx) >= batch_size else 0)
        for s in range(0, stop, batch_size):
            b = idx[s:s + batch_size]
            xb = resize(x[b], res)
            if augment:
                xb = augment_batch(xb, generator, flip=self.flip, max_shift=round(self.shift * res))
            yield xb, y[b]

    def minibatch(self, n: int, seed: int = 0, resolution: int | None = None) -> torch.Tensor:
        """A fixed real minibatch of ``n`` training images (class-balanced where possible)."""
        idx = stratified_indices(self.train_y, min(n, len(self.train_y)), seed)
        return self.prepare(self.train_x[idx], resolution)

    def subset(self, n: int | None, seed: int = 0) -> Dataset:
        """A stratified seeded subset of ``n`` training images (the test split unchanged)."""
        if n is None or n >= len(self.train_y):
            return self
        idx = stratified_indices(self.train_y, n, seed)
        return replace(self, train_x=self.train_x[idx], train_y=self.train_y[idx])

    def split_validation(self, fraction: float = 0.2, seed: int = 0) -> Dataset:
        """Hold out a stratified ``fraction`` of the training split as the test split
        (for estimates during a search, so that the real test split stays unseen)."""
        n_val = max(self.classes, round(len(self.train_y) * fraction))
        val = stratified_indices(self.train_y, n_val, seed)
        keep = torch.ones(len(self.train_y), dtype=torch.bool)
        keep[val] = False
        return replace(self, name=f"{self.name}[val]", train_x=self.train_x[keep],
                       train_y=self.train_y[keep], test_x=self.train_x[val], test_y=self.train_y[val])


# ---- tensor helpers ---------------------------------------------------------------------------

def resize(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Bilinear resize of a (N, C, H, W) batch to ``resolution`` (antialiased when shrinking)."""
    if x.shape[-1] == resolution and x.shape[-2] == resolution:
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False,
                         antialias=resolution < x.shape[-1])


def augment_batch(x: torch.Tensor, generator: torch.Generator | None, flip: bool,
                  max_shift: int) -> torch.Tensor:
    """Random translation by up to ``max_shift`` px (zero padding = the mean colour after
    normalisation, then a random crop: the CIFAR "pad 4 + crop 32" recipe) and, if ``flip``,
    a random horizontal flip per image."""
    n, _, h, w = x.shape
    if max_shift > 0:
        p = max_shift
        padded = F.pad(x, (p, p, p, p))
        oy = torch.randint(0, 2 * p + 1, (n,), generator=generator)
        ox = torch.randint(0, 2 * p + 1, (n,), generator=generator)
        rows = (oy[:, None] + torch.arange(h))[:, :, None]  # (n, h, 1)
        cols = (ox[:, None] + torch.arange(w))[:, None, :]  # (n, 1, w)
        rows, cols = rows.to(x.device), cols.to(x.device)  # drawn on the CPU generator
        x = padded[torch.arange(n, device=x.device)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
    if flip:
        m = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        x = torch.where(m[:, None, None, None], x.flip(-1), x)
    return x.contiguous()


def stratified_indices(y: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` indices of ``y`` drawn without replacement, proportionally per class (seeded)."""
    from sklearn.model_selection import train_test_split

    if n >= len(y):
        return torch.arange(len(y))
    idx = np.arange(len(y))
    labels = y.cpu().numpy()
    counts = np.bincount(labels)
    strat = labels if n >= (counts > 0).sum() and counts[counts > 0].min() >= 2 else None
    pick, _ = train_test_split(idx, train_size=n, random_state=seed, stratify=strat)
    return torch.from_numpy(np.sort(pick))


def _finish(name: str, classes: int, train_x: torch.Tensor, train_y: torch.Tensor,
            test_x: torch.Tensor, test_y: torch.Tensor, native: int, resolution: int,
            **kw) -> Dataset:
    """Normalise with the training split's per-channel statistics, give 3 channels and
    store at ``resolution`` when it fits in :data:`EAGER_BYTES`."""
    mean = train_x.mean((0, 2, 3), keepdim=True)
    std = train_x.std((0, 2, 3), keepdim=True).clamp_min(1e-6)
    n = len(train_y) + len(test_y)
    eager = n * 3 * resolution * resolution * 4 <= EAGER_BYTES
    store = resolution if eager else min(resolution, native)

    def prep(x: torch.Tensor) -> torch.Tensor:
        x = resize((x - mean) / std, store)
        return x.expand(-1, 3, -1, -1).contiguous() if x.shape[1] == 1 else x.contiguous()

    if not eager:
        log.debug("%s: keeping images at %d px, resizing per batch to %d", name, store, resolution)
    return Dataset(name=name, classes=classes, channels=3, train_x=prep(train_x),
                   train_y=train_y.long(), test_x=prep(test_x), test_y=test_y.long(),
                   native_resolution=native, resolution=resolution, **kw)


# ---- loading ---------------------------------------------------------------------------------

def load_dataset(spec: str, resolution: int, seed: int = 0) -> Dataset:
    """Load ``digits`` | ``cifar10:PATH`` | ``imagefolder:PATH`` at ``resolution`` (see module doc)."""
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution <= 0:
        raise HwnasError(f"dataset resolution must be a positive integer, got {resolution!r}")
    kind, _, path = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "digits":
        if path:
            raise HwnasError(f"'{spec}': digits ships with scikit-learn and takes no path")
        return load_digits(resolution, seed)
    if kind == "fashion-mnist":
        return load_idx_folder(Path(path).expanduser() if path else FASHION_MNIST_DIR, resolution,
                               "fashion-mnist", spec)
    if kind == "mnist":
        if not path:
            raise HwnasError(f"'{spec}': needs a path: mnist:PATH (a folder of MNIST-format idx files)")
        return load_idx_folder(Path(path).expanduser(), resolution, "mnist", spec)
    if kind in ("cifar10", "imagefolder"):
        if not path:
            what = ("the python-format folder cifar-10-batches-py" if kind == "cifar10"
                    else "a folder of class sub-folders")
            raise HwnasError(f"'{spec}': needs a path: {kind}:PATH ({what})")
        p = Path(path).expanduser()
        return load_cifar10(p, resolution) if kind == "cifar10" else load_imagefolder(p, resolution, seed)
    raise HwnasError(f"unknown dataset '{spec}' (known: {KNOWN_SPECS})")


def load_digits(resolution: int, seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    d = sk_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]  # (N, 1, 8, 8)
    y = torch.from_numpy(d.target.astype(np.int64))
    tr, te = train_test_split(np.arange(len(y)), test_size=test_fraction, random_state=seed,
                              stratify=d.target)
    tr, te = torch.from_numpy(np.sort(tr)), torch.from_numpy(np.sort(te))
    return _finish("digits", 10, x[tr], y[tr], x[te], y[te], native=8, resolution=resolution,
                   flip=False, shift=1 / 16, class_names=tuple(str(i) for i in range(10)))


# ---- MNIST-format idx files (Fashion-MNIST, MNIST) ---------------------------------------------

_IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_IDX_MAGIC = {3: 0x00000803, 1: 0x00000801}  # unsigned bytes, 3 dims (images) / 1 dim (labels)


def read_idx(path: Path, dims: int) -> np.ndarray:
    """An idx file (``.gz`` or not) of unsigned bytes with ``dims`` dimensions, checked: the
    magic number, the header's sizes against the file's length."""
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise HwnasError(f"{path}: unreadable ({e})") from None
    head = 4 + 4 * dims
    if len(raw) < head:
        raise HwnasError(f"{path}: truncated: {len(raw)} bytes, shorter than its header")
    magic = int.from_bytes(raw[:4], "big")
    if magic != _IDX_MAGIC[dims]:
        raise HwnasError(f"{path}: not an idx file of {dims}-d unsigned bytes "
                         f"(magic number 0x{magic:08x}, expected 0x{_IDX_MAGIC[dims]:08x})")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    want = head + int(np.prod(shape))
    if len(raw) != want:
        raise HwnasError(f"{path}: {'truncated' if len(raw) < want else 'too long'}: "
                         f"{len(raw)} bytes, its header {shape} says {want}")
    return np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(shape)


def _idx_file(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise HwnasError(f"{folder / stem}[.gz]: no such file (an MNIST-format idx folder has "
                     f"{', '.join(f for pair in _IDX_FILES.values() for f in pair)})")


def load_idx_folder(folder: Path, resolution: int, name: str, spec: str) -> Dataset:
    """The official train/test split of an MNIST-format idx folder (see module docstring)."""
    if not folder.is_dir():
        hint = (" (apt-get install dataset-fashion-mnist puts it there)"
                if folder == FASHION_MNIST_DIR else "")
        raise HwnasError(f"'{spec}': no such folder {folder}{hint}")
    arrays = {}
    for split, (images, labels) in _IDX_FILES.items():
        x = read_idx(_idx_file(folder, images), 3)
        y = read_idx(_idx_file(folder, labels), 1)
        if len(x) != len(y):
            raise HwnasError(f"{_idx_file(folder, labels)}: {len(y)} labels for {len(x)} images")
        if x.shape[1] != x.shape[2]:
            raise HwnasError(f"{_idx_file(folder, images)}: images are {x.shape[1]}x{x.shape[2]}, "
                             "not square")
        if len(y) and int(y.max()) > 9:
            raise HwnasError(f"{_idx_file(folder, labels)}: label {int(y.max())} outside 0..9")
        arrays[split] = (torch.from_numpy(x.astype(np.float32) / 255)[:, None],
                         torch.from_numpy(y.astype(np.int64)))
    (tx, ty), (vx, vy) = arrays["train"], arrays["test"]
    fashion = name == "fashion-mnist"
    return _finish(name, 10, tx, ty, vx, vy, native=int(tx.shape[-1]), resolution=resolution,
                   flip=fashion, shift=0.125 if fashion else 1 / 16,
                   class_names=FASHION_MNIST_CLASSES if fashion else tuple(map(str, range(10))))


# ---- CIFAR-10 (python format) with a restricted unpickler ---------------------------------------------

class _DType:
    """Stand-in for ``numpy.dtype`` inside a CIFAR batch: records the type code only."""

    def __init__(self, code, *_args):
        self.code = code.decode("latin1") if isinstance(code, bytes) else str(code)

    def __setstate__(self, state):
        pass


class _Array:
    """Stand-in for a numpy array: keeps (shape, dtype, raw bytes) as plain data."""

    def __init__(self, shape=(), dtype=None, raw=b""):
        self.shape, self.dtype, self.raw = tuple(shape), dtype, bytes(raw)

    def __setstate__(self, state):
        # ndarray state: (version, shape, dtype, is_fortran, rawdata)
        if not (isinstance(state, tuple) and len(state) == 5):
            raise pickle.UnpicklingError("unexpected array state")
        _, shape, dtype, fortran, raw = state
        if fortran or not isinstance(raw, (bytes, bytearray, str)):
            raise pickle.UnpicklingError("unexpected array layout")
        self.shape, self.dtype = tuple(shape), dtype
        self.raw = raw.encode("latin1") if isinstance(raw, str) else bytes(raw)

    def to_numpy(self) -> np.ndarray:
        code = getattr(self.dtype, "code", None)
        if code not in ("u1", "uint8", "|u1", "B"):
            raise pickle.UnpicklingError(f"array of dtype {code!r}, expected uint8")
        arr = np.frombuffer(self.raw, dtype=np.uint8)
        if arr.size != int(np.prod(self.shape)):
            raise pickle.UnpicklingError("array data does not match its shape")
        return arr.reshape(self.shape)


def _reconstruct(cls, shape, dtype_code):  # numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')
    return _Array()


def _frombuffer(buf, dtype, shape, order):  # numpy._core.numeric._frombuffer (pickle protocol 5)
    if order not in ("C", b"C"):
        raise pickle.UnpicklingError("unexpected array layout")
    return _Array(shape, dtype, buf)


def _latin1_encode(s, encoding="latin1"):  # _codecs.encode: how Python 3 protocol 2 writes bytes
    if not isinstance(s, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("unexpected _codecs.encode call")
    return s.encode("latin1")


# Every global a CIFAR-10 batch may name, mapped to an inert stand-in (no numpy code runs).
_CIFAR_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): _Array,
    ("numpy", "dtype"): _DType,
    ("_codecs", "encode"): _latin1_encode,
}


class _CifarUnpickler(pickle.Unpickler):
    """Builds only dicts, lists, bytes, str, ints and uint8 arrays; any other global
    (``os.system``, ``builtins.eval``...) is refused before anything runs."""

    def find_class(self, module, name):
        fn = _CIFAR_GLOBALS.get((module, name))
        if fn is None:
            raise _Refused(f"{module}.{name}")
        return fn

    def persistent_load(self, pid):
        raise _Refused("a persistent id")


class _Refused(pickle.UnpicklingError):
    pass


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One python-format CIFAR-10 batch -> (images (N, 3, 32, 32) uint8, labels (N,) int64)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise HwnasError(f"{path}: cannot read ({e.strerror})") from None
    try:
        d = _CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except _Refused as e:
        raise HwnasError(f"{path}: refused: the pickle references {e} (a CIFAR-10 batch holds "
                         "only a dict of labels and uint8 image data)") from None
    except Exception as e:  # truncated / not a pickle / unexpected structure
        raise HwnasError(f"{path}: not a CIFAR-10 python-format batch ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else 'unreadable'})") from None
    bad = HwnasError(f"{path}: not a CIFAR-10 python-format batch (expected a dict with "
                     "'data' (N x 3072 uint8) and 'labels')")
    if not isinstance(d, dict):
        raise bad
    d = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in d.items()}
    data, labels = d.get("data"), d.get("labels", d.get("fine_labels"))
    if isinstance(data, _Array):
        try:
            data = data.to_numpy()
        except pickle.UnpicklingError as e:
            raise HwnasError(f"{path}: malformed 'data' ({e})") from None
    elif isinstance(data, (bytes, bytearray)):
        data = np.frombuffer(bytes(data), dtype=np.uint8)
        data = data.reshape(-1, 3072) if data.size % 3072 == 0 else data
    elif isinstance(data, list):
        data = np.asarray(data, dtype=np.uint8)
    else:
        raise bad
    if not isinstance(labels, list) or not all(isinstance(v, int) for v in labels):
        raise bad
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != len(labels):
        raise HwnasError(f"{path}: 'data' has shape {data.shape}, expected ({len(labels)}, 3072)")
    y = np.asarray(labels, dtype=np.int64)
    if len(y) and (y.min() < 0 or y.max() > 9):
        raise HwnasError(f"{path}: labels outside 0..9")
    return np.array(data.reshape(-1, 3, 32, 32)), y  # a writable copy


def load_cifar10(path: Path, resolution: int) -> Dataset:
    spec = f"cifar10:{path}"
    if not path.is_dir():
        raise HwnasError(f"{spec}: no such folder (expected the python-format folder "
                         "cifar-10-batches-py)")
    if not (path / "data_batch_1").exists() and (path / "cifar-10-batches-py").is_dir():
        path = path / "cifar-10-batches-py"
    train_files = sorted(path.glob("data_batch_[0-9]*"))
    if not (path / "data_batch_1").is_file():
        raise HwnasError(f"{spec}: no data_batch_1 (expected the python-format folder "
                         "cifar-10-batches-py)")
    if not (path / "test_batch").is_file():
        raise HwnasError(f"{spec}: no test_batch (expected the python-format folder "
                         "cifar-10-batches-py)")
    parts = [read_cifar_batch(f) for f in train_files]
    tx, ty = read_cifar_batch(path / "test_batch")
    x = torch.from_numpy(np.concatenate([p[0] for p in parts])).float().div_(255)
    y = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    names = tuple(f"class{i}" for i in range(10))
    meta = path / "batches.meta"
    if meta.is_file():
        try:
            m = _CifarUnpickler(io.BytesIO(meta.read_bytes()), encoding="bytes").load()
            ln = m.get(b"label_names", m.get("label_names")) if isinstance(m, dict) else None
            if isinstance(ln, list) and len(ln) == 10:
                names = tuple(v.decode() if isinstance(v, bytes) else str(v) for v in ln)
        except Exception:  # names are cosmetic
            log.debug("%s: unreadable, using class0..class9", meta)
    return _finish("cifar10", 10, x, y, torch.from_numpy(tx).float().div_(255),
                   torch.from_numpy(ty), native=32, resolution=resolution, flip=True,
                   shift=0.125, class_names=names)


# ---- ImageFolder ----------------------------------------------------------------------------------

def _class_dirs(root: Path) -> dict[str, list[Path]]:
    out = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(f for f in d.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        if files:
            out[d.name] = files
    return out


def load_imagefolder(path: Path, resolution: int, seed: int = 0) -> Dataset:
    spec = f"imagefolder:{path}"
    if not path.is_dir():
        raise HwnasError(f"{spec}: no such folder (expected PATH/<class>/<image> or "
                         "PATH/train/<class>/<image>)")
    try:
        from PIL import Image  # noqa: F401
    except ImportError:
        raise HwnasError(f"{spec}: reading image folders needs Pillow, which is not installed "
                         "(pip install pillow)") from None
    train_root = path / "train" if (path / "train").is_dir() else path
    val_root = next((path / v for v in _VAL_DIRS if train_root != path and (path / v).is_dir()), None)
    train = _class_dirs(train_root)
    if not train:
        raise HwnasError(f"{spec}: no class folders with images in {train_root} (expected "
                         f"<class>/<image> with suffixes {', '.join(IMAGE_SUFFIXES[:4])}...)")
    names = tuple(train)
    files = [f for c in names for f in train[c]]
    labels = [i for i, c in enumerate(names) for _ in train[c]]
    if val_root is not None:
        val = _class_dirs(val_root)
        extra = sorted(set(val) - set(names))
        if extra:
            raise HwnasError(f"{spec}: {val_root.name}/ has classes not in {train_root.name}/: "
                             f"{', '.join(extra[:5])}")
        vfiles = [f for c in val for f in val[c]]
        vlabels = [names.index(c) for c in val for _ in val[c]]
    else:
        y = torch.tensor(labels)
        te = stratified_indices(y, max(len(names), round(0.2 * len(labels))), seed)
        mask = torch.zeros(len(labels), dtype=torch.bool)
        mask[te] = True
        vfiles = [f for f, m in zip(files, mask.tolist(), strict=True) if m]
        vlabels = [v for v, m in zip(labels, mask.tolist(), strict=True) if m]
        files = [f for f, m in zip(files, mask.tolist(), strict=True) if not m]
        labels = [v for v, m in zip(labels, mask.tolist(), strict=True) if not m]
    tx, native = _decode(files, resolution, spec)
    vx, _ = _decode(vfiles, resolution, spec)
    return _finish("imagefolder", len(names), tx, torch.tensor(labels), vx, torch.tensor(vlabels),
                   native=native, resolution=resolution, flip=True, shift=0.125, class_names=names)


def _decode(files: list[Path], resolution: int, spec: str) -> tuple[torch.Tensor, int]:
    """Decode to (N, 3, R, R) float in [0, 1]: shorter side to R, centre crop."""
    from PIL import Image, ImageOps, UnidentifiedImageError
    from tqdm import tqdm

    out = torch.empty(len(files), 3, resolution, resolution)
    sides = []
    for i, f in enumerate(tqdm(files, desc="decoding images", unit="img", leave=False,
                               disable=True if len(files) < 500 else None)):
        try:
            with Image.open(f) as im:
                im = im.convert("RGB")
                sides.append(min(im.size))
                im = ImageOps.fit(im, (resolution, resolution), Image.Resampling.BILINEAR)
                a = np.asarray(im, dtype=np.uint8)
        except (OSError, UnidentifiedImageError, ValueError) as e:
            raise HwnasError(f"{spec}: cannot decode {f} ({type(e).__name__})") from None
        out[i] = torch.from_numpy(a.copy()).permute(2, 0, 1).float().div_(255)
    return out, int(np.median(sides)) if sides else resolution


__all__ = ["Dataset", "EAGER_BYTES", "augment_batch", "load_cifar10", "load_dataset",
           "load_digits", "load_imagefolder", "read_cifar_batch", "resize", "stratified_indices"]
