"""What a search run is asked to do: :class:`SearchSettings`, its validation, and the parsers of
its command-line values (objectives, ``20ms`` budgets, ``2M`` parameter counts)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..arch import Arch
from ..errors import HwnasError
from ..runs import SUPERNET_METRICS
from ..trials.storage import SAMPLERS

LatencyFn = Callable[[Sequence[Arch]], Any]
AccuracyFn = Callable[[Sequence[Arch]], Any]

# name -> (direction, trials.csv column, label); the objective "accuracy" is the search's
# score, whose column names what computed it (hwnas.runs.score_column: naswot_score,
# val_acc, ...; never "accuracy"): :func:`objective_column`
OBJECTIVES: dict[str, tuple[str, str, str]] = {
    "accuracy": ("maximize", "score", "score"),
    "latency": ("minimize", "latency_ms", "latency (ms)"),
    "params": ("minimize", "params", "params"),
    "memory": ("minimize", "memory_bytes", "peak act. memory (bytes)"),
}
ACCURACY_KINDS = ("zero-cost", "train", "supernet")
#: fp32 / int8: every trial's latency predicted at that precision (the device's model for it);
#: search: precision is a choice of each trial (trial parameter ``precision``)
PRECISION_CHOICES = ("fp32", "int8", "search")
MAX_WORKERS = 256  # processes of one search on one machine
_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

__all__ = ["ACCURACY_KINDS", "OBJECTIVES", "PRECISION_CHOICES", "SAMPLERS", "AccuracyFn", "LatencyFn", "SearchSettings",
           "objective_column", "parse_count", "parse_ms", "parse_objectives"]


@dataclass
class SearchSettings:
    """Everything a search run needs; stored in ``config.json``."""

    space: str
    device: str
    name: str
    trials: int = 200
    objectives: tuple[str, ...] = ("accuracy", "latency")
    latency_budget_ms: float | None = None
    max_params: int | None = None
    sampler: str = "nsga2"
    accuracy: str = "zero-cost"
    data: str = "digits"
    seed: int = 0
    workers: int = 1
    storage: str | None = None
    resolution: int | None = None
    population: int | None = None
    seed_baselines: bool = True
    precision: str = "fp32"
    supernet_metric: str = "accuracy"  # --accuracy supernet: "accuracy" or "loglik"

    def score_column(self, injected: bool = False) -> str:
        """The column naming this run's score (:func:`hwnas.runs.score_column`)."""
        from ..runs import score_column

        return score_column(self.accuracy, self.supernet_metric, injected)

    def __post_init__(self) -> None:
        if isinstance(self.objectives, str):
            self.objectives = parse_objectives(self.objectives)
        self.objectives = tuple(self.objectives)

    def validate(self) -> SearchSettings:
        parse_objectives(",".join(self.objectives))
        if self.sampler not in SAMPLERS:
            raise HwnasError(f"unknown sampler '{self.sampler}' (choose from {', '.join(SAMPLERS)})")
        if self.accuracy.split(":", 1)[0] in ("table", "predictor"):
            from ..accuracy_sources.predictor import parse_source

            parse_source(self.accuracy)
        elif self.accuracy not in ACCURACY_KINDS:
            raise HwnasError(f"unknown accuracy estimator '{self.accuracy}' "
                             f"(choose from {', '.join(ACCURACY_KINDS)}, table:FILE, predictor:FILE)")
        if self.supernet_metric not in SUPERNET_METRICS:
            raise HwnasError(f"unknown --supernet-metric '{self.supernet_metric}' (choose from "
                             f"{', '.join(SUPERNET_METRICS)})")
        if self.supernet_metric != "accuracy" and self.accuracy != "supernet":
            raise HwnasError("--supernet-metric goes with --accuracy supernet")
        if self.precision not in PRECISION_CHOICES:
            raise HwnasError(f"unknown precision '{self.precision}' (choose from "
                             f"{', '.join(PRECISION_CHOICES)})")
        if not isinstance(self.name, str) or not _RUN_NAME.fullmatch(self.name):
            raise HwnasError(f"run name {self.name!r}: use letters, digits, '.', '_' and '-' "
                             "(at most 100; it becomes the folder runs/RUN)")
        if self.resolution is not None and (isinstance(self.resolution, bool)
                                            or not isinstance(self.resolution, int)
                                            or self.resolution < 1):
            raise HwnasError(f"--resolution must be a positive number of pixels, got "
                             f"{self.resolution!r}")
        if self.trials < 0:
            raise HwnasError(f"--trials must be >= 0, got {self.trials}")
        if not 1 <= self.workers <= MAX_WORKERS:
            raise HwnasError(f"--workers must be in 1..{MAX_WORKERS}, got {self.workers}")
        if self.latency_budget_ms is not None and not self.latency_budget_ms > 0:
            raise HwnasError(f"--latency-budget must be positive, got {self.latency_budget_ms} ms")
        if self.max_params is not None and self.max_params <= 0:
            raise HwnasError(f"--max-params must be positive, got {self.max_params}")
        if self.population is not None and self.population < 2:
            raise HwnasError(f"--population must be >= 2, got {self.population}")
        return self

    def population_size(self) -> int:
        """NSGA-II/III population: given, or trials/10 clamped to [10, 50]."""
        if self.population:
            return self.population
        return int(min(50, max(10, self.trials // 10)))


def objective_column(name: str, score: str) -> str:
    """The trials.csv column of objective ``name`` in a run whose score column is ``score``."""
    return score if OBJECTIVES[name][1] == "score" else OBJECTIVES[name][1]


def parse_objectives(text: str) -> tuple[str, ...]:
    names = tuple(x.strip() for x in str(text).split(",") if x.strip())
    for n in names:
        if n not in OBJECTIVES:
            raise HwnasError(f"unknown objective '{n}' (choose from {', '.join(OBJECTIVES)})")
    if len(set(names)) != len(names):
        raise HwnasError(f"--objectives '{text}': an objective is listed twice")
    if len(names) < 2:
        raise HwnasError(f"--objectives '{text}': give at least two of {', '.join(OBJECTIVES)} "
                         "(a multi-objective search)")
    return names


_TIME_UNITS = {"ms": 1.0, "s": 1000.0, "us": 1e-3}
_COUNT_UNITS = {"": 1, "k": 1_000, "K": 1_000, "m": 1_000_000, "M": 1_000_000, "G": 1_000_000_000}


def parse_ms(text: str | float) -> float:
    """'20ms', '0.02s', '20' (ms) -> 20.0."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|us)?\s*", str(text))
    if not m:
        raise HwnasError(f"latency budget '{text}': expected a time such as 20ms or 0.02s")
    return float(m[1]) * _TIME_UNITS[m[2] or "ms"]


def parse_count(text: str | int) -> int:
    """'2M', '500k', '1.5M', '2000000' -> an int."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kKmMG]?)\s*", str(text))
    if not m:
        raise HwnasError(f"parameter count '{text}': expected a number such as 2M or 500k")
    return int(round(float(m[1]) * _COUNT_UNITS[m[2]]))
