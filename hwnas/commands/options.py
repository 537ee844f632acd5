"""Argument types shared by the commands: values checked where they are typed, so a bad one is
argparse's one usage line, not a traceback from a library deep inside."""

from __future__ import annotations

import argparse

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


def seeds(text: str) -> list[int]:
    """A comma list of seeds."""
    return [seed(s.strip()) for s in str(text).split(",") if s.strip()]
