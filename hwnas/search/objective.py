"""What a trial computes: the Arch it samples, its metrics, its constraints.

The search needs two calls (the Once-for-All shape): ``latency_fn(archs) -> ms`` and
``accuracy_fn(archs) -> scores`` (higher is better); :func:`build_estimators` builds them from
a device's latency predictor and an accuracy estimator (or the caller injects them). Params,
MACs and peak activation memory come from :func:`hwnas.costs.arch_costs` (``arch_costs_fast``).

Constraints are ``trial.set_constraint`` (Optuna 5; ``constraints_func`` is deprecated) with
relative violations ``latency / budget - 1`` and ``params / max_params - 1`` so that the
constrained-domination sum of violations weighs them alike.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..arch import Arch
from ..context import Device
from ..costs import arch_costs
from ..errors import HwnasError
from ..runs import METRICS, SEED_ATTR, WORKER_ATTR
from ..space import SearchSpace
from ..trials.workers import Interrupts, worker_id
from .settings import OBJECTIVES, AccuracyFn, LatencyFn, SearchSettings

log = logging.getLogger(__name__)

SURPLUS_ATTR = "surplus"
#: one user attribute {<score column>, latency_ms, params, macs, memory_bytes}; the score's key
#: is the run's score column (naswot_score, val_acc, ...), "accuracy" in runs made before
METRICS_ATTR = "metrics"

__all__ = ["METRICS_ATTR", "SURPLUS_ATTR", "Estimators", "Evaluator", "Metrics", "Objective",
           "PerPrecision", "classifier_warning",
           "arch_costs_fast", "build_estimators"]


@dataclass(frozen=True)
class Metrics:
    score: float  # the accuracy estimator's (its name: the run's score column)
    latency_ms: float
    params: int
    macs: int
    memory_bytes: int

    def objective(self, name: str) -> float:
        return float(getattr(self, OBJECTIVES[name][1]))


#: the search's name for :func:`hwnas.costs.arch_costs`: (params, MACs, peak activation bytes),
#: analytical, cached per piece, no torch
arch_costs_fast = arch_costs


class Evaluator:
    """Arch -> :class:`Metrics` with the injected latency and accuracy functions."""

    def __init__(self, latency_fn: LatencyFn, accuracy_fn: AccuracyFn):
        self.latency_fn = latency_fn
        self.accuracy_fn = accuracy_fn

    def __call__(self, arch: Arch, precision: str | None = None) -> Metrics:
        """``precision``: the trial's choice (``--precision search``), passed on to a
        :class:`PerPrecision` latency function; None for a run of one precision."""
        params, macs, mem = arch_costs(arch)
        lats = self.latency_fn([arch]) if precision is None else \
            self.latency_fn([arch], precision=precision)
        lat = float(np.asarray(lats, dtype=float).reshape(-1)[0])
        acc = float(np.asarray(self.accuracy_fn([arch]), dtype=float).reshape(-1)[0])
        if not (math.isfinite(lat) and math.isfinite(acc)):
            raise HwnasError(f"{arch.to_string()}: non-finite estimate (latency {lat}, "
                             f"score {acc})")
        return Metrics(acc, lat, params, macs, mem)


class PerPrecision:
    """``--precision search``'s latency function: ``fns`` maps precision -> latency
    function; ``(archs, precision=P)`` predicts at P, ``(archs)`` the fastest precision's."""

    def __init__(self, fns: dict[str, LatencyFn]):
        self.fns = dict(fns)

    def __call__(self, archs: Sequence[Arch], precision: str | None = None):
        if precision is not None:
            return self.fns[precision](archs)
        return np.min([np.asarray(f(archs), dtype=float) for f in self.fns.values()], axis=0)


@dataclass
class Estimators:
    latency_fn: LatencyFn
    accuracy_fn: AccuracyFn
    classes: int
    info: dict[str, Any] = field(default_factory=dict)


def build_estimators(settings: SearchSettings, resolution: int, run_dir: Path,
                     device: Device | None = None) -> Estimators:
    """The device's latency predictor and the accuracy estimator of ``settings``; ``device``
    (default: ``settings.device``, loaded) is read once: its table serves the predictor and
    the provenance recorded in the run."""
    from ..accuracy import make_estimator

    dev = device or Device.load(settings.device)
    prec = getattr(settings, "precision", "fp32")
    if prec == "search":
        latency_fn: LatencyFn = PerPrecision({p: dev.predictor(precision=p).predict
                                               for p in ("fp32", "int8")})
    else:
        latency_fn = dev.predictor(precision=prec).predict
    # the supernet estimator scores subnets of the supernet trained on this space
    kw: dict[str, Any] = {"space": settings.space} if (
        settings.accuracy == "supernet" or settings.accuracy.startswith("predictor:")) else {}
    if getattr(settings, "supernet_metric", "accuracy") != "accuracy":
        kw["metric"] = settings.supernet_metric
    from ..accuracy_sources.predictor import is_source, make_source

    if is_source(settings.accuracy):  # measured results: no torch, no data, no cache
        est = make_source(settings.accuracy, space=kw.get("space"))
    else:
        est = make_estimator(settings.accuracy, settings.data, resolution, seed=settings.seed,
                             cache_path=run_dir / "accuracy_cache.json", **kw)
    classes = getattr(est, "classes", None) or getattr(getattr(est, "data", None), "classes", None)
    if not classes:
        from ..data import load_dataset

        classes = load_dataset(settings.data, resolution, settings.seed).classes
    info: dict[str, Any] = {"accuracy_estimator": getattr(est, "name", settings.accuracy)}
    if hasattr(est, "settings"):  # what scored the trials, e.g. which supernet (its id)
        info["accuracy_settings"] = _jsonable(est.settings())
    table = dev.table  # the one the predictor was fitted on
    info["device_provenance"] = dict(table.provenance or {})
    info["latency_statistic"] = table.statistic
    info["latency_precision"] = prec
    try:
        info["device_config"] = _jsonable(dev.config)
    except HwnasError as e:  # no (or a bad) device.json: a table imported or made by hand
        log.debug("no device config for %s: %s", dev.name, e)
    return Estimators(latency_fn, est.score, int(classes), info)


def classifier_warning(dev: Device, space: str, resolution: int, classes: int,
                       precision: str = "fp32") -> str | None:
    """A line saying so when ``dev``'s table has no classifier for ``classes`` near what it
    measured (a 1000-class table and a 10-class search): the block model then extrapolates the
    classifier's latency, by tens of percent on small networks at small inputs (measured on
    mobilenetv2 at 32 px: a 1280x10 classifier predicted 0.045 ms, measured 0.014 ms; the
    predictions of 0.11-0.17 ms networks 30-53 % high, 7-15 % once profiled with 10 classes)."""
    from ..space import load_space

    sp = load_space(space)
    arch = replace(sp.sample(seed=0, n=1, resolution=resolution)[0], classes=classes)
    try:
        notes = dev.predictor(precision=precision).extrapolations(arch)
    except HwnasError:  # a space the table does not cover: the predictions say so, with how
        return None
    for key, why in notes:
        if key.startswith("cls_"):
            return (f"the latency table of {dev.name} has no classifier for {classes} classes "
                    f"({key}: {why}): its latency is extrapolated, off by tens of percent on "
                    f"small networks; measure it with hwnas profile --device {dev.name} "
                    f"--space {space} -r {resolution} --classes {classes}")
    return None


def _jsonable(obj: Any) -> Any:
    try:
        d = asdict(obj)
    except TypeError:
        d = obj
    return json.loads(json.dumps(d, default=str))


class Objective:
    """The Optuna objective of a search: sample an Arch, evaluate it, record its metrics and
    constraints; a trial beyond the ``target`` count is pruned as surplus
    (:mod:`hwnas.trials.workers`)."""

    def __init__(self, space: SearchSpace, resolution: int, classes: int, evaluator: Evaluator,
                 settings: SearchSettings, target: int, score: str | None = None):
        self.space, self.resolution, self.classes = space, resolution, classes
        self.evaluator, self.settings, self.target = evaluator, settings, target
        #: the key of the score in the trial's metrics: the run's score column
        self.score = score or settings.score_column()
        self.wid = worker_id()
        self.interrupts = Interrupts()  # replaced by run_trials', which is installed

    def __call__(self, trial) -> list[float]:
        import optuna
        from optuna.samplers import BaseGASampler
        from optuna.trial import TrialState

        self.interrupts.check()
        trial.set_user_attr(WORKER_ATTR, self.wid)
        ahead = [t for t in trial.study.get_trials(deepcopy=False,
                                                   states=(TrialState.COMPLETE, TrialState.RUNNING))
                 if t.number < trial.number]
        if len(ahead) >= self.target:
            trial.set_user_attr(SURPLUS_ATTR, True)
            raise optuna.TrialPruned(f"{self.target} trials already done or running")
        if SEED_ATTR in trial.user_attrs and isinstance(trial.study.sampler, BaseGASampler):
            trial.relative_params  # noqa: B018 -- gives the seed a GA generation (hwnas.search.seeds)
        arch = replace(self.space.suggest(trial, resolution=self.resolution), classes=self.classes)
        trial.set_user_attr("arch", arch.to_string())
        s = self.settings
        chosen = getattr(s, "precision", "fp32") == "search"
        prec = trial.suggest_categorical("precision", ["fp32", "int8"]) if chosen else \
            getattr(s, "precision", "fp32")
        trial.set_user_attr("precision", prec)
        m = self.interrupts.run(lambda: self.evaluator(arch, prec if chosen else None))
        trial.set_user_attr(METRICS_ATTR, {(self.score if k == "score" else k): getattr(m, k)
                                           for k in METRICS})
        if s.latency_budget_ms is not None:
            trial.set_constraint("latency", m.latency_ms / s.latency_budget_ms - 1.0)
        if s.max_params is not None:
            trial.set_constraint("params", m.params / s.max_params - 1.0)
        return [m.objective(o) for o in s.objectives]
