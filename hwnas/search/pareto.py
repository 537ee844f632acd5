"""Pareto fronts and hypervolume: which points are non-dominated, how much of the objective
space a front covers, the feasible front of an Optuna study, and points along a 2-D front (its
knee, K of them spread evenly: how retrain picks winners)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import HwnasError

__all__ = ["feasible_front", "hypervolume", "knee_index", "pareto_mask", "spread_indices"]


def _losses(points: np.ndarray, directions: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(points as rows to minimise, the sign per column that made them so)."""
    pts = np.asarray(points, dtype=float).reshape(-1, len(directions))
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    return pts * sign, sign


def hypervolume(points: np.ndarray, directions: Sequence[str], reference: Sequence[float]) -> float:
    """Hypervolume of ``points`` (rows of objective values) w.r.t. ``reference``.

    ``directions`` holds "maximize"/"minimize" per column; points worse than the reference
    in any objective contribute nothing. Computed by moocore's public, exact
    ``moocore.hypervolume`` (Optuna has only a private helper, ``optuna._hypervolume``).
    """
    import moocore

    loss, sign = _losses(points, directions)
    ref = np.asarray(reference, dtype=float) * sign
    if len(ref) != len(directions):
        raise HwnasError(f"the reference point has {len(ref)} values for "
                         f"{len(directions)} objectives")
    loss = loss[np.all(loss <= ref, axis=1)]
    return float(moocore.hypervolume(loss, ref=ref)) if len(loss) else 0.0


def feasible_front(study) -> list:
    """The feasible non-dominated COMPLETE trials, by number: ``study.best_trials`` without its
    deep copy of every trial (which costs ~0.3 s per call at a few hundred trials)."""
    from optuna.trial import TrialState

    trials = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
              if all(v <= 0 for v in t.constraints.values())]
    if not trials:
        return []
    dirs = [d.name.lower() for d in study.directions]
    mask = pareto_mask(np.array([t.values for t in trials]), dirs)
    return [t for t, k in zip(trials, mask, strict=True) if k]


def pareto_mask(points: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Boolean mask of the non-dominated rows (duplicates of a front point all kept)."""
    loss, _ = _losses(points, directions)
    keep = np.ones(len(loss), dtype=bool)
    for i in range(len(loss)):
        if keep[i]:
            dom = np.all(loss[i] <= loss, axis=1) & np.any(loss[i] < loss, axis=1)
            keep &= ~dom
    return keep


def spread_indices(n: int, k: int) -> list[int]:
    """``k`` of ``n`` positions (0 = fastest, n-1 = most accurate on a latency-sorted front)
    spread evenly by rank, starting from the most accurate: k=1 -> [n-1], k=2 -> both ends."""
    if k >= n:
        return list(range(n))
    if k == 1:
        return [n - 1]
    return sorted({round((n - 1) * (1 - i / (k - 1))) for i in range(k)})


def knee_index(latency: Sequence[float], accuracy: Sequence[float]) -> int:
    """The knee of a 2-D front: after scaling both objectives to [0, 1], the point farthest
    from the straight line joining the front's two ends (on the better side of it); with
    fewer than 3 points (or a straight front), the point closest to the ideal corner
    (lowest latency, highest accuracy)."""
    n = len(latency)
    if n == 0:
        raise HwnasError("the front is empty")

    def scale(v: Sequence[float]) -> list[float]:
        lo, hi = min(v), max(v)
        return [0.0 if hi == lo else (x - lo) / (hi - lo) for x in v]

    x, y = scale(latency), scale(accuracy)
    ideal = min(range(n), key=lambda i: (x[i] ** 2 + (1 - y[i]) ** 2, i))
    if n < 3:
        return ideal
    a = min(range(n), key=lambda i: (x[i], -y[i]))  # fastest end
    b = max(range(n), key=lambda i: (y[i], -x[i]))  # most accurate end
    dx, dy = x[b] - x[a], y[b] - y[a]
    norm = math.hypot(dx, dy)
    if norm == 0:
        return ideal
    # signed distance; positive = towards the ideal corner (upper left)
    dist = [(dx * (y[i] - y[a]) - dy * (x[i] - x[a])) / norm for i in range(n)]
    best = max(range(n), key=lambda i: (dist[i], -i))
    return best if dist[best] > 1e-12 else ideal
