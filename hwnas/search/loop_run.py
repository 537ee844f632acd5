"""``hwnas search --accuracy predictor --train-budget K``: the loop of :mod:`hwnas.search.loop`
on a real space, device and oracle, in a run folder of its own.

The candidates are every Arch of the space (enumerated when it has at most :data:`POOL`
parameter configurations, e.g. NAS-Bench-Macro's 6,561) or a seeded random sample of
:data:`POOL`; their latency is the device's predictor's. "Training" is the oracle:
``table:FILE`` (a lookup in measured results: how the benchmark runs the loop) or ``train``
(the default: the retrain recipe, ``--train-epochs`` on a ``--train-subset`` of ``--data``
minus a held-out validation part, each (Arch, seed) a work item of the retrain queue that
other processes join with ``hwnas retrain RUN --train-only``; :mod:`hwnas.search.loop_train`).
The accuracy predictor is :class:`~hwnas.accuracy_sources.regressor.AccuracyRegressor` on
:class:`~hwnas.accuracy_sources.features.ArchEncoder` features.

The oracle's number is named for what it is (:func:`oracle_column`): ``table_acc`` (looked
up in measured results) or ``val_acc`` (validation accuracy of a short training). The run
folder ``runs/<run>/`` holds ``loop.json`` (settings; ``oracle``: what the number is -- the
recipe, data and split of a training, or the table's file and sha256 --; ``rounds``: per round
how its Archs were chosen, how many, and the k-fold CV Kendall tau of the predictor that chose
them; every trained Arch with that number and its round: the same command resumes after
kill -9, re-training nothing), ``loop-trained.csv`` (each trained Arch: that number,
predicted latency, params, MACs), ``loop-front.csv`` (their Pareto front: that number x
predicted latency) and ``loop-predicted.csv`` (the final predictor's front over all
candidates, ``predicted_acc`` with its uncertainty ``std``: what to train next). With
``--oracle train`` also ``retrain/<recipe id>/`` (each training's result and checkpoint) and
``loop-queue.log`` (the queue, unless ``--storage`` names another). ``hwnas view RUN`` shows
the rounds and the front. Train the front's archs longer with ``hwnas train``.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..arch import Arch
from ..errors import HwnasError
from ..io import atomic_write_json, atomic_write_text
from ..paths import runs_dir
from ..runs import csv_text
from .loop import LoopSettings, pareto_mask, run_loop

log = logging.getLogger(__name__)

POOL = 20_000
FORMAT = "hwnas-loop/1"

__all__ = ["POOL", "LoopRun", "candidates", "run_loop_search"]


@dataclass(frozen=True)
class LoopRun:
    run: str
    space: str
    device: str
    resolution: int
    oracle: str  # table:FILE | train
    data: str = "digits"  # the train oracle's dataset
    epochs: int = 2  # the train oracle's epochs
    budget: int = 100
    rounds: int = LoopSettings(2).rounds
    seed: int = 0
    subset: int | None = 5000  # the train oracle's training images (None: all)
    storage: str | None = None  # the train oracle's queue (None: runs/RUN/loop-queue.log)

    def identity(self) -> dict:
        """The settings a resumed run must share (the budget may grow; the queue's storage
        is where the work is shared, not what it means)."""
        d = asdict(self)
        d.pop("storage")
        return d


def candidates(space, resolution: int, pool: int = POOL, seed: int = 0) -> list[Arch]:
    """Every distinct Arch of ``space`` if it has at most ``pool`` configurations, else a seeded
    random sample of ``pool`` distinct ones."""
    params = space.params()
    out: dict[str, Arch] = {}
    if space.size() <= pool:
        names = [n for n, _ in params]
        for combo in itertools.product(*(c for _, c in params)):
            a = space.arch_from_params(dict(zip(names, combo, strict=True)), resolution)
            out.setdefault(a.to_string(), a)
    else:
        for a in space.sample(seed, pool, resolution):
            out.setdefault(a.to_string(), a)
    return list(out.values())


def _oracle(cfg: LoopRun, run_dir: Path, url: str | None = None, progress: bool = True):
    """The oracle of ``cfg``: a :class:`TableEstimator`, or the queue's
    :class:`~hwnas.search.loop_train.QueueOracle` on the storage ``url`` (None: cfg's)."""
    kind, _, path = cfg.oracle.partition(":")
    if kind == "table" and path:
        from ..accuracy_sources.results import TableEstimator

        return TableEstimator(path)
    if cfg.oracle == "train":
        from .loop_train import QueueOracle, queue_storage

        if isinstance(cfg.subset, bool) or (cfg.subset is not None and (
                not isinstance(cfg.subset, int) or cfg.subset < 1)):
            raise HwnasError(f"--train-subset must be a positive integer, got {cfg.subset!r}")
        if isinstance(cfg.epochs, bool) or not isinstance(cfg.epochs, int) or cfg.epochs < 1:
            raise HwnasError(f"--train-epochs must be an integer >= 1, got {cfg.epochs!r}")
        return QueueOracle(cfg.run, run_dir, cfg.data, cfg.resolution, cfg.epochs, cfg.subset,
                           cfg.seed, url or queue_storage(cfg.storage, run_dir), progress)
    raise HwnasError(f"--oracle {cfg.oracle!r}: expected table:FILE or train")


def _oracle_info(oracle) -> dict:
    """loop.json's ``oracle``: what a training is (the queue oracle's recipe, data, split and
    queue; the table's file, format and sha256)."""
    if hasattr(oracle, "info"):
        return oracle.info()
    return {"kind": "table", "column": "table_acc", **oracle.settings()}


def _cv_tau(X: np.ndarray, y: np.ndarray, seed: int) -> float | None:
    """5-fold CV Kendall tau of the loop's predictor on the archs trained so far (None below
    5 of them)."""
    from ..accuracy_sources.regressor import AccuracyRegressor, kendall_tau, out_of_fold

    if len(y) < 5:
        return None
    oof, _ = out_of_fold(lambda: AccuracyRegressor(random_state=seed), X, y, 5, seed)
    return round(kendall_tau(oof, y), 4)


def oracle_column(oracle: str) -> str:
    """The column of an oracle's number: ``table_acc`` (looked up in measured results) or
    ``val_acc`` (validation accuracy of a short training); hwnas.runs.score_column."""
    from ..runs import score_column

    return score_column(oracle)


def _csv(rows: list[dict]) -> str:
    """CSV text of ``rows``, their first row's keys as the columns ('' for none)."""
    return csv_text(rows, list(rows[0]), extra=False) if rows else ""


def run_loop_search(cfg: LoopRun, progress: bool = True) -> dict:
    """Run (or resume) the loop; returns a summary dict (also the ``--json`` answer)."""
    from ..accuracy_sources.features import ArchEncoder
    from ..accuracy_sources.regressor import AccuracyRegressor
    from ..context import Device
    from ..costs import arch_costs
    from ..space import load_space

    t0 = time.monotonic()
    space = load_space(cfg.space)
    settings = LoopSettings(cfg.budget, cfg.rounds, seed=cfg.seed).validate()
    run_dir = runs_dir() / cfg.run
    state_file = run_dir / "loop.json"
    want = {"format": FORMAT, "settings": cfg.identity()}
    done: list[dict] = []
    rounds: list[dict] = []
    url = None  # the queue's storage of a resumed run
    if state_file.is_file():
        import json

        try:
            old = json.loads(state_file.read_text())
        except (OSError, ValueError) as e:
            raise HwnasError(f"{state_file}: unreadable ({e})); remove it to start again") from None
        # settings added since a run began take their defaults
        base = LoopRun(cfg.run, cfg.space, cfg.device, cfg.resolution, cfg.oracle).identity()
        was = {**base, **old.get("settings", {}), "budget": cfg.budget}
        was.pop("storage", None)
        if old.get("format") != FORMAT or was != want["settings"]:
            raise HwnasError(f"run '{cfg.run}' was started with other settings "
                             f"({state_file}); choose another --run name")
        done = list(old.get("trained", []))
        rounds = list(old.get("rounds", []))
        if cfg.storage is None:
            url = ((old.get("oracle") or {}).get("queue") or {}).get("storage")
    elif run_dir.exists() and any(run_dir.iterdir()):
        raise HwnasError(f"{run_dir} holds another run; choose another --run name")
    pool = candidates(space, cfg.resolution, seed=cfg.seed)
    index = {a.to_string(): i for i, a in enumerate(pool)}
    lat = np.asarray(Device.of(cfg.device).predictor().predict(pool), float)
    oracle = _oracle(cfg, run_dir, url, progress)
    want["oracle"] = _oracle_info(oracle)
    col = oracle_column(cfg.oracle)  # what the oracle's number is: table_acc or val_acc
    X = ArchEncoder().fit_transform(pool)
    trained: list[dict] = [d for d in done if d["arch"] in index]
    log.debug("%s: %d candidates of %s at %d px; %d trained before; budget %d in %d rounds",
             cfg.run, len(pool), space.name, cfg.resolution, len(trained), cfg.budget,
             cfg.rounds + 1)

    def save() -> None:
        atomic_write_json(state_file, {**want, "rounds": rounds, "trained": trained})

    now: dict = {"round": 0, "cv": None}

    def on_pick(r: int, pick: list[int]) -> None:
        now["round"] = r
        log.debug("round %d: training %d arch(s)", r, len(pick))

    def train(idx: list[int]) -> list[float]:
        acc = oracle.score([pool[i] for i in idx])
        for i, a in zip(idx, acc, strict=True):
            trained.append({"arch": pool[i].to_string(), col: float(a),
                            "round": now["round"]})
        save()  # after every batch: a kill loses at most the batch in flight
        return acc

    def fit(idx: list[int], y: list[float]):
        y = np.asarray(y, float)
        now["cv"] = _cv_tau(X[idx], y, cfg.seed)
        m = AccuracyRegressor(random_state=cfg.seed).fit(X[idx], y)
        return lambda j: m.predict(X[j], return_std=True)

    def on_round(r: int, res) -> None:
        info = dict(res.rounds[-1])
        if info["how"] != "latency-spread":
            info["cv_kendall_tau"] = now["cv"]  # of the predictor that chose this round
        rounds.append(info)
        save()
        if progress:
            log.info("round %d: %d trained", r, len(res.trained))

    if hasattr(oracle, "queue"):  # before the first training: a killed first round resumes
        save()  # (its queue and results are in the folder); a table's bad lookup writes nothing
    res = run_loop(lat, train, fit, settings,
                   done=[(index[d["arch"]], d.get(col, d.get("accuracy"))) for d in trained],
                   on_round=on_round, on_pick=on_pick)
    idx = np.asarray(res.trained)
    acc = np.asarray(res.accuracy, float)
    rows = []
    for i, a, d in zip(idx, acc, trained, strict=True):
        c = arch_costs(pool[i])
        rows.append({"arch": pool[i].to_string(), col: round(float(a), 6),
                     "latency_ms": round(float(lat[i]), 6), "params": c.params, "macs": c.macs,
                     "round": d["round"]})
    front = [rows[k] for k in np.flatnonzero(pareto_mask(acc, lat[idx]))]
    front.sort(key=lambda r: r["latency_ms"])
    model = fit(list(idx), list(acc))
    want["predictor"] = {"trained": len(rows), "cv_kendall_tau": now["cv"], "cv_folds": 5}
    save()  # the final predictor's CV, beside the rounds
    mean, std = model(np.arange(len(pool)))
    pm = pareto_mask(mean, lat)
    predicted = [{"arch": pool[i].to_string(), "predicted_acc": round(float(mean[i]), 6),
                  "std": round(float(std[i]), 6), "latency_ms": round(float(lat[i]), 6),
                  "trained": pool[i].to_string() in {r["arch"] for r in rows}}
                 for i in sorted(np.flatnonzero(pm), key=lambda i: lat[i])]
    atomic_write_text(run_dir / "loop-trained.csv", _csv(rows))
    atomic_write_text(run_dir / "loop-front.csv", _csv(front))
    atomic_write_text(run_dir / "loop-predicted.csv", _csv(predicted))
    return {"run": cfg.run, "folder": str(run_dir), "candidates": len(pool),
            "trained": len(rows), "front": front, "score_column": col, "rounds": len(res.rounds),
            "oracle": want["oracle"], "cv_kendall_tau": now["cv"],
            "seconds": round(time.monotonic() - t0, 1)}
