"""Words and numbers the report prints the same way everywhere (figures, tables, LaTeX):
what the search's score is called, accuracy with its spread over seeds, trial and arch
counts, and readable ticks of a log axis. Pure functions, no plotly."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["ESTIMATOR_LABELS", "fmt_acc", "log_ticks", "score_label", "seed_count",
           "tick_text", "trials_archs"]

#: what an accuracy estimator's score is (config.json's accuracy_estimator, else its accuracy)
ESTIMATOR_LABELS = {
    "naswot": "NASWOT score", "zero-cost": "NASWOT score",
    "short-train": "short-training val. accuracy", "train": "short-training val. accuracy",
    "supernet": "supernet val. accuracy",
    "table": "accuracy from a results table", "predictor": "predicted accuracy (learned)",
}


def score_label(config: dict[str, Any]) -> str:
    """The name of the search's ``accuracy`` column for a run's ``config``: a zero-cost
    score is no accuracy ("NASWOT score"); an injected function is named as such."""
    if config.get("injected_estimators"):
        return "estimated score (injected function)"
    if (config.get("accuracy_settings") or {}).get("metric") == "loglik":
        return "supernet val. log-likelihood"
    for key in ("accuracy_estimator", "accuracy"):
        v = str(config.get(key) or "")
        if v in ESTIMATOR_LABELS:
            return ESTIMATOR_LABELS[v]
    return "accuracy estimate"


def seed_count(v: Any) -> int | None:
    """How many seeds a retrain.csv ``seeds`` cell lists ("0;1;2" -> 3, "7" -> 1); None when
    empty."""
    if v is None:
        return None
    if isinstance(v, (list, tuple)):
        return len(v) or None
    s = [x for x in str(v).replace(",", ";").split(";") if x.strip()]
    return len(s) or None


def fmt_acc(mean: Any, std: Any, n_seeds: int | None, spec: str = ".4f", pm: str = "+-",
            with_n: bool = True) -> str:
    """``mean +- std``; with one seed there is no spread to show: ``mean (n=1)`` (``mean``
    alone without ``with_n``, where the seed count is said next to it)."""
    from ..runs import finite

    m, s = finite(mean), finite(std)
    if m is None:
        return "-"
    if n_seeds == 1:
        return f"{m:{spec}} (n=1)" if with_n else f"{m:{spec}}"
    if s is None:
        return f"{m:{spec}}"
    return f"{m:{spec}} {pm} {s:{spec}}"


def trials_archs(n_trials: int, n_archs: int) -> str:
    """``"120 trials, 97 distinct archs"`` (a search may evaluate an arch more than once)."""
    return (f"{n_trials} trial{'s' if n_trials != 1 else ''}, {n_archs} distinct "
            f"arch{'s' if n_archs != 1 else ''}")


_MANTISSAS = ((1,), (1, 2, 5), (1, 2, 3, 5), (1, 1.5, 2, 3, 4, 5, 6, 8),
              (1, 1.2, 1.4, 1.6, 1.8, 2, 2.5, 3, 3.5, 4, 4.5, 5, 6, 7, 8, 9))


def log_ticks(lo: float, hi: float, min_ticks: int = 3, max_ticks: int = 9) -> list[float]:
    """Round tick values of a log axis spanning ``lo..hi`` (> 0): decades, else 1-2-5
    (0.1, 0.2, 0.5, 1, 2, ...), else finer, the coarsest with at least ``min_ticks``
    in range and at most ``max_ticks``."""
    if not (lo > 0 and hi > lo and math.isfinite(lo) and math.isfinite(hi)):
        return []
    e0, e1 = math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1
    best: list[float] = []
    for ms in _MANTISSAS:
        ticks = [float(f"{m}e{e}") for e in range(e0, e1 + 1) for m in ms]
        ticks = sorted(t for t in ticks if lo <= t <= hi)
        if len(ticks) > max_ticks and best:
            break
        best = ticks
        if len(ticks) >= min_ticks:
            break
    if len(best) > max_ticks:  # many decades: every other one
        best = best[::math.ceil(len(best) / max_ticks)]
    return best


def tick_text(ticks: Sequence[float]) -> list[str]:
    """Tick labels as people write them: 0.1, 0.2, 0.5, 1, 2, 1500."""
    return [f"{t:g}" if t < 1e5 else f"{t:.0f}" for t in ticks]
