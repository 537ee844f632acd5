"""The train-predict-search loop (``hwnas search --accuracy predictor --train-budget K``):
spend K real trainings where they teach the accuracy predictor most about the front.

Round 0 trains archs spread across the latency range (one from each latency quantile of a
candidate pool, so the predictor sees the whole range); every later round refits the
predictor on everything trained so far and trains the untrained archs of the pool that lie
on the *optimistic* front -- Pareto-optimal in (predicted accuracy + ``kappa`` x its
uncertainty, latency) -- taking successive fronts until the round's share is filled and,
within the last front, the archs the predictor is least sure of. The pool is the whole
space when it is small enough (NAS-Bench-Macro: 6,561 networks) else a seeded random sample.
The found front is the Pareto front of the *trained* archs (their real accuracy), which is
what the benchmark compares with the true front.

Pure numpy: "training" is a callable (a lookup in a results table for the benchmark, the
retrain recipe for real use), and so is the predictor (:func:`run_loop`'s ``fit``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import HwnasError

__all__ = ["LoopSettings", "LoopResult", "pareto_mask", "by_latency", "acquire", "run_loop",
           "round_sizes"]


@dataclass(frozen=True)
class LoopSettings:
    budget: int  # trainings in all
    rounds: int = 10  # rounds after the first (latency-spread) one
    first: float = 0.3  # share of the budget spent on the latency-spread first round
    kappa: float = 1.0  # optimism: accuracy + kappa x std
    seed: int = 0

    def validate(self) -> LoopSettings:
        for k, lo in (("budget", 2), ("rounds", 0)):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise HwnasError(f"--train-{k} must be an integer >= {lo}, got {v!r}")
        if not 0 < self.first <= 1:
            raise HwnasError(f"the first round's share must be in (0, 1], got {self.first}")
        if not np.isfinite(self.kappa) or self.kappa < 0:
            raise HwnasError(f"kappa must be a finite number >= 0, got {self.kappa}")
        return self


@dataclass
class LoopResult:
    trained: list[int] = field(default_factory=list)  # pool indices, in training order
    accuracy: list[float] = field(default_factory=list)  # their trained accuracy
    rounds: list[dict] = field(default_factory=list)  # per round: size, fit quality

    def front(self, latency: np.ndarray) -> list[int]:
        """Pool indices of the Pareto front of the trained archs (real accuracy)."""
        if not self.trained:
            return []
        idx = np.asarray(self.trained)
        m = pareto_mask(np.asarray(self.accuracy, float), np.asarray(latency, float)[idx])
        return [int(i) for i in idx[m]]


def pareto_mask(acc: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Non-dominated points when maximising ``acc`` and minimising ``lat`` (ties kept)."""
    acc, lat = np.asarray(acc, float), np.asarray(lat, float)
    order = np.lexsort((-acc, lat))  # by latency, then best accuracy first
    keep = np.zeros(len(acc), bool)
    best = -np.inf
    for i in order:
        if acc[i] > best:
            keep[i], best = True, acc[i]
    return keep


def by_latency(lat: np.ndarray, k: int, rng: np.random.Generator,
               exclude: np.ndarray | None = None) -> list[int]:
    """``k`` indices spread across the latency range: one drawn from each of ``k`` latency
    quantile bins of the candidates (those not in ``exclude``)."""
    cand = np.flatnonzero(~exclude) if exclude is not None else np.arange(len(lat))
    if k >= len(cand):
        return [int(i) for i in cand]
    order = cand[np.argsort(lat[cand], kind="stable")]
    return [int(rng.choice(b)) for b in np.array_split(order, k)]


def acquire(mean: np.ndarray, std: np.ndarray, lat: np.ndarray, k: int, trained: np.ndarray,
            kappa: float = 1.0) -> list[int]:
    """``k`` untrained indices from successive optimistic fronts of (mean + kappa std, lat);
    in the front that overflows, the most uncertain first."""
    opt = np.asarray(mean, float) + kappa * np.asarray(std, float)
    left = ~np.asarray(trained, bool)
    out: list[int] = []
    while len(out) < k and left.any():
        cand = np.flatnonzero(left)
        front = cand[pareto_mask(opt[cand], lat[cand])]
        need = k - len(out)
        if len(front) > need:
            front = front[np.argsort(-np.asarray(std)[front], kind="stable")[:need]]
        out += [int(i) for i in front]
        left[front] = False
    return out


def round_sizes(s: LoopSettings) -> list[int]:
    """Trainings per round: the first round's share, the rest split evenly."""
    first = max(2, min(s.budget, round(s.budget * s.first)))
    rest = s.budget - first
    n = s.rounds if rest else 0
    return [first] + [rest // n + (1 if i < rest % n else 0) for i in range(n)] if n else [first]


def run_loop(latency: Sequence[float], train: Callable[[list[int]], Sequence[float]],
             fit: Callable[[list[int], list[float]], Callable[[np.ndarray],
                                                              tuple[np.ndarray, np.ndarray]]],
             settings: LoopSettings, done: Sequence[tuple[int, float]] = (),
             on_round: Callable[[int, LoopResult], None] | None = None,
             on_pick: Callable[[int, list[int]], None] | None = None) -> LoopResult:
    """Run the loop over a pool of ``len(latency)`` candidates. ``train(indices)`` returns
    their accuracies; ``fit(indices, accuracies)`` returns ``predict(indices) -> (mean,
    std)``. ``done``: (index, accuracy) pairs already trained (a resumed loop), counted in
    the budget. ``on_pick(r, indices)`` is called before round ``r``'s trainings (a resumed
    loop skips the rounds already done), ``on_round(r, result)`` after them (to save
    progress)."""
    s = settings.validate()
    lat = np.asarray(latency, float)
    if len(lat) < 2 or not np.all(np.isfinite(lat)):
        raise HwnasError("the loop needs a pool of at least 2 candidates with finite latencies")
    rng = np.random.default_rng(s.seed)
    res = LoopResult([int(i) for i, _ in done], [float(a) for _, a in done])
    trained = np.zeros(len(lat), bool)
    trained[res.trained] = True
    sizes = round_sizes(s)
    spent = 0
    for r, size in enumerate(sizes):
        spent += size
        need = min(spent, s.budget, len(lat)) - len(res.trained)
        if need <= 0:
            continue
        if len(res.trained) < 2:  # nothing to fit yet: spread across the latency range
            pick = by_latency(lat, need, rng, trained)
            info = {"round": r, "how": "latency-spread"}
        else:
            predict = fit(list(res.trained), list(res.accuracy))
            mean, std = predict(np.arange(len(lat)))
            pick = acquire(mean, std, lat, need, trained, s.kappa)
            info = {"round": r, "how": "optimistic front"}
        if on_pick is not None:
            on_pick(r, pick)
        acc = [float(a) for a in train(pick)]
        if len(acc) != len(pick) or not all(np.isfinite(acc)):
            raise HwnasError(f"round {r}: training returned {len(acc)} finite accuracies for "
                             f"{len(pick)} archs")
        res.trained += pick
        res.accuracy += acc
        trained[pick] = True
        res.rounds.append({**info, "trained": len(pick), "total": len(res.trained)})
        if on_round is not None:
            on_round(r, res)
    return res
