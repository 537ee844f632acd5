"""One supernet trained by several processes: torch.distributed under ``torchrun``.

``torchrun --nproc-per-node N -m hwnas supernet train ...`` (and ``--nnodes`` with torchrun's
rendezvous) starts N processes with ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` set;
:func:`init` joins them in a process group (gloo on the CPU, NCCL on CUDA, where each process
takes GPU ``LOCAL_RANK``), with a timeout so that an unreachable rendezvous is one line, not a
hang (``HWNAS_DIST_TIMEOUT_S``, default 300 s). Without ``WORLD_SIZE`` > 1 nothing changes.

What makes N processes train the one supernet that 1 process would (see
:func:`hwnas.supernet.train.train_supernet`):

* **the same subnets**: every rank draws the step's random subnets from the same seeded
  generator, restored from the same checkpoint, in the same order;
* **disjoint shards of the same global batch**: every rank draws the global batch (shuffle and
  augmentation from the same seeded generator, as 1 process does) and keeps its contiguous
  ``batch / N`` slice; ``--batch-size`` is the global batch and the learning rate is the
  recipe's for that global batch (no scaling rule: the step is the 1-process step);
* **gradients**: after the backward passes of all the step's subnets, every gradient is
  averaged over the ranks with one ``all_reduce`` of a flat buffer (:func:`average_gradients`).
  Not DistributedDataParallel: DDP syncs once per backward, but a sandwich step has 2 +
  ``random_subnets`` backward passes over different active parameters (DDP would need
  ``find_unused_parameters`` and ``no_sync`` for all but the last subnet, and still re-scan
  the graph each time); one all-reduce after the last backward is exact, simpler and sends the
  gradients once per step. A parameter that no subnet of the step used has no gradient on any
  rank (all ranks ran the same subnets) and is skipped everywhere, as the optimizer skips it in
  1 process;
* **BatchNorm**: plain BatchNorm per rank, not SyncBatchNorm: each rank normalises with its
  shard's statistics (ghost batch norm with ``batch / N`` images). The supernet's running
  statistics are never used (every subnet is recalibrated before it is scored or deployed),
  and SyncBatchNorm would add one all-reduce per BatchNorm layer per subnet per step. The
  1-process run that N ranks reproduce is therefore the one with ``bn_shards=N`` (the global
  batch normalised in N contiguous chunks); tests/test_supernet_dist.py checks that equality
  per step and measures the difference from plain 1-process BatchNorm.

Rank 0 alone writes (checkpoint, meta.json) and shows the progress bar; it holds an exclusive
lock (:func:`train_lock`, ``runs/supernets/.<id>.lock``) for the whole training, so two
independent jobs never write one supernet, and it sends the checkpoint it resumes from to the
other ranks (no shared folder needed across nodes).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch

from ..errors import HwnasError

__all__ = ["Dist", "all_mean", "average_gradients", "broadcast", "init", "train_lock"]

DEFAULT_TIMEOUT_S = 300.0


@dataclass
class Dist:
    """This process's place in the group (world 1, rank 0 when not distributed)."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    backend: str | None = None

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, n: int) -> slice:
        """This rank's contiguous part of a global batch of ``n``."""
        b = n // self.world_size
        return slice(self.rank * b, (self.rank + 1) * b)

    def close(self) -> None:
        if self.active and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _env_int(name: str, default: int) -> int:
    v = os.environ.get(name)
    if v is None or v == "":
        return default
    try:
        return int(v)
    except ValueError:
        raise HwnasError(f"environment {name}={v!r}: not an integer (set by torchrun)") from None


def init(dev: torch.device) -> tuple[Dist, torch.device]:
    """(this process's :class:`Dist`, the torch device it trains on): joins the process group
    when torchrun's ``WORLD_SIZE`` > 1 (CUDA: GPU ``LOCAL_RANK``, NCCL; CPU: gloo)."""
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return Dist(), dev
    rank, local = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if dev.type == "cuda":
        if local >= torch.cuda.device_count():
            raise HwnasError(f"LOCAL_RANK {local}: this machine has {torch.cuda.device_count()} "
                             "CUDA device(s); start at most that many processes per node")
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
        backend = "nccl"
    elif dev.type == "cpu":
        backend = "gloo"
    else:
        raise HwnasError(f"distributed supernet training runs on CUDA (NCCL) or the CPU (gloo), "
                         f"not {dev.type}; use --torch-device cuda or cpu")
    try:
        timeout = float(os.environ.get("HWNAS_DIST_TIMEOUT_S", DEFAULT_TIMEOUT_S))
    except ValueError:
        raise HwnasError("HWNAS_DIST_TIMEOUT_S: must be a number of seconds") from None
    where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
    try:
        with _quiet_stderr():  # c10d's C++ logs each failed connect with a backtrace
            torch.distributed.init_process_group(backend, rank=rank, world_size=world,
                                                 timeout=timedelta(seconds=timeout))
    except Exception as e:  # DistNetworkError, DistStoreError, RuntimeError, ValueError
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise HwnasError(f"torch.distributed: rank {rank} of {world} could not join the "
                         f"rendezvous at {where} within {timeout:g} s ({first}); check "
                         "torchrun's --rdzv-endpoint / --master-addr and that every node can "
                         "reach it") from None
    return Dist(world, rank, local, backend), dev


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """File descriptor 2 goes to a temporary file inside the block; what was written there is
    passed on only if the block succeeds (on failure the one-line error says it all)."""
    import sys
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        ok = False
        try:
            yield
            ok = True
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if ok:
                tmp.seek(0)
                os.write(2, tmp.read())


def broadcast(d: Dist, obj: Any, dev: torch.device) -> Any:
    """Rank 0's ``obj`` on every rank (pickled; tensors come back on the CPU)."""
    if not d.active:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0,
                                            device=dev if d.backend == "nccl" else None)
    return box[0]


def average_gradients(d: Dist, params: list[torch.nn.Parameter]) -> None:
    """Every gradient averaged over the ranks, in one all-reduce of a flat buffer."""
    if not d.active:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    flat.div_(d.world_size)
    i = 0
    for g in grads:
        g.copy_(flat[i:i + g.numel()].view_as(g))
        i += g.numel()


def all_mean(d: Dist, values: list[float], dev: torch.device) -> list[float]:
    """``values`` averaged over the ranks (the same on every rank)."""
    if not d.active:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=dev)
    torch.distributed.all_reduce(t)
    return (t / d.world_size).tolist()


@contextlib.contextmanager
def train_lock(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive, non-blocking lock on ``path`` (released by the kernel when the
    process dies, kill -9 included); HwnasError if another process holds it."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no protection
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            who = f.read().strip()
            raise HwnasError(f"{what} is being trained by another process ({who or 'unknown'}; "
                             f"lock {path}); wait for it to finish or stop it") from None
        try:
            f.seek(0)
            f.truncate()
            import socket

            f.write(f"pid {os.getpid()} on {socket.gethostname()}")
            f.flush()
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
