"""Accuracy estimators behind one small interface: ``score(archs) -> list[float]`` (higher is
better), for the search to call on one or many Archs.

* :class:`ZeroCostProxy` -- the NASWOT score: no training, one forward pass of the freshly
  initialised network on a real minibatch;
* :class:`ShortTraining` -- a few epochs of the project's training recipe
  (:mod:`hwnas.train`) on the training split minus a held-out validation part; the score is
  the validation accuracy (the real test split stays unseen by the search);
* :class:`SupernetEstimator` -- the Arch as a subnet of a trained weight-sharing supernet
  (:mod:`hwnas.supernet`): inherited weights, BatchNorm statistics re-estimated on ~2,000
  training images, accuracy on the validation part the supernet never trained on.

Every Arch is first adapted to the dataset (its classes, 3 input channels) and, when the
estimator has a ``resolution``, to that resolution; with ``resolution=None`` each Arch is
scored at its own. Scores are cached per canonical string of the adapted Arch and the
estimator's settings, in memory and, with ``cache_path``, in a JSON file that several
processes can share (an exclusive lock around re-read + merge + atomic rewrite).

Build one with :func:`make_estimator` (``kind`` = ``zero-cost`` | ``train`` | ``supernet``, or
``table:FILE`` | ``predictor:FILE``: accuracy from measured results, :mod:`hwnas.accuracy_sources`).
Every estimator takes ``torch_device`` (``auto``/``cpu``/``cuda``/``mps``); a device other
than the CPU enters the settings (the CPU is left out, so older caches keep their keys).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from .arch import Arch
from .data import Dataset, load_dataset
from .errors import HwnasError
from .io import atomic_write_json
from .runs import SUPERNET_METRICS
from .train import Recipe, adapt_arch, resolve_torch_device, torch_threads, train_arch

log = logging.getLogger(__name__)

CACHE_FORMAT = "hwnas-accuracy-cache/1"
ANY_RESOLUTION_LOAD = 224  # with resolution=None, data is loaded for up to this size


@runtime_checkable
class AccuracyEstimator(Protocol):
    name: str

    def score(self, archs: Sequence[Arch]) -> list[float]:
        """One score per Arch, higher is better."""
        ...


# ---- the shared cache -----------------------------------------------------------------------------

class ScoreCache:
    """Scores by key in a JSON file (``{"format", "settings": {id: {...}}, "scores": {key:
    score}}``); ``None`` for an in-memory cache only. Writes hold an exclusive ``flock`` on
    ``<file>.lock``, re-read the file and merge before the atomic rewrite, so processes that
    share the file never drop each other's entries."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path is not None else None
        self.scores: dict[str, float] = {}
        self.settings: dict[str, Any] = {}
        self._mtime: float | None = None
        self.refresh()

    def refresh(self) -> None:
        """Merge in what other processes wrote since the last read."""
        if self.path is None or not self.path.is_file():
            return
        mtime = self.path.stat().st_mtime_ns
        if mtime == self._mtime:
            return
        d = self._read()
        self.scores.update(d["scores"])
        self.settings.update(d["settings"])
        self._mtime = mtime

    def _read(self) -> dict[str, Any]:
        try:
            d = json.loads(self.path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise HwnasError(f"{self.path}: not a readable accuracy cache "
                             f"({type(e).__name__}); delete it to start afresh") from None
        if (not isinstance(d, dict) or d.get("format") != CACHE_FORMAT
                or not isinstance(d.get("scores"), dict) or not isinstance(d.get("settings"), dict)
                or not all(isinstance(v, (int, float)) for v in d["scores"].values())):
            raise HwnasError(f"{self.path}: not an hwnas accuracy cache (expected format "
                             f"'{CACHE_FORMAT}'); delete it or choose another file")
        return d

    def get(self, key: str) -> float | None:
        v = self.scores.get(key)
        if v is None and self.path is not None:
            self.refresh()
            v = self.scores.get(key)
        return None if v is None else float(v)

    def put(self, entries: dict[str, float], settings: dict[str, Any]) -> None:
        self.scores.update(entries)
        self.settings.update(settings)
        if self.path is None:
            return
        with self._locked():
            d = self._read() if self.path.is_file() else {"scores": {}, "settings": {}}
            d["scores"].update(entries)
            d["settings"].update(settings)
            atomic_write_json(self.path, {"format": CACHE_FORMAT, "settings": d["settings"],
                                          "scores": d["scores"]})
            self.scores.update(d["scores"])
            self.settings.update(d["settings"])
            self._mtime = self.path.stat().st_mtime_ns

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                import fcntl
            except ImportError:  # not POSIX: the rename is still atomic, merges may race
                fcntl = None
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock


# ---- base ---------------------------------------------------------------------------------------------

class _CachedEstimator:
    """Adapts Archs to the data, looks scores up in the cache, computes the rest."""

    name = "base"

    def __init__(self, data: Dataset, data_spec: str, resolution: int | None, seed: int,
                 cache_path: str | Path | None, threads: int | None,
                 torch_device: str | torch.device = "cpu"):
        self.device = resolve_torch_device(torch_device)
        if resolution is not None and (isinstance(resolution, bool) or not isinstance(resolution, int)
                                       or resolution <= 0):
            raise HwnasError(f"estimator resolution must be a positive integer, got {resolution!r}")
        self.data, self.data_spec = data, data_spec
        self.resolution, self.seed, self.threads = resolution, seed, threads
        self.cache = ScoreCache(cache_path)
        self.n_computed = 0  # scores computed (not taken from the cache) by this object
        self.seconds = 0.0  # time spent computing them

    @property
    def classes(self) -> int:
        """The dataset's number of classes (every Arch is adapted to it)."""
        return self.data.classes

    def settings(self) -> dict[str, Any]:
        """Everything besides the Arch that changes a score (the cache key)."""
        d = {"estimator": self.name, "data": self.data_spec, "resolution": self.resolution,
             "seed": self.seed}
        if self.device.type != "cpu":
            d["torch_device"] = str(self.device)
        return d

    def settings_id(self) -> str:
        text = json.dumps(self.settings(), sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    def adapt(self, arch: Arch) -> Arch:
        return adapt_arch(arch, self.data, self.resolution)

    def key(self, arch: Arch) -> str:
        return f"{self.settings_id()}:{self.adapt(arch).to_string()}"

    def score(self, archs: Sequence[Arch]) -> list[float]:
        sid, out, new = self.settings_id(), [], {}
        for arch in archs:
            a = self.adapt(arch)
            key = f"{sid}:{a.to_string()}"
            v = new.get(key, self.cache.get(key))
            if v is None:
                t0 = time.perf_counter()
                with torch_threads(self.threads):
                    v = float(self._compute(a))
                self.seconds += time.perf_counter() - t0
                self.n_computed += 1
                new[key] = v
                if self.cache.path is not None:  # persist as we go: long runs may be cut
                    self.cache.put({key: v}, {sid: self.settings()})
            out.append(v)
        if new and self.cache.path is None:
            self.cache.put(new, {sid: self.settings()})
        return out

    def _compute(self, arch: Arch) -> float:
        raise NotImplementedError


# ---- NASWOT ----------------------------------------------------------------------------------------------

class ZeroCostProxy(_CachedEstimator):
    """NASWOT: Mellor, Turner, Storkey, Crowley, "Neural Architecture Search without
    Training", ICML 2021 (arXiv:2006.04647).

    The freshly initialised network (``torch.manual_seed(seed)``; BatchNorm in training mode,
    as in the paper's code) sees one real minibatch of ``batch_size`` training images (the
    same, class-balanced images for every Arch). Every activation unit gives each image a
    binary code (active: output > 0; for ReLU6 and hard-swish too); the kernel
    ``K[i, j] = number of units on which images i and j agree`` (= N_A - Hamming distance)
    summed over all activation layers; the score is ``log |det K|``. Networks whose units
    separate the images into many distinct linear regions score higher, and the score
    correlates with trained accuracy. A singular K (two images coded alike) gives -inf.
    """

    name = "naswot"

    def __init__(self, data: Dataset, data_spec: str, resolution: int | None = None,
                 seed: int = 0, cache_path: str | Path | None = None, batch_size: int = 64,
                 threads: int | None = None, torch_device: str | torch.device = "cpu"):
        super().__init__(data, data_spec, resolution, seed, cache_path, threads, torch_device)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
            raise HwnasError(f"zero-cost batch_size must be an integer >= 2, got {batch_size!r}")
        self.batch_size = batch_size
        self._batches: dict[int, torch.Tensor] = {}

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "batch_size": self.batch_size}

    def minibatch(self, resolution: int) -> torch.Tensor:
        """The fixed real minibatch at ``resolution`` (loaded once, re-used for every Arch)."""
        if resolution not in self._batches:
            self._batches[resolution] = self.data.minibatch(self.batch_size, self.seed, resolution)
        return self._batches[resolution]

    @torch.inference_mode()
    def _compute(self, arch: Arch) -> float:
        from .model import build

        torch.manual_seed(self.seed)
        model = build(arch).train().to(self.device, memory_format=torch.channels_last)  # 2x on CPU
        x = self.minibatch(arch.resolution).to(self.device).contiguous(memory_format=torch.channels_last)
        n = len(x)
        k = torch.zeros(n, n, dtype=torch.float64)  # on the CPU (MPS has no float64)

        def hook(_m: nn.Module, _inp: Any, out: torch.Tensor) -> None:
            # units in memory order (a view for NHWC maps; the order does not matter)
            c = (out > 0).permute(0, 2, 3, 1).reshape(len(out), -1).to(torch.float32)
            if c.device.type == "cpu":
                s = c.sum(1, dtype=torch.float64)
                agree1 = (c @ c.T).to(torch.float64)  # both active
            else:  # integer counts below 2^24: exact in float32
                s = c.sum(1).to("cpu", torch.float64)
                agree1 = (c @ c.T).to("cpu", torch.float64)
            # both inactive = D - s_i - s_j + agree1
            k.add_(2 * agree1 - s[:, None] - s[None, :] + c.shape[1])

        acts = (nn.ReLU, nn.ReLU6, nn.Hardswish)
        handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, acts)]
        try:
            model(x)
        finally:
            for h in handles:
                h.remove()
        sign, logdet = torch.linalg.slogdet(k)
        return float(logdet) if sign > 0 else -math.inf


# ---- short training ----------------------------------------------------------------------------------

class ShortTraining(_CachedEstimator):
    """A few epochs of the project's recipe (:class:`hwnas.train.Recipe`) on a seeded
    subset of the training split minus a stratified ``val_fraction`` held out; the score is
    the accuracy (0..1) on that held-out part."""

    name = "short-train"

    def __init__(self, data: Dataset, data_spec: str, resolution: int | None = None,
                 seed: int = 0, cache_path: str | Path | None = None, epochs: int = 3,
                 subset: int | None = 5000, val_fraction: float = 0.2,
                 recipe: Recipe | None = None, threads: int | None = None,
                 progress: bool = False, torch_device: str | torch.device = "cpu"):
        super().__init__(data, data_spec, resolution, seed, cache_path, threads, torch_device)
        if not (isinstance(val_fraction, (int, float)) and 0 < val_fraction < 1):
            raise HwnasError(f"train val_fraction must be in (0, 1), got {val_fraction!r}")
        base = recipe or Recipe()
        self.recipe = Recipe.from_dict({**base.to_dict(), "epochs": epochs, "subset": subset,
                                        "threads": None})
        self.val_fraction = val_fraction
        self.progress = progress
        self.val_data = data.split_validation(val_fraction, seed)

    def settings(self) -> dict[str, Any]:
        r = self.recipe.to_dict()
        r.pop("threads")
        return {**super().settings(), "val_fraction": self.val_fraction, "recipe": r}

    def _compute(self, arch: Arch) -> float:
        return train_arch(arch, self.val_data, self.recipe, self.seed,
                          progress=self.progress, device=self.device).test_acc


# ---- weight sharing ----------------------------------------------------------------------------------------

class SupernetEstimator(_CachedEstimator):
    """The Arch as a subnet of a trained supernet (:mod:`hwnas.supernet`, Once-for-All /
    BigNAS): it inherits the supernet's weights, its BatchNorm statistics are re-estimated on
    ``bn_images`` training images (reset, cumulative average, train-mode forwards without
    gradients), and the score is its accuracy (0..1) on the validation part that
    ``hwnas supernet train`` held out of the training split (same fraction and seed; the
    dataset's test split is never used), or on a stratified ``val_images`` of it (default
    2,000: within about 1 pp of the whole carve, 4x cheaper; None scores on all of it).

    The supernet is ``supernet`` (an id in runs/supernets/ or a folder), else the newest
    complete one of ``space`` (name, YAML path or SearchSpace) on ``data_spec`` at
    ``resolution``. Without one, a supernet of another space, data or resolution, or an
    unreadable one, an HwnasError says in one line what to do (nothing is written)."""

    name = "supernet"

    def __init__(self, data: Dataset, data_spec: str, resolution: int | None = None,
                 seed: int = 0, cache_path: str | Path | None = None, space: Any = None,
                 supernet: str | Path | None = None, bn_images: int = 2000,
                 val_images: int | None = 2000, threads: int | None = None,
                 torch_device: str | torch.device = "cpu", metric: str = "accuracy"):
        from .space import SearchSpace, load_space
        from .supernet import find_supernet, load_supernet

        if metric not in SUPERNET_METRICS:
            raise HwnasError(f"--supernet-metric must be one of {', '.join(SUPERNET_METRICS)}, "
                             f"got {metric!r}")
        self.metric = metric

        super().__init__(data, data_spec, resolution, seed, cache_path, threads, torch_device)
        if resolution is None:
            raise HwnasError("the supernet estimator needs a resolution (-r): a supernet is "
                             "trained at one")
        if space is None:
            raise HwnasError("the supernet estimator needs the search space (--space)")
        for k, v in (("bn_images", bn_images), ("val_images", val_images)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise HwnasError(f"supernet {k} must be a positive integer, got {v!r}")
        self.space = space if isinstance(space, SearchSpace) else load_space(space)
        self.bn_images, self.val_images = bn_images, val_images
        self.store = find_supernet(self.space, data_spec, resolution, supernet)
        self.net, self.meta = load_supernet(self.store, self.device)
        carve = self.meta["validation"]
        if self.meta["seed"] != seed:  # digits' train/test split depends on the seed
            self.data = load_dataset(data_spec, resolution, self.meta["seed"])
        self.val_data = self.data.split_validation(carve["fraction"], carve["seed"])
        if len(self.val_data.test_y) != carve["val_images"]:
            raise HwnasError(f"{data_spec}: {len(self.val_data.test_y)} validation images, but "
                             f"supernet {self.store.id} recorded {carve['val_images']} (the data "
                             "changed since it was trained)")

    def settings(self) -> dict[str, Any]:
        d = {**super().settings(), "supernet": self.store.id, "bn_images": self.bn_images,
             "val_images": self.val_images, "torch_device": str(self.device)}
        if self.metric != "accuracy":  # absent for accuracy: earlier caches stay valid
            d["metric"] = self.metric
        return d

    def _compute(self, arch: Arch) -> float:
        from .supernet import subnet_accuracy

        return subnet_accuracy(self.net, arch, self.val_data, self.bn_images, self.seed,
                               arch.resolution, self.val_images, self.metric)


# ---- factory ---------------------------------------------------------------------------------------------

ESTIMATORS: dict[str, type[_CachedEstimator]] = {"zero-cost": ZeroCostProxy, "train": ShortTraining,
                                                 "supernet": SupernetEstimator}


def make_estimator(kind: str, data_spec: str, resolution: int | None, seed: int = 0,
                   cache_path: str | Path | None = None, **kw: Any) -> AccuracyEstimator:
    """``kind`` "table:FILE" or "predictor:FILE" (measured results,
    :mod:`hwnas.accuracy_sources`; option space), "zero-cost" (NASWOT; options batch_size, threads), "train" (short training;
    options epochs, subset, val_fraction, recipe, threads, progress) or "supernet" (options
    space (required), supernet, bn_images, val_images, threads, metric); every kind takes
    torch_device. The dataset is loaded now, so a bad ``data_spec`` fails here."""
    from .accuracy_sources.predictor import is_source, make_source

    if is_source(kind):  # measured results: no data, no cache (hwnas.accuracy_sources)
        return make_source(kind, space=kw.get("space"))
    cls = ESTIMATORS.get(kind)
    if cls is None:
        raise HwnasError(f"unknown accuracy estimator '{kind}' (known: {', '.join(ESTIMATORS)}, "
                         "table:FILE, predictor:FILE)")
    allowed = [p for p in inspect.signature(cls.__init__).parameters
               if p not in ("self", "data", "data_spec", "resolution", "seed", "cache_path")]
    for k in kw:
        if k not in allowed:
            raise HwnasError(f"estimator '{kind}': unknown option '{k}' (allowed: {', '.join(allowed)})")
    if kind == "supernet" and resolution is None:  # before loading the data at 224 px
        raise HwnasError("the supernet estimator needs a resolution (-r): a supernet is trained at one")
    data = load_dataset(data_spec, resolution or ANY_RESOLUTION_LOAD, seed)
    return cls(data, data_spec, resolution, seed=seed, cache_path=cache_path, **kw)


__all__ = ["ESTIMATORS", "AccuracyEstimator", "ScoreCache", "ShortTraining", "SupernetEstimator",
           "ZeroCostProxy", "make_estimator"]
