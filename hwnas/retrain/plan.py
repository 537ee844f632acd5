"""What ``hwnas retrain`` is about to do, said before it starts: :class:`Plan` (models x seeds x
epochs, how many of those trainings are finished already) and a time estimate from timing one
training batch of each model (:func:`make_plan`), with the options that shrink it."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["Plan", "make_plan"]


@dataclass
class Plan:
    """The trainings of a retrain call and what they will cost."""

    winners: int
    baselines: int
    seeds: int
    epochs: int
    steps_per_epoch: int  # training batches per epoch
    todo: int  # (model, seed) trainings not finished yet
    step_s: dict[str, float] = field(default_factory=dict)  # model -> seconds of one batch
    deployed: int = 0  # models whose weights come from a supernet (not timed here)

    @property
    def models(self) -> int:
        return self.winners + self.baselines

    @property
    def estimate_s(self) -> float | None:
        """Seconds of the trainings still to do: one timed batch x steps x epochs per
        (model, seed), + 10 % for BatchNorm recalibration, testing and export; None untimed."""
        if not self.todo:
            return 0.0
        if not self.step_s:
            return None
        per = sum(self.step_s.values()) / len(self.step_s)
        return 1.1 * per * self.steps_per_epoch * self.epochs * self.todo

    def text(self) -> str:
        """Two lines: the plan with its estimate, and how to make it smaller."""
        n = self.models * self.seeds
        done = n - self.todo
        head = (f"plan: {self.winners} winner(s) + {self.baselines} baseline(s) = {self.models} "
                f"models x {self.seeds} seed(s) = {n} trainings of {self.epochs} epoch(s) "
                f"({self.steps_per_epoch} batches each)"
                + (f"; {done} finished earlier" if done else "")
                + (f"; {self.deployed} deployed from the supernet" if self.deployed else ""))
        est = self.estimate_s
        if est is not None and self.todo:
            head += f"; about {_duration(est)} for the {self.todo} left (one batch timed per model)"
        return head + ("\n  smaller: --top K (fewer winners), --seeds 1, --epochs E, "
                       "--subset N (N training images), --baselines none")


def _duration(s: float) -> str:
    if s < 90:
        return f"{max(1, round(s))} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def time_step(arch, data, recipe, torch_device: Any = "cpu", repeats: int = 2) -> float:
    """Seconds of one training step of ``arch`` (forward, backward, optimizer step) on a batch
    of the recipe's size: the fastest of ``repeats`` after one warm-up step."""
    import torch
    from torch import nn

    from ..model import build
    from ..train import make_optimizer, resolve_torch_device, torch_threads

    dev = resolve_torch_device(torch_device)
    n = min(recipe.batch_size, len(data.train_y))
    with torch_threads(recipe.threads):
        torch.manual_seed(0)
        model = build(arch).to(dev)
        opt = make_optimizer(model, recipe)
        loss_fn = nn.CrossEntropyLoss()
        xb = data.prepare(data.train_x[:n], arch.resolution).to(dev)
        yb = data.train_y[:n].to(dev)
        model.train()
        best = math.inf
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            loss = loss_fn(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            if i:
                best = min(best, time.perf_counter() - t0)
    return best


def make_plan(models: Sequence, seeds: Sequence[int], recipe, data, run_dir: Path, rid: str,
              torch_device: Any = "cpu", timing: bool = True) -> Plan:
    """The plan of training ``models`` (hwnas.retrain.run.Model) with ``seeds``: which (model,
    seed) are finished under ``run_dir/retrain/rid``, and with ``timing`` one batch of each
    model still to train timed (a failure to time leaves the estimate out)."""
    from .queue import read_done

    root = Path(run_dir) / "retrain" / rid
    alone = [m for m in models if not getattr(m, "tag", "")]
    left = [m for m in alone if any(read_done(m, s, root) is None for s in seeds)]
    todo = sum(read_done(m, s, root) is None for m in alone for s in seeds)
    n = min(recipe.subset or len(data.train_y), len(data.train_y))
    steps = max(1, n // recipe.batch_size) if n >= recipe.batch_size else 1
    plan = Plan(sum(m.kind == "winner" for m in models), sum(m.kind == "baseline" for m in models),
                len(seeds), recipe.epochs, steps, todo, deployed=len(models) - len(alone))
    if timing and left:
        try:
            plan.step_s = {m.name: time_step(m.arch, data, recipe, torch_device) for m in left}
        except Exception as e:  # noqa: BLE001 -- an estimate is a courtesy, the training decides
            log.debug("could not time a batch: %s", e)
    return plan
