"""``hwnas search --accuracy predictor --train-budget K``: the loop of :mod:`hwnas.search.loop`
on a real space, device and oracle, in a run folder of its own.

The candidates are every Arch of the space (enumerated when it has at most :data:`POOL`
parameter configurations, e.g. NAS-Bench-Macro's 6,561) or a seeded random sample of
:data:`POOL`; their latency is the device's predictor's. "Training" is the oracle:
``table:FILE`` (a lookup in measured results: how the benchmark runs the loop) or ``train``
(the project's training recipe, a short training per Arch scored on the validation part,
cached in the run folder). The accuracy predictor is :class:`hwnas.accuracy_sources.
AccuracyRegressor` on :class:`~hwnas.accuracy_sources.ArchEncoder` features.

The oracle's number is named for what it is (:func:`oracle_column`): ``table_acc`` (looked
up in measured results) or ``val_acc`` (validation accuracy of a short training). The run
folder ``runs/<run>/`` holds ``loop.json`` (settings and every trained Arch with that number
and its round: the same command resumes after kill -9, re-training nothing),
``loop-trained.csv`` (each trained Arch: that number, predicted latency, params, MACs),
``loop-front.csv`` (their Pareto front: that number x predicted latency) and
``loop-predicted.csv`` (the final predictor's front over all candidates, ``predicted_acc``
with its uncertainty ``std``: what to train next). Train the front's archs longer with ``hwnas train``.
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


def _oracle(cfg: LoopRun, run_dir: Path):
    kind, _, path = cfg.oracle.partition(":")
    if kind == "table" and path:
        from ..accuracy_sources.results import TableEstimator

        return TableEstimator(path)
    if cfg.oracle == "train":
        from ..accuracy import make_estimator

        return make_estimator("train", cfg.data, cfg.resolution, cfg.seed,
                              cache_path=run_dir / "accuracy-cache.json", epochs=cfg.epochs)
    raise HwnasError(f"--oracle {cfg.oracle!r}: expected table:FILE or train")


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
    want = {"format": FORMAT, "settings": asdict(cfg)}
    done: list[dict] = []
    if state_file.is_file():
        import json

        try:
            old = json.loads(state_file.read_text())
        except (OSError, ValueError) as e:
            raise HwnasError(f"{state_file}: unreadable ({e}); remove it to start again") from None
        if old.get("format") != FORMAT or old.get("settings", {}) | {"budget": cfg.budget} \
                != want["settings"]:
            raise HwnasError(f"run '{cfg.run}' was started with other settings "
                             f"({state_file}); choose another --run name")
        done = list(old.get("trained", []))
    elif run_dir.exists() and any(run_dir.iterdir()):
        raise HwnasError(f"{run_dir} holds another run; choose another --run name")
    pool = candidates(space, cfg.resolution, seed=cfg.seed)
    index = {a.to_string(): i for i, a in enumerate(pool)}
    lat = np.asarray(Device.of(cfg.device).predictor().predict(pool), float)
    oracle = _oracle(cfg, run_dir)
    col = oracle_column(cfg.oracle)  # what the oracle's number is: table_acc or val_acc
    X = ArchEncoder().fit_transform(pool)
    trained: list[dict] = [d for d in done if d["arch"] in index]
    log.debug("%s: %d candidates of %s at %d px; %d trained before; budget %d in %d rounds",
             cfg.run, len(pool), space.name, cfg.resolution, len(trained), cfg.budget,
             cfg.rounds + 1)

    def save() -> None:
        atomic_write_json(state_file, {**want, "trained": trained})

    round_now = [0]

    def train(idx: list[int]) -> list[float]:
        acc = oracle.score([pool[i] for i in idx])
        for i, a in zip(idx, acc, strict=True):
            trained.append({"arch": pool[i].to_string(), col: float(a),
                            "round": round_now[0]})
        save()  # after every batch: a kill loses at most the batch in flight
        return acc

    def fit(idx: list[int], y: list[float]):
        m = AccuracyRegressor(random_state=cfg.seed).fit(X[idx], np.asarray(y, float))
        return lambda j: m.predict(X[j], return_std=True)

    def on_round(r: int, res) -> None:
        round_now[0] = r + 1
        if progress:
            log.info("round %d: %d trained", r, len(res.trained))

    res = run_loop(lat, train, fit, settings,
                   done=[(index[d["arch"]], d.get(col, d.get("accuracy"))) for d in trained],
                   on_round=on_round)
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
            "seconds": round(time.monotonic() - t0, 1)}
