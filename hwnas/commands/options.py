"""Argument types shared by the commands: values checked where they are typed, so a bad one is
argparse's one usage line, not a traceback from a library deep inside."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

MAX_SEED = 2**32 - 1  # numpy's and scikit-learn's seeds are 32-bit


def seed(text: str) -> int:
    """A seed: an integer in [0, 2**32 - 1] (numpy, scikit-learn and Optuna take these)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= v <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{v} is not in [0, {MAX_SEED}]")
    return v


def positive(**kw: int | None) -> None:
    """HwnasError naming the first option given (not None) below 1: ``positive(epochs=0)`` ->
    "--epochs: must be a positive integer, got 0"."""
    from ..errors import HwnasError

    for k, v in kw.items():
        if v is not None and v < 1:
            raise HwnasError(f"--{k.replace('_', '-')}: must be a positive integer, got {v}")


def seeds(text: str) -> list[int]:
    """A comma list of seeds."""
    return [seed(s.strip()) for s in str(text).split(",") if s.strip()]


# ---- options repeated across commands ------------------------------------------------------------
# Each helper adds one option with the same flags, type, metavar and default everywhere; the
# help says what the option means for that command. Choices come from the constants of the
# module that checks the value. Those of a module that imports torch (hwnas.train) are read
# through :class:`Later`: only when the option is parsed or its help shown, so building the
# parser (every hwnas command) does not import torch.

DATASETS = ("digits (bundled with scikit-learn), fashion-mnist (Debian's dataset-fashion-mnist, "
            "or fashion-mnist:PATH), mnist:PATH (an idx folder), cifar10:PATH (the python-format "
            "folder cifar-10-batches-py) or imagefolder:PATH (PATH/<class>/<image>, or PATH/train "
            "and PATH/val)")


class Later(Sequence):
    """A tuple computed on first use (``fn()``), for argparse's ``choices`` and help values."""

    def __init__(self, fn: Callable[[], Sequence[Any]]):
        self._fn, self._v = fn, None

    def _get(self) -> tuple:
        if self._v is None:
            self._v = tuple(self._fn())
        return self._v

    def __getitem__(self, i):  # type: ignore[override]
        return self._get()[i]

    def __len__(self) -> int:
        return len(self._get())

    def __str__(self) -> str:  # in a help text: "a, b or c"
        v = [str(x) for x in self._get()]
        return ", ".join(v[:-1]) + f" or {v[-1]}" if len(v) > 1 else "".join(v)


def _torch_devices() -> Sequence[str]:
    from ..train import TORCH_DEVICES

    return TORCH_DEVICES


def _optimizers() -> Sequence[str]:
    from ..train import OPTIMIZERS

    return OPTIMIZERS


def _default_lrs() -> Sequence[str]:
    from ..train import OPTIMIZERS, default_lr

    return [", ".join(f"{default_lr(o)} {o}" for o in OPTIMIZERS)]


def add_seed(p: argparse.ArgumentParser, what: str = "seed") -> None:
    """``--seed``: an integer in [0, 2**32 - 1], 0 by default; ``what`` it seeds."""
    p.add_argument("--seed", type=seed, default=0, help=f"{what} [0]")


def add_resolution(p: argparse.ArgumentParser, help: str, *, required: bool = False) -> None:
    """``--resolution/-r PX``: the input resolution in pixels (``help``: and its default)."""
    p.add_argument("--resolution", "-r", type=int, metavar="PX", required=required, help=help)


def add_data(p: argparse.ArgumentParser, help: str = DATASETS, *, default: str | None = None,
             required: bool = False) -> None:
    """``--data SPEC``: a dataset (:data:`DATASETS`; ``help``: what this command does with it)."""
    p.add_argument("--data", metavar="SPEC", default=default, required=required, help=help)


def add_torch_device(p: argparse.ArgumentParser, default: str = "cpu", *,
                     what: str = "where torch runs", more: str = "") -> None:
    """``--torch-device DEV``: one of :data:`hwnas.train.TORCH_DEVICES`, or cuda:N."""
    a = p.add_argument("--torch-device", default=default, metavar="DEV",
                       help=f"{what}: %(torch_devices)s (auto: CUDA, then MPS, then CPU; cuda:N "
                       f"picks a GPU){more} [{default}]")
    a.torch_devices = Later(_torch_devices)


def add_threads(p: argparse.ArgumentParser, what: str = "torch threads") -> None:
    """``--threads N``: torch threads (default: hwnas.train.default_threads)."""
    p.add_argument("--threads", type=int, help=f"{what} [half the usable cores, at least 1]")


def add_optimizer(p: argparse.ArgumentParser, help: str | None = None) -> None:
    """``--optimizer`` (:data:`hwnas.train.OPTIMIZERS`, sgd by default) and ``--lr`` (None: the
    optimizer's default, :func:`hwnas.train.default_lr`)."""
    # a metavar: argparse would list the choices (importing torch) when the option is added
    p.add_argument("--optimizer", choices=Later(_optimizers), default="sgd", metavar="NAME",
                   help=help or "%(choices)s: SGD with Nesterov momentum, or AdamW [sgd]")
    a = p.add_argument("--lr", type=float,
                       help="peak learning rate (cosine decay) [%(default_lrs)s]")
    a.default_lrs = Later(_default_lrs)


def add_statistic(p: argparse.ArgumentParser, help: str) -> None:
    """``--statistic``: one of :data:`hwnas.onboard.bench.STATISTICS`, None by default."""
    from ..onboard.bench import STATISTICS

    p.add_argument("--statistic", choices=STATISTICS, help=help)
