"""The project's training recipe: one function used by short-training estimates and retraining.

SGD with Nesterov momentum (or AdamW), weight decay on conv/linear weights only, a per-step
cosine learning-rate schedule with optional linear warmup, label smoothing, the standard
augmentation (random translation by padding + crop; horizontal flips for natural images,
never for digits), BatchNorm statistics re-estimated after training (see
:func:`recalibrate_bn`), fixed seeds: ``torch.manual_seed(seed)`` for the initial weights and one
``torch.Generator`` for shuffling and augmentation, so a seed gives the same run (on the
same machine and thread count).

``arch.classes`` must equal ``data.classes`` (an :class:`~hwnas.errors.HwnasError`
otherwise); :func:`adapt_arch` makes an Arch fit a dataset. The model trains and is
evaluated at ``arch.resolution`` (batches are resized as needed).

Checkpoints (``train_arch(..., checkpoint=PATH)``) are written atomically after every epoch
with ``torch.save`` as a dict of state dicts and plain values; they are read only with
``torch.load(weights_only=True)``. Running again with the same checkpoint resumes (and
continues bit-for-bit, RNG state included); a checkpoint of another arch, recipe, seed or
dataset, or a corrupt / foreign file, is refused with one line.

Devices: ``train_arch``, ``recalibrate_bn`` and ``evaluate`` take a torch ``device`` (default:
the CPU, resp. the model's own device); :func:`resolve_torch_device` turns the CLI's
``--torch-device auto|cpu|cuda|mps`` into one. Shuffling and augmentation stay on the CPU
generator, so a seed draws the same batches on every device.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import pickle
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .arch import Arch, validate
from .data import Dataset
from .errors import HwnasError
from .io import atomic_write_bytes
from .model import Net, build

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "hwnas-train/1"
OPTIMIZERS = ("sgd", "adamw")
#: the peak learning rate of a recipe that names none, per optimizer
DEFAULT_LR = {"sgd": 0.05, "adamw": 0.002}
#: the weight decay of a recipe that names none, per optimizer (AdamW's decoupled decay
#: wants a far larger coefficient than SGD's L2 term)
DEFAULT_WEIGHT_DECAY = {"sgd": 4e-5, "adamw": 0.05}
# NHWC: 2-3x faster depthwise convolutions (forward and backward) with oneDNN on x86 CPUs
CHANNELS_LAST = torch.channels_last
# recipe fields that do not change the result (threads may change float rounding only)
_RESUME_FREE = {"threads"}
TORCH_DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass
class Recipe:
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float | None = None  # None: the optimizer's (default_lr)
    momentum: float = 0.9
    weight_decay: float | None = None  # None: the optimizer's (DEFAULT_WEIGHT_DECAY)
    label_smoothing: float = 0.1
    augment: bool = True
    subset: int | None = None  # train on a stratified seeded subset of this many images
    threads: int | None = None  # torch intra-op threads while training (None: default_threads())
    warmup_epochs: float = 0.0  # linear warmup before the cosine decay
    bn_recalibration: int = 2000  # images to re-estimate BatchNorm statistics with (0: off)

    def __post_init__(self) -> None:
        def bad(name: str, want: str) -> HwnasError:
            return HwnasError(f"recipe.{name}: {want}, got {getattr(self, name)!r}")

        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "epochs" else 1):
                raise bad(name, "must be a positive integer" if name == "batch_size"
                          else "must be an integer >= 0")
        if self.optimizer not in OPTIMIZERS:
            raise bad("optimizer", f"must be one of {', '.join(OPTIMIZERS)}")
        if self.lr is None:
            self.lr = default_lr(self.optimizer)
        if self.weight_decay is None:
            self.weight_decay = DEFAULT_WEIGHT_DECAY[self.optimizer]
        for name in ("lr", "momentum", "weight_decay", "label_smoothing", "warmup_epochs"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise bad(name, "must be a number >= 0")
        if self.lr <= 0:
            raise bad("lr", "must be > 0")
        if self.label_smoothing >= 1:
            raise bad("label_smoothing", "must be in [0, 1)")
        v = self.bn_recalibration
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise bad("bn_recalibration", "must be an integer >= 0")
        for name in ("subset", "threads"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise bad(name, "must be a positive integer or None")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Recipe:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise HwnasError(f"recipe: unknown key '{unknown[0]}' (allowed: {', '.join(sorted(known))})")
        return cls(**d)


def default_lr(optimizer: str) -> float:
    """The peak learning rate of ``optimizer`` when a recipe names none."""
    return DEFAULT_LR[optimizer]


@dataclass
class TrainResult:
    test_acc: float  # on data's test split, at arch.resolution
    train_loss: float  # mean loss of the last epoch
    epochs: int
    seconds: float  # wall time of this call (not of earlier, resumed runs)
    model: Net  # trained, in eval mode
    arch: Arch
    checkpoint: Path | None = None
    resumed_from: int = 0  # epochs already done when this call started
    history: list[dict[str, float]] = field(default_factory=list)  # per epoch: loss, lr
    device: str = "cpu"  # the torch device it trained on


def adapt_arch(arch: Arch, data: Dataset, resolution: int | None = None) -> Arch:
    """``arch`` with the dataset's classes (and input channels) and, if given, ``resolution``."""
    a = replace(arch, classes=data.classes, channels=data.channels,
                resolution=resolution or arch.resolution)
    validate(a, "arch")
    return a


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """Torch intra-op threads for training and scoring when none are given: half the usable
    cores, at least 1. Measured on a 2-core VM (README, accuracy estimators): one epoch of
    mbv2-0.35@32 on digits took 11 s with 1 thread and 42-102 s with 2 (torch's own default
    there), which oversubscribes the cores with the data pipeline and other processes."""
    return max(1, usable_cores() // 2)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Use ``n`` torch intra-op threads inside the block (None: :func:`default_threads`)."""
    n = n or default_threads()
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def resolve_torch_device(spec: str | torch.device | None = "auto") -> torch.device:
    """``auto`` (or None): CUDA if available, then Apple's MPS, then the CPU; ``cpu``,
    ``cuda``, ``cuda:N`` or ``mps`` as asked, or one HwnasError line if this machine or this
    torch build does not have it."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    name = (spec or "auto").strip().lower()
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if has_mps else "cpu")
    kind, _, index = name.partition(":")
    if kind not in TORCH_DEVICES[1:] or (index and (kind != "cuda" or not index.isdigit())):
        raise HwnasError(f"--torch-device: '{spec}' is not one of {', '.join(TORCH_DEVICES)} "
                         "(or cuda:N)")
    if kind == "cuda":
        if torch.version.cuda is None:
            raise HwnasError(f"--torch-device {name}: this torch build ({torch.__version__}) has no "
                             "CUDA support; use --torch-device cpu (or auto)")
        if not torch.cuda.is_available():
            raise HwnasError(f"--torch-device {name}: no CUDA GPU is available on this machine; "
                             "use --torch-device cpu (or auto)")
        if index and int(index) >= torch.cuda.device_count():
            raise HwnasError(f"--torch-device {name}: this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s)")
    if kind == "mps" and not has_mps:
        raise HwnasError("--torch-device mps: Apple's MPS backend is not available on this "
                         "machine; use --torch-device cpu (or auto)")
    return torch.device(name)


def autocast(dev: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (tensor cores; no loss scaling needed, unlike fp16), nothing
    elsewhere: CPU and MPS keep fp32, so the CPU results stay bit-for-bit reproducible."""
    if dev.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


#: the most bytes of images moved to a CUDA device at once (the rest of its memory trains)
DEVICE_DATA_BYTES = 4 << 30


def on_device(data: Dataset, dev: torch.device) -> Dataset:
    """``data`` with its images and labels held on CUDA device ``dev`` when they fit
    (:data:`DEVICE_DATA_BYTES`): batches are then cut, resized and augmented on the GPU with
    no per-batch host copy (the shuffling and augmentation draws stay on the CPU generator,
    so a seed gives the same batches everywhere). Elsewhere, ``data`` as it is."""
    if dev.type != "cuda" or data.train_x.device == dev:
        return data
    size = sum(t.numel() * t.element_size() for t in (data.train_x, data.test_x))
    if size > DEVICE_DATA_BYTES:
        log.info("%s: %.1f GiB of images stay on the host (more than %.0f GiB)", data.name,
                 size / 2**30, DEVICE_DATA_BYTES / 2**30)
        return data
    return replace(data, train_x=data.train_x.to(dev), train_y=data.train_y.to(dev),
                   test_x=data.test_x.to(dev), test_y=data.test_y.to(dev))


def _model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def make_optimizer(model: nn.Module, r: Recipe) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]  # BN and biases
    groups = [{"params": decay, "weight_decay": r.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if r.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=r.lr, momentum=r.momentum, nesterov=r.momentum > 0)
    return torch.optim.AdamW(groups, lr=r.lr)


def lr_schedule(r: Recipe, steps_per_epoch: int) -> Callable[[int], float]:
    total = max(1, r.epochs * steps_per_epoch)
    warm = round(r.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(1, total - warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return factor


def train_arch(arch: Arch, data: Dataset, recipe: Recipe, seed: int,
               checkpoint: Path | None = None, progress: bool = True,
               on_epoch: Callable[[int, float], None] | None = None,
               device: str | torch.device = "cpu", init: dict[str, torch.Tensor] | None = None,
               teacher: nn.Module | None = None) -> TrainResult:
    """Train ``arch`` on ``data`` with ``recipe`` (from scratch, or from the weights ``init``,
    a state dict of ``build(arch)``: fine-tuning); evaluate on the test split.

    ``teacher`` (a module on ``device``, in eval mode): the loss is then the soft
    cross-entropy to the teacher's predictions on the same augmented batch (distillation, as
    the supernet's students learn) instead of the labels' cross-entropy.
    ``on_epoch(epoch, train_loss)`` is called after each epoch (and its checkpoint).
    ``device``: a torch device (or a spec for :func:`resolve_torch_device`). On CUDA the
    forward passes run under bf16 autocast (:func:`autocast`) and the data is moved to the
    GPU once (:func:`on_device`).
    """
    if arch.classes != data.classes:
        raise HwnasError(f"arch has {arch.classes} classes but dataset '{data.name}' has "
                         f"{data.classes} (adapt it with hwnas.train.adapt_arch)")
    if arch.channels != data.channels:
        raise HwnasError(f"arch takes {arch.channels} input channels but dataset '{data.name}' "
                         f"has {data.channels}")
    from tqdm import tqdm

    dev = resolve_torch_device(device)
    t0 = time.perf_counter()
    train = data.subset(recipe.subset, seed)
    n = len(train.train_y)
    drop_last = n >= recipe.batch_size  # no trailing batch of 1 (BatchNorm on 1x1 maps)
    steps = n // recipe.batch_size if drop_last else 1
    with torch_threads(recipe.threads):
        torch.manual_seed(seed)
        model = build(arch)
        if init is not None:
            model.load_state_dict(init)
        model = model.to(dev, memory_format=CHANNELS_LAST)
        train = on_device(train, dev)
        opt = make_optimizer(model, recipe)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_schedule(recipe, steps))
        gen = torch.Generator().manual_seed(seed)
        loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
        start, loss_avg, history = 0, float("nan"), []
        if checkpoint is not None and Path(checkpoint).exists():
            ck = load_checkpoint(checkpoint)
            _check_compatible(ck, checkpoint, arch, recipe, seed, data)
            restore_state(ck, f"{checkpoint}: checkpoint does not fit this model", model, opt,
                          sched, {"rng": gen})
            start, loss_avg, history = int(ck["epoch"]), float(ck["train_loss"]), list(ck["history"])
            log.info("%s: resuming after epoch %d of %d", checkpoint, start, recipe.epochs)
        bar = tqdm(total=(recipe.epochs - start) * steps, desc=f"train {data.name}", unit="step",
                   disable=None if progress and start < recipe.epochs else True,
                   leave=False)
        for epoch in range(start, recipe.epochs):
            model.train()
            total, count = 0.0, 0
            for xb, yb in train.batches("train", recipe.batch_size, resolution=arch.resolution,
                                        shuffle=True, generator=gen, augment=recipe.augment,
                                        drop_last=drop_last):
                xb, yb = xb.to(dev).contiguous(memory_format=CHANNELS_LAST), yb.to(dev)
                with autocast(dev):
                    out = model(xb)
                    if teacher is None:
                        loss = loss_fn(out, yb)
                    else:
                        with torch.no_grad():
                            soft = teacher(xb).float().softmax(1)
                        loss = -(soft * F.log_softmax(out.float(), 1)).sum(1).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += loss.item() * len(yb)
                count += len(yb)
                bar.update(1)
            loss_avg = total / max(1, count)
            if not math.isfinite(loss_avg):
                bar.close()
                raise HwnasError(f"training diverged (loss {loss_avg}) in epoch {epoch + 1}; "
                                 f"lower the learning rate (now {recipe.lr})")
            history.append({"epoch": epoch + 1, "train_loss": loss_avg,
                            "lr": opt.param_groups[0]["lr"]})
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss_avg:.3f}")
            if checkpoint is not None:
                save_checkpoint(checkpoint, {
                    "format": CHECKPOINT_FORMAT, "arch": arch.to_string(), "data": data.name,
                    "seed": seed, "recipe": recipe.to_dict(), "epoch": epoch + 1,
                    "train_loss": loss_avg, "history": history, "model": model.state_dict(),
                    "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "rng": gen.get_state(), "torch_device": str(dev),
                })
            if on_epoch is not None:
                on_epoch(epoch + 1, loss_avg)
        bar.close()
        if recipe.bn_recalibration:
            # also when resuming a finished checkpoint: a kill between the last epoch's save and
            # the save below left weights without it; recalibrating is idempotent (the statistics
            # are recomputed from the same images with the same weights)
            recalibrate_bn(model, train, recipe.bn_recalibration, arch.resolution, seed,
                           progress=progress)
            if checkpoint is not None and start < recipe.epochs:  # the final weights, as evaluated
                ck = load_checkpoint(checkpoint)
                ck["model"] = model.state_dict()
                save_checkpoint(checkpoint, ck)
        acc = evaluate(model, data, progress=progress)
    return TrainResult(test_acc=acc, train_loss=loss_avg, epochs=recipe.epochs,
                       seconds=time.perf_counter() - t0, model=model, arch=arch,
                       checkpoint=Path(checkpoint) if checkpoint is not None else None,
                       resumed_from=start, history=history, device=str(dev))


@torch.no_grad()
def restore_state(ck: dict[str, Any], refusal: str, model: nn.Module,
                  opt: torch.optim.Optimizer, sched: Any,
                  generators: dict[str, torch.Generator]) -> None:
    """Load a checkpoint's model, optimizer, scheduler and random generators (``generators``:
    checkpoint key -> generator); one HwnasError line (``refusal`` + the reason) if it does not
    fit. Shared by single-network and supernet training."""
    try:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        for key, gen in generators.items():
            gen.set_state(ck[key])
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        raise HwnasError(f"{refusal} ({str(e).splitlines()[0][:160]})") from None


def recalibrate_bn(model: nn.Module, data: Dataset, images: int, resolution: int,
                   seed: int = 0, batch_size: int = 256,
                   device: str | torch.device | None = None, progress: bool = False) -> None:
    """Re-estimate every BatchNorm's running mean/var as an exact average over ``images``
    un-augmented training images (seeded, stratified), as Once-for-All does for its
    sub-networks (Cai et al., ICLR 2020). After a short training run the momentum-averaged
    statistics lag far behind the weights; without this, few-epoch test accuracy is
    close to chance even when the training loss is low. ``device``: where the images go
    (default: the model's device); ``progress``: a progress bar over its batches."""
    from .data import stratified_indices

    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    dev = torch.device(device) if device is not None else _model_device(model)
    idx = stratified_indices(data.train_y, min(images, len(data.train_y)), seed)
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average = exact mean over the batches
    model.train()
    bar = _bar(-(-len(idx) // batch_size), "BN recalibration", progress)
    try:
        for xb, _ in data.batches("train", batch_size, resolution=resolution, indices=idx):
            if len(xb) > 1:
                with autocast(dev):
                    model(xb.to(dev).contiguous(memory_format=CHANNELS_LAST))
            bar.update(1)
    finally:
        bar.close()
        for m, mom in zip(bns, saved, strict=True):
            m.momentum = mom
        model.eval()


@torch.no_grad()
def evaluate(model: nn.Module, data: Dataset, resolution: int | None = None,
             batch_size: int = 256, split: str = "test",
             device: str | torch.device | None = None, metric: str = "accuracy",
             progress: bool = False) -> float:
    """Top-1 accuracy (0..1) of ``model`` on a split, at ``resolution`` (default: the
    model's arch resolution, else the dataset's); images go to ``device`` (default: the
    model's). ``metric="loglik"``: the mean log-probability of the true class instead
    (-cross-entropy, <= 0). ``progress``: a progress bar over its batches."""
    arch = getattr(model, "arch", None)
    res = resolution or (arch.resolution if arch is not None else None) or data.resolution
    dev = torch.device(device) if device is not None else _model_device(model)
    model.eval()
    score, total = 0.0, 0
    bar = _bar(-(-len(data.split(split)[1]) // batch_size), split, progress)
    for xb, yb in data.batches(split, batch_size, resolution=res):
        bar.update(1)
        with autocast(dev):
            out = model(xb.to(dev).contiguous(memory_format=CHANNELS_LAST)).float().cpu()
        yb = yb.cpu()
        score += ((out.argmax(1) == yb).sum().item() if metric == "accuracy" else
                  -F.cross_entropy(out, yb, reduction="sum").item())
        total += len(yb)
    bar.close()
    return score / max(1, total)


def _bar(total: int, desc: str, progress: bool):
    """A progress bar (stderr, gone when done) over ``total`` batches; off without
    ``progress`` or where stderr is not a terminal."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="batch", disable=None if progress else True,
                leave=False)


# ---- checkpoints ----------------------------------------------------------------------------------

def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    buf = io.BytesIO()
    torch.save(state, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read an hwnas training checkpoint with ``torch.load(weights_only=True)``."""
    p = Path(path)
    if not p.is_file():
        raise HwnasError(f"{p}: no such checkpoint")
    if not zipfile.is_zipfile(p):
        raise HwnasError(f"{p}: not a torch checkpoint (corrupt, truncated or another kind of file)")
    try:
        ck = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # what weights_only refuses: arbitrary Python objects
        raise HwnasError(f"{p}: refused: holds Python objects that torch.load(weights_only=True) "
                         "does not load (hwnas checkpoints hold only state dicts)") from None
    except Exception as e:  # corrupt zip members, truncated tensors...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise HwnasError(f"{p}: not a readable checkpoint ({first[:160]})") from None
    need = {"format", "arch", "model", "epoch", "recipe"}
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT or not need <= set(ck):
        raise HwnasError(f"{p}: not an hwnas training checkpoint (expected format "
                         f"'{CHECKPOINT_FORMAT}')")
    return ck


def _check_compatible(ck: dict, path: Path, arch: Arch, recipe: Recipe, seed: int,
                      data: Dataset) -> None:
    if ck["arch"] != arch.to_string():
        raise HwnasError(f"{path}: checkpoint is of another arch: it holds {ck['arch']}, "
                         f"this run trains {arch.to_string()}")
    mine = recipe.to_dict()
    for k, v in ck["recipe"].items():
        if k not in _RESUME_FREE and mine.get(k) != v:
            raise HwnasError(f"{path}: checkpoint was trained with {k}={v!r}, this run has "
                             f"{k}={mine.get(k)!r} (use another checkpoint file)")
    if ck.get("seed") != seed or ck.get("data") != data.name:
        raise HwnasError(f"{path}: checkpoint was trained with seed {ck.get('seed')} on "
                         f"'{ck.get('data')}', this run: seed {seed} on '{data.name}'")


def load_trained(path: str | Path) -> tuple[Arch, Net, dict[str, Any]]:
    """(arch, model in eval mode with the trained weights, checkpoint dict) from a checkpoint."""
    ck = load_checkpoint(path)
    try:
        arch = Arch.from_string(ck["arch"])
        model = build(arch)
        model.load_state_dict(ck["model"])
    except (HwnasError, RuntimeError, TypeError) as e:
        raise HwnasError(f"{path}: checkpoint weights do not match its arch "
                         f"({str(e).splitlines()[0][:120]})") from None
    model.eval()
    return arch, model, ck


__all__ = ["CHECKPOINT_FORMAT", "DEFAULT_LR", "DEFAULT_WEIGHT_DECAY", "OPTIMIZERS", "TORCH_DEVICES", "Recipe", "TrainResult",
           "adapt_arch", "default_lr",
           "autocast", "default_threads", "evaluate", "load_checkpoint", "load_trained", "lr_schedule",
           "make_optimizer", "on_device", "recalibrate_bn", "restore_state",
           "resolve_torch_device", "save_checkpoint", "torch_threads", "train_arch",
           "usable_cores"]
