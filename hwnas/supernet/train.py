"""Training a supernet: the sandwich rule with in-place distillation (BigNAS, AttentiveNAS).

Each step, on one batch (after AttentiveNAS's ``train_epoch`` in facebookresearch/AttentiveNAS
train_attentive_nas.py, and Yu et al., "BigNAS", ECCV 2020):

1. the **largest** subnet learns from the labels (cross-entropy with label smoothing);
2. ``random_subnets`` **random** subnets and the **smallest** one learn from the largest's
   detached soft predictions (soft cross-entropy, i.e. KL up to a constant: in-place
   distillation);
3. the gradients of all of them are summed, and the optimizer takes one step.

Data: the TRAINING part of ``data.split_validation(val_fraction, seed)`` only (optionally a
stratified ``subset`` of it); the validation part is what the ``supernet`` accuracy estimator
scores on, and the dataset's test split is never seen. Batches, augmentation, schedule and
optimizer are those of :mod:`hwnas.train`. A checkpoint is written atomically after every
epoch (model, optimizer, scheduler, both RNG states), and the same call resumes from it and
continues bit for bit (same machine and thread count).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..arch import Arch
from ..data import Dataset
from ..errors import HwnasError
from ..runs import SUPERNET_METRICS
from ..space import SearchSpace
from ..train import (
    CHANNELS_LAST,
    Recipe,
    evaluate,
    lr_schedule,
    make_optimizer,
    recalibrate_bn,
    resolve_torch_device,
    restore_state,
    torch_threads,
)
from .net import SuperNet
from .store import (
    META_FORMAT,
    Store,
    check_space,
    space_content,
    space_definition,
    supernet_id,
    supernets_dir,
    versions,
)

log = logging.getLogger(__name__)


@dataclass
class SupernetRecipe(Recipe):
    """:class:`hwnas.train.Recipe` plus the supernet's own settings.

    The learning rate defaults to 0.02, not the single network's 0.05: each step sums the
    gradients of 2 + ``random_subnets`` subnets. With 0.05 the mobilenetv2 supernet
    diverged on digits at 32 px (largest subnet's loss 3.4 -> 7.6 in epoch 2); with 0.02
    it trained (largest 97 %, smallest 93 % validation accuracy after 10 epochs)."""

    lr: float = 0.02
    random_subnets: int = 2  # per step, besides the largest and the smallest
    kernel_transform: bool = False  # Once-for-All's kernel transform matrices (else centre crop)
    val_fraction: float = 0.2  # held out of the training split for the estimator

    def __post_init__(self) -> None:
        super().__post_init__()
        v = self.random_subnets
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise HwnasError(f"recipe.random_subnets: must be an integer >= 0, got {v!r}")
        if not isinstance(self.kernel_transform, bool):
            raise HwnasError(f"recipe.kernel_transform: must be true or false, got "
                             f"{self.kernel_transform!r}")
        v = self.val_fraction
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
            raise HwnasError(f"recipe.val_fraction: must be in (0, 1), got {v!r}")

    def id_dict(self) -> dict[str, Any]:
        """The recipe as it enters the supernet id (the thread count does not)."""
        d = self.to_dict()
        d.pop("threads")
        return d


@dataclass
class SupernetResult:
    store: Store
    meta: dict[str, Any]
    epochs: int
    resumed_from: int  # epochs already done when this call started
    seconds: float  # wall time of this call
    train_loss: float  # the largest subnet's mean loss in the last epoch
    rank: int = 0  # this process's rank under torchrun (only rank 0's meta is complete)


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -sum p_teacher log p_student (AttentiveNAS's CrossEntropyLossSoft)."""
    return -(target_probs * F.log_softmax(logits, 1)).sum(1).mean()


def training_part(data: Dataset, recipe: SupernetRecipe, seed: int) -> tuple[Dataset, Dataset]:
    """(the images the supernet trains on, the validation carve): both from the training split."""
    val = data.split_validation(recipe.val_fraction, seed)
    return val.subset(recipe.subset, seed), val


@torch.no_grad()
def subnet_accuracy(net: SuperNet, arch: Arch, val: Dataset, bn_images: int, seed: int,
                    resolution: int, val_images: int | None = None,
                    metric: str = "accuracy") -> float:
    """Accuracy (``metric`` "accuracy") or mean log-likelihood ("loglik", <= 0) of subnet
    ``arch`` on the validation part of ``val`` (its test split) after re-estimating every
    BatchNorm's statistics on ``bn_images`` of its training images (reset, cumulative
    average, train-mode forwards without gradients)."""
    if metric not in SUPERNET_METRICS:
        raise HwnasError(f"supernet metric must be one of {', '.join(SUPERNET_METRICS)}, "
                         f"got {metric!r}")
    net.set_active(arch)
    val = _held(val, next(net.parameters()).device)
    recalibrate_bn(net, val, bn_images, resolution, seed)
    if val_images is not None and val_images < len(val.test_y):
        from dataclasses import replace

        from ..data import stratified_indices

        idx = stratified_indices(val.test_y, val_images, seed)
        val = replace(val, test_x=val.test_x[idx], test_y=val.test_y[idx])
    return evaluate(net, val, resolution, batch_size=500, metric=metric)


_HELD: list = []  # (the host images, device, the same on that device): one entry


def _held(val: Dataset, dev: torch.device) -> Dataset:
    """``val`` on CUDA device ``dev`` (:func:`hwnas.train.on_device`), moved once for all
    the archs a search or ``hwnas score`` scores on it (the last one is kept)."""
    from ..train import on_device

    if dev.type != "cuda":
        return val
    if _HELD and _HELD[0][0] is val.train_x and _HELD[0][1] == dev:
        return _HELD[0][2]
    _HELD[:] = [(val.train_x, dev, on_device(val, dev))]
    return _HELD[0][2]


def new_meta(sid: str, space: SearchSpace, data: Dataset, data_spec: str, resolution: int,
             recipe: SupernetRecipe, seed: int, n_train: int, n_val: int,
             command: str | None) -> dict[str, Any]:
    return {
        "format": META_FORMAT, "id": sid,
        "space": {"name": space.name, "source": space.source, "content": space_content(space),
                  "definition": space_definition(space)},
        "data": data_spec.strip(), "dataset": data.name, "resolution": resolution,
        "classes": data.classes, "channels": data.channels, "recipe": recipe.id_dict(),
        "seed": seed,
        "validation": {"fraction": recipe.val_fraction, "seed": seed, "train_images": n_train,
                       "val_images": n_val},
        "command": command, "torch_device": None, "versions": versions(),
        "epochs_done": 0, "wall_seconds": 0.0, "history": [],
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _open_for_training(store: Store, meta: dict[str, Any]) -> tuple[dict[str, Any], dict | None]:
    """(meta, checkpoint or None) of the folder: an existing supernet of the same id resumes; a
    foreign, corrupt or unreadable one is refused (and left as it is)."""
    if store.meta_path.exists():
        old = store.read_meta()
        for k in ("recipe", "seed", "data", "resolution"):
            if json.dumps(old[k], sort_keys=True) != json.dumps(meta[k], sort_keys=True):
                raise HwnasError(f"{store.meta_path}: records {k}={old[k]!r}, this run has "
                                 f"{meta[k]!r}; move the folder away")
        if old["space"].get("content") != json.loads(json.dumps(meta["space"]["content"])):
            raise HwnasError(f"{store.meta_path}: records another space; move the folder away")
        ck = store.load_checkpoint() if store.checkpoint_path.exists() else None
        return old, ck
    if store.folder.exists() and any(store.folder.iterdir()):
        raise HwnasError(f"{store.folder}: exists without {store.meta_path.name} (not a supernet "
                         "folder hwnas wrote); move it away")
    return meta, None


def train_supernet(space: SearchSpace, data: Dataset, data_spec: str, resolution: int,
                   recipe: SupernetRecipe, seed: int = 0, device: str | torch.device = "cpu",
                   progress: bool = True, on_epoch: Callable[[int, float], None] | None = None,
                   command: str | None = None, on_step: Callable[[int, float, float], None] | None = None,
                   bn_shards: int = 1) -> SupernetResult:
    """Train (or resume, or just report) the supernet of ``space`` on ``data`` at
    ``resolution`` with ``recipe``, stored in ``runs/supernets/<id>/``.

    ``data`` must be loaded from ``data_spec`` with ``seed`` (digits' train/test split
    depends on it). ``on_epoch(epoch, loss)`` is called after each epoch's checkpoint,
    ``on_step(step, loss, distill_loss)`` after each step (losses averaged over the ranks).

    Under torchrun (``WORLD_SIZE`` > 1) the processes train one supernet together
    (:mod:`hwnas.supernet.dist`: same subnets, disjoint shards of each global batch of
    ``recipe.batch_size``, gradients averaged, BatchNorm per shard, rank 0 writes).
    ``bn_shards`` (1 process only): normalise the global batch in that many contiguous
    chunks, which is what that many ranks compute (the reference of the equality test).
    On CUDA: bf16 autocast, the data held on the GPU.
    """
    from tqdm import tqdm

    from ..train import autocast, on_device
    from . import dist

    check_space(space)  # before a store folder is made
    dev = resolve_torch_device(device)
    d, dev = dist.init(dev)
    try:
        with contextlib.ExitStack() as held:
            return _train(space, data, data_spec, resolution, recipe, seed, dev, d, progress,
                          on_epoch, command, on_step, bn_shards, tqdm, autocast, on_device, held)
    except HwnasError as e:
        if d.active and not d.main and str(e) == _PEER_FAILED:
            raise SystemExit(2) from None  # rank 0 printed the reason
        raise
    finally:
        d.close()


_PEER_FAILED = "rank 0 stopped (its line says why)"


def _train(space, data, data_spec, resolution, recipe, seed, dev, d, progress, on_epoch,
           command, on_step, bn_shards, tqdm, autocast, on_device,
           held: contextlib.ExitStack) -> SupernetResult:
    from . import dist

    t0 = time.perf_counter()
    sid = supernet_id(space, data_spec, resolution, recipe.id_dict(), seed)
    store = Store(supernets_dir() / sid)
    train, val = training_part(data, recipe, seed)
    n = len(train.train_y)
    shards = d.world_size if d.active else bn_shards
    if shards > 1 and (recipe.batch_size % shards or n < recipe.batch_size):
        raise HwnasError(f"--batch-size {recipe.batch_size} (the global batch) must be a multiple "
                         f"of the {shards} processes and at most the {n} training images")
    opened: Any = None
    if d.main:  # rank 0 reads the folder (and alone writes it); the others get what it read
        try:  # the lock first: two jobs never write one supernet
            held.enter_context(dist.train_lock(supernets_dir() / f".{sid}.lock", f"supernet {sid}"))
            opened = _open_for_training(store, new_meta(sid, space, data, data_spec, resolution,
                                                        recipe, seed, n, len(val.test_y), command))
        except HwnasError as e:
            dist.broadcast(d, str(e), dev)
            raise
    opened = dist.broadcast(d, opened, dev)
    if isinstance(opened, str):
        raise HwnasError(_PEER_FAILED)
    meta, ck = opened
    drop_last = n >= recipe.batch_size
    steps = n // recipe.batch_size if drop_last else 1
    with torch_threads(recipe.threads):
        torch.manual_seed(seed)
        net = SuperNet(space, data.classes, data.channels, recipe.kernel_transform)
        net = net.to(dev, memory_format=CHANNELS_LAST)
        train = on_device(train, dev)
        opt = make_optimizer(net, recipe)
        params = list(net.parameters())
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_schedule(recipe, steps))
        gen = torch.Generator().manual_seed(seed)  # shuffling and augmentation
        arch_gen = torch.Generator().manual_seed(seed + 1)  # the random subnets
        start, loss_avg, history = 0, float("nan"), []
        if ck is None:  # a fresh start (also if the checkpoint was deleted): nothing done yet
            for k in ("largest_val_acc", "smallest_val_acc"):
                meta.pop(k, None)
            meta.update(history=[], wall_seconds=0.0)
        else:
            restore_state(ck, f"{store.checkpoint_path}: does not fit this supernet (move it "
                          "away)", net, opt, sched, {"rng": gen, "arch_rng": arch_gen})
            start, loss_avg = int(ck["epoch"]), float(ck["train_loss"])
            history = list(ck["history"])
            if d.main:
                log.info("supernet %s: resuming after epoch %d of %d", sid, start, recipe.epochs)
        del ck
        wall0 = float(meta.get("wall_seconds", 0.0))
        meta["epochs_done"] = start
        if start < recipe.epochs or not meta.get("torch_device"):
            meta["torch_device"] = str(dev)  # where it trains (history: per epoch)
            meta["distributed"] = {
                "world_size": d.world_size, "backend": d.backend,
                "global_batch": recipe.batch_size, "batch_per_process": recipe.batch_size // d.world_size,
                "lr_rule": "the recipe's lr for the global batch, not scaled with the processes",
                "batchnorm": "per process (statistics of its shard)", "gradients": "averaged"}
        if d.main:
            store.write_meta(meta)  # the folder is ours from now on
        largest, smallest = net.largest(resolution), net.smallest(resolution)
        ce = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
        bar = tqdm(total=(recipe.epochs - start) * steps, unit="step", leave=False,
                   disable=not progress or not d.main or not sys.stderr.isatty()
                   or start >= recipe.epochs)
        step = start * steps
        for epoch in range(start, recipe.epochs):
            bar.set_description(f"supernet epoch {epoch + 1}/{recipe.epochs}")
            net.train()
            total = distill = 0.0
            count = 0
            e0 = time.perf_counter()
            for xb, yb in train.batches("train", recipe.batch_size, resolution=resolution,
                                        shuffle=True, generator=gen, augment=recipe.augment,
                                        drop_last=drop_last):
                if d.active:  # this rank's shard of the global batch
                    parts = [d.shard(len(yb))]
                else:
                    b = len(yb) // shards
                    parts = [slice(k * b, (k + 1) * b) for k in range(shards)]
                opt.zero_grad(set_to_none=True)
                students = [net.sample(arch_gen, resolution) for _ in range(recipe.random_subnets)]
                loss_v = kd = 0.0
                for part in parts:
                    x = xb[part].to(dev).contiguous(memory_format=CHANNELS_LAST)
                    y = yb[part].to(dev)
                    net.set_active(largest)
                    with autocast(dev):
                        out = net(x)
                        loss = ce(out.float(), y)
                    (loss / len(parts)).backward()
                    loss_v += loss.item() / len(parts)
                    soft = out.detach().float().softmax(1)
                    for arch in [*students, smallest]:
                        net.set_active(arch)
                        with autocast(dev):
                            s_loss = soft_cross_entropy(net(x).float(), soft)
                        (s_loss / len(parts)).backward()
                        kd += s_loss.item() / len(parts)
                dist.average_gradients(d, params)
                opt.step()
                sched.step()
                step += 1
                kd /= recipe.random_subnets + 1
                if on_step is not None:
                    on_step(step, *dist.all_mean(d, [loss_v, kd], dev))
                total += loss_v * len(yb)
                distill += kd * len(yb)
                count += len(yb)
                bar.update(1)
                bar.set_postfix(loss=f"{total / count:.3f}", distill=f"{distill / count:.3f}")
            loss_avg, distill_avg = dist.all_mean(d, [total / max(1, count), distill / max(1, count)],
                                                  dev)
            if not math.isfinite(loss_avg) or not math.isfinite(distill_avg):
                bar.close()
                raise HwnasError(f"supernet training diverged (loss {loss_avg}) in epoch {epoch + 1}; "
                                 f"lower the learning rate (now {recipe.lr})")
            history.append({"epoch": epoch + 1, "train_loss": loss_avg, "distill_loss": distill_avg,
                            "lr": opt.param_groups[0]["lr"],
                            "seconds": round(time.perf_counter() - e0, 3), "torch_device": str(dev),
                            "world_size": d.world_size})
            if d.main:
                store.save_checkpoint({
                    "epoch": epoch + 1, "train_loss": loss_avg, "history": history,
                    "model": net.state_dict(), "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(), "rng": gen.get_state(),
                    "arch_rng": arch_gen.get_state(), "torch_device": str(dev),
                })
                meta.update(epochs_done=epoch + 1, history=history,
                            wall_seconds=round(wall0 + time.perf_counter() - t0, 3))
                store.write_meta(meta)
            if on_epoch is not None:
                on_epoch(epoch + 1, loss_avg)
        bar.close()
        if d.main and "largest_val_acc" not in meta:
            # after the last checkpoint: recalibrating BN here changes nothing that is stored
            bn = recipe.bn_recalibration or 2000
            meta["largest_val_acc"] = subnet_accuracy(net, largest, val, bn, seed, resolution)
            meta["smallest_val_acc"] = subnet_accuracy(net, smallest, val, bn, seed, resolution)
            meta["wall_seconds"] = round(wall0 + time.perf_counter() - t0, 3)
            store.write_meta(meta)
    return SupernetResult(store=store, meta=meta, epochs=recipe.epochs, resumed_from=start,
                          seconds=time.perf_counter() - t0, train_loss=loss_avg, rank=d.rank)


__all__ = ["SupernetRecipe", "SupernetResult", "soft_cross_entropy", "subnet_accuracy",
           "train_supernet", "training_part"]
