"""Multi-objective architecture search with Optuna: objectives, constraints, storage, Pareto export.

The search needs two calls (the Once-for-All shape): ``latency_fn(archs) -> ms`` and
``accuracy_fn(archs) -> scores`` (higher is better). :func:`run_search` builds them from a
device's latency predictor and an accuracy estimator, or takes them injected (tests,
benchmarks). Params, MACs and peak activation memory come from :func:`arch_costs_fast`.

A run lives in ``runs/RUN/``:

* ``config.json``  -- every setting, package versions, the device's provenance;
* ``journal.log``  -- the Optuna study (a journal file; any Optuna storage URL instead with
  ``storage=``, e.g. ``sqlite:///...`` or ``postgresql://...`` for several machines);
* ``trials.csv``, ``pareto.csv`` (feasible non-dominated trials), ``winners/*.yaml``.

How trials are counted. The target ``trials`` is a number of COMPLETE trials. A worker
starts a trial only while ``COMPLETE + RUNNING < trials``; a trial that finds, once started,
that ``trials`` earlier trials are complete or running (a race between workers) is PRUNED
with the user attribute ``surplus`` and does not count. A trial left RUNNING by a killed
worker of this machine (its user attribute ``worker`` names host, pid and the pid's start
time) is marked FAIL when the run is launched again, and does not count either; so after a
kill -9 the same command finishes with exactly ``trials`` COMPLETE trials. With an RDB
storage, Optuna's heartbeat also fails trials of workers that died on other machines.

Baseline seeding. Every trial samples the same parameters (the space's
:meth:`~hwnas.space.SearchSpace.params`; ``resolution`` is fixed). A new study is seeded by
``enqueue_trial`` with the space's MobileNetV2-like configurations (all layers present,
kernel/expansion nearest k3e6, no SE, one per width multiplier) and its cheapest one. A
trial whose parameters are all fixed by ``enqueue_trial`` never calls the sampler, and
NSGA-II/III give a trial a generation only from ``sample_relative``: such trials would be
in no generation and never be parents. The objective therefore reads
``trial.relative_params`` for seed trials when the sampler is a ``BaseGASampler``, which
places them in generation 0 (``tests/test_search.py`` checks this).

Constraints are ``trial.set_constraint`` (Optuna 5; ``constraints_func`` is deprecated) with
relative violations ``latency / budget - 1`` and ``params / max_params - 1`` so that the
constrained-domination sum of violations weighs them alike.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import socket
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from .arch import Arch, _num, parse_string
from .errors import HwnasError
from .io import atomic_write_json
from .keys import Piece, arch_pieces
from .paths import DEMO_RESOLUTION, runs_dir
from .runs import (
    JOURNAL,
    METRICS,
    SEED_ATTR,
    WORKER_ATTR,
    Run,
    check_existing_run,
    identity,
    load_run,
    run_path,
    write_tables,
)
from .space import SKIP, SearchSpace, load_space

log = logging.getLogger(__name__)

LatencyFn = Callable[[Sequence[Arch]], Any]
AccuracyFn = Callable[[Sequence[Arch]], Any]

# name -> (direction, trials.csv column, label)
OBJECTIVES: dict[str, tuple[str, str, str]] = {
    "accuracy": ("maximize", "accuracy", "accuracy"),
    "latency": ("minimize", "latency_ms", "latency (ms)"),
    "params": ("minimize", "params", "params"),
    "memory": ("minimize", "memory_bytes", "peak act. memory (bytes)"),
}
SAMPLERS = ("nsga2", "nsga3", "tpe", "gp", "random")
ACCURACY_KINDS = ("zero-cost", "train")
SURPLUS_ATTR = "surplus"
METRICS_ATTR = "metrics"  # one user attribute {accuracy, latency_ms, params, macs, memory_bytes}
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_STALE_UNOWNED_S = 60.0  # a RUNNING trial without a worker attribute older than this is dead


# ---- settings ---------------------------------------------------------------------------------

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

    def __post_init__(self) -> None:
        if isinstance(self.objectives, str):
            self.objectives = parse_objectives(self.objectives)
        self.objectives = tuple(self.objectives)

    def validate(self) -> SearchSettings:
        parse_objectives(",".join(self.objectives))
        if self.sampler not in SAMPLERS:
            raise HwnasError(f"unknown sampler '{self.sampler}' (choose from {', '.join(SAMPLERS)})")
        if self.accuracy not in ACCURACY_KINDS:
            raise HwnasError(f"unknown accuracy estimator '{self.accuracy}' "
                             f"(choose from {', '.join(ACCURACY_KINDS)})")
        if not _RUN_NAME.match(self.name):
            raise HwnasError(f"run name '{self.name}': use letters, digits, '.', '_' and '-' "
                             "(it becomes the folder runs/RUN)")
        if self.trials < 0:
            raise HwnasError(f"--trials must be >= 0, got {self.trials}")
        if self.workers < 1:
            raise HwnasError(f"--workers must be >= 1, got {self.workers}")
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


# ---- costs: params, MACs, peak memory -----------------------------------------------------------

@dataclass(frozen=True)
class Metrics:
    accuracy: float
    latency_ms: float
    params: int
    macs: int
    memory_bytes: int

    def objective(self, name: str) -> float:
        return float(getattr(self, OBJECTIVES[name][1]))


@cache
def _piece_costs(key: str) -> tuple[int, int, int]:
    from .predictor import piece_costs  # analytical: microseconds, no torch module built

    c = piece_costs(Piece.from_key(key))
    return int(c.params), int(c.macs), int(c.peak_bytes)


def arch_costs_fast(arch: Arch) -> tuple[int, int, int]:
    """(params, MACs, peak activation bytes) of ``arch``, summed from cached per-piece counts.

    The same counts as :func:`hwnas.model.arch_costs` (a network is the sequence of its
    pieces; ``tests/test_search.py`` checks the equality) without building the network:
    the predictor's analytical per-piece counts, cached per block key.
    """
    params = macs = peak = 0
    for p in arch_pieces(arch):
        a, b, c = _piece_costs(p.key)
        params, macs, peak = params + a, macs + b, max(peak, c)
    return params, macs, peak


# ---- the space: fixed resolution, seeds, cheapest configuration ------------------------------------

def _layer_choice(choices: list[str], kernel: float, expand: float) -> str:
    real = [c for c in choices if c != SKIP]
    return min(real, key=lambda c: (abs(int(c[1:].split("e")[0]) - kernel),
                                    abs(float(c.split("e")[1]) - expand)))


def cheapest_params(space: SearchSpace, act: str | None = None) -> dict[str, Any]:
    """The configuration with the smallest widths, minimum depths, smallest kernel and
    expansion, no SE (or the smallest), and activation ``act`` where a stage has a choice."""
    p: dict[str, Any] = {}
    for name, choices in space.params():
        if name == "resolution":
            continue
        if name.endswith("_out"):
            p[name] = min(choices)
        elif name.endswith("_se"):
            p[name] = min(choices, key=float)
        elif name.endswith("_act"):
            p[name] = act if act in choices else choices[0]
        else:
            p[name] = SKIP if SKIP in choices else _layer_choice(choices, 0, 0)
    return p


def seed_params(space: SearchSpace) -> list[tuple[str, dict[str, Any]]]:
    """(label, params) of the seed configurations: MobileNetV2-like at each width, cheapest."""
    widths = sorted({w for st in space.stages for w in st.width})
    out: list[tuple[str, dict[str, Any]]] = []
    names = dict(space.params())
    from .arch import make_divisible

    for w in widths:
        p: dict[str, Any] = {}
        for j, st in enumerate(space.stages, 1):
            if f"s{j}_out" in names:
                want = make_divisible(st.out * w, 8) if w in st.width else max(st.outs)
                p[f"s{j}_out"] = min(names[f"s{j}_out"], key=lambda c, want=want: abs(c - want))
            if f"s{j}_se" in names:
                p[f"s{j}_se"] = min(names[f"s{j}_se"], key=float)
            if f"s{j}_act" in names:
                p[f"s{j}_act"] = names[f"s{j}_act"][0]
            for layer in range(st.depth[1]):
                if f"s{j}_l{layer}" in names:
                    p[f"s{j}_l{layer}"] = _layer_choice(names[f"s{j}_l{layer}"], 3, 6)
        out.append((f"mbv2-like-w{_num(w)}", p))
    out.append(("cheapest", cheapest_params(space)))
    seen, unique = set(), []
    for label, p in out:
        k = json.dumps(p, sort_keys=True)
        if k not in seen:
            seen.add(k)
            unique.append((label, p))
    return unique


def cheapest_archs(space: SearchSpace, resolution: int, classes: int) -> list[Arch]:
    acts = sorted({a for st in space.stages for a in st.act})
    return [replace(space.arch_from_params(cheapest_params(space, a), resolution), classes=classes)
            for a in acts]


def default_resolution(space: SearchSpace, device: str | None = None) -> int:
    """The resolution of ``space`` the device's table covers best (the one it was profiled
    at; the demo resolution on a tie), else the demo resolution (or the space's nearest)."""
    if device:
        try:
            from .lut import LatencyTable

            t = LatencyTable.load(device)
            cover = {}
            for r in space.resolutions:
                have, total = t.coverage(space, r)
                cover[r] = have / total if total else 0.0
            best = max(cover.values(), default=0.0)
            if best > 0:
                return min((r for r, c in cover.items() if c == best),
                           key=lambda r: (r != DEMO_RESOLUTION, r))
        except Exception as e:  # no table (yet): fall back
            log.debug("default resolution from the table of %s: %s", device, e)
    if DEMO_RESOLUTION in space.resolutions:
        return DEMO_RESOLUTION
    return min(space.resolutions, key=lambda r: (abs(r - DEMO_RESOLUTION), r))


# ---- storage and samplers --------------------------------------------------------------------------

def open_storage(url: str | None, run_dir: Path):
    """The run's Optuna storage: a journal file in the run folder, or any Optuna storage URL
    (``sqlite:///x.db``, ``postgresql://...``, ``mysql://...``, ``redis://...``, or a path to a
    journal file)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalRedisBackend, JournalStorage

    try:
        if url is None:
            path = run_dir / JOURNAL
            _repair_journal_tail(path)
            return JournalStorage(JournalFileBackend(str(path)))
        if url.startswith("redis://"):
            return JournalStorage(JournalRedisBackend(url))
        if "://" in url:
            # heartbeats let Optuna fail the trials of workers that died on other machines
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return optuna.storages.RDBStorage(url, heartbeat_interval=60, grace_period=180)
        p = Path(url)
        if not p.parent.is_dir():
            raise FileNotFoundError(f"no folder {p.parent}")
        _repair_journal_tail(p)
        return JournalStorage(JournalFileBackend(str(p)))
    except HwnasError:
        raise
    except Exception as e:  # driver missing, bad URL, unreachable server, unwritable file
        msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise HwnasError(f"storage '{url or run_dir / JOURNAL}' cannot be opened: "
                         f"{type(e).__name__}: {msg}") from None


def _repair_journal_tail(path: Path) -> None:
    """Drop an incomplete last line (a writer killed mid-append), under the journal's lock."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    from optuna.storages.journal import JournalFileSymlinkLock

    if Path(str(path) + ".lock").is_symlink():
        log.warning("%s.lock: a lock left by a killed writer? (Optuna breaks it after 30 s if "
                    "no live worker holds it)", path)
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        with open(path, "rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return
            data = path.read_bytes()
            keep = data.rfind(b"\n") + 1
            log.warning("%s: dropping an incomplete last record (%d bytes) left by a killed "
                        "writer", path, len(data) - keep)
            f.truncate(keep)
    finally:
        lock.release()


def make_sampler(name: str, seed: int, population: int = 50):
    import optuna

    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
    if name == "nsga3":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.NSGAIIISampler(population_size=population, seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(10, population // 2))
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=max(10, population // 2))
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise HwnasError(f"unknown sampler '{name}' (choose from {', '.join(SAMPLERS)})")


def hypervolume(points: np.ndarray, directions: Sequence[str], reference: Sequence[float]) -> float:
    """Hypervolume of ``points`` (rows of objective values) w.r.t. ``reference``.

    ``directions`` holds "maximize"/"minimize" per column; points worse than the reference
    in any objective contribute nothing. Wraps Optuna's exact WFG implementation
    (``optuna._hypervolume.compute_hypervolume``, a private helper).
    """
    from optuna._hypervolume import compute_hypervolume

    pts = np.asarray(points, dtype=float).reshape(-1, len(directions))
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    loss, ref = pts * sign, np.asarray(reference, dtype=float) * sign
    loss = loss[np.all(loss <= ref, axis=1)]
    return float(compute_hypervolume(loss, ref)) if len(loss) else 0.0


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
    pts = np.asarray(points, dtype=float).reshape(-1, len(directions))
    loss = pts * np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    keep = np.ones(len(loss), dtype=bool)
    for i in range(len(loss)):
        if keep[i]:
            dom = np.all(loss[i] <= loss, axis=1) & np.any(loss[i] < loss, axis=1)
            keep &= ~dom
    return keep


# ---- evaluation -----------------------------------------------------------------------------------

class Evaluator:
    """Arch -> :class:`Metrics` with the injected latency and accuracy functions."""

    def __init__(self, latency_fn: LatencyFn, accuracy_fn: AccuracyFn):
        self.latency_fn = latency_fn
        self.accuracy_fn = accuracy_fn

    def __call__(self, arch: Arch) -> Metrics:
        params, macs, mem = arch_costs_fast(arch)
        lat = float(np.asarray(self.latency_fn([arch]), dtype=float).reshape(-1)[0])
        acc = float(np.asarray(self.accuracy_fn([arch]), dtype=float).reshape(-1)[0])
        if not (math.isfinite(lat) and math.isfinite(acc)):
            raise HwnasError(f"{arch.to_string()}: non-finite estimate (latency {lat}, "
                             f"accuracy {acc})")
        return Metrics(acc, lat, params, macs, mem)


@dataclass
class Estimators:
    latency_fn: LatencyFn
    accuracy_fn: AccuracyFn
    classes: int
    info: dict[str, Any] = field(default_factory=dict)


def build_estimators(settings: SearchSettings, resolution: int, run_dir: Path) -> Estimators:
    """The device's latency predictor and the accuracy estimator of ``settings``."""
    from .accuracy import make_estimator
    from .predictor import LatencyPredictor

    predictor = LatencyPredictor.for_device(settings.device)
    est = make_estimator(settings.accuracy, settings.data, resolution, seed=settings.seed,
                         cache_path=run_dir / "accuracy_cache.json")
    classes = getattr(est, "classes", None) or getattr(getattr(est, "data", None), "classes", None)
    if not classes:
        from .data import load_dataset

        classes = load_dataset(settings.data, resolution, settings.seed).classes
    info: dict[str, Any] = {"accuracy_estimator": getattr(est, "name", settings.accuracy)}
    try:
        from .lut import LatencyTable

        t = LatencyTable.load(settings.device)
        info["device_provenance"] = dict(t.provenance or {})
        info["latency_statistic"] = getattr(t, "statistic", None)
    except Exception as e:
        log.debug("no table provenance for %s: %s", settings.device, e)
    try:
        from .devices import load_device

        info["device_config"] = _jsonable(load_device(settings.device))
    except Exception as e:
        log.debug("no device config for %s: %s", settings.device, e)
    return Estimators(predictor.predict, est.score, int(classes), info)


def _jsonable(obj: Any) -> Any:
    try:
        d = asdict(obj)
    except TypeError:
        d = obj
    return json.loads(json.dumps(d, default=str))


# ---- run folder --------------------------------------------------------------------------------------

def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for pkg in ("hwnas", "optuna", "torch", "onnxruntime", "scikit-learn", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


# ---- workers ------------------------------------------------------------------------------------------

def _proc_start(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def worker_id() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_proc_start(pid)}"


def _worker_alive(wid: str) -> bool | None:
    """True/False for a worker of this machine, None for another machine's."""
    try:
        host, pid_s, start = wid.rsplit(":", 2)
        pid = int(pid_s)
    except ValueError:
        return None
    if host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return start == "?" or _proc_start(pid) == start


def fail_dead_trials(study) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker died on this machine (or that never got a
    worker attribute and are older than a minute); returns their numbers."""
    from datetime import datetime, timezone

    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    failed = []
    now = datetime.now(timezone.utc)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        wid = t.user_attrs.get(WORKER_ATTR)
        if wid is not None:
            dead = _worker_alive(wid) is False
        else:
            start = t.datetime_start
            if start is not None and start.tzinfo is None:
                start = start.astimezone(timezone.utc)
            dead = start is None or (now - start).total_seconds() > _STALE_UNOWNED_S
        if dead:
            try:
                study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
                failed.append(t.number)
            except UpdateFinishedTrialError:
                pass
    if failed:
        log.info("marked %d trial(s) left running by a killed worker as FAIL: %s", len(failed),
                 ", ".join(map(str, failed)))
    return failed


def _counts(study) -> tuple[int, int]:
    from optuna.trial import TrialState

    ts = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
    done = sum(t.state == TrialState.COMPLETE for t in ts)
    return done, len(ts) - done


class _Objective:
    def __init__(self, space: SearchSpace, resolution: int, classes: int, evaluator: Evaluator,
                 settings: SearchSettings, target: int):
        self.space, self.resolution, self.classes = space, resolution, classes
        self.evaluator, self.settings, self.target = evaluator, settings, target
        self.wid = worker_id()
        self.interrupts = _Interrupts()  # replaced by _work's, which is installed

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
            trial.relative_params  # noqa: B018 -- gives the seed a GA generation (see module doc)
        arch = replace(self.space.suggest(trial, resolution=self.resolution), classes=self.classes)
        trial.set_user_attr("arch", arch.to_string())
        m = self.interrupts.run(lambda: self.evaluator(arch))
        trial.set_user_attr(METRICS_ATTR, {k: getattr(m, k) for k in METRICS})
        s = self.settings
        if s.latency_budget_ms is not None:
            trial.set_constraint("latency", m.latency_ms / s.latency_budget_ms - 1.0)
        if s.max_params is not None:
            trial.set_constraint("params", m.params / s.max_params - 1.0)
        return [m.objective(o) for o in s.objectives]


def _open_study(settings: SearchSettings, run_dir: Path, create: bool = False):
    import optuna

    storage = open_storage(settings.storage, run_dir)
    sampler = make_sampler(settings.sampler, settings.seed, settings.population_size())
    directions = [OBJECTIVES[o][0] for o in settings.objectives]
    try:
        if create:
            study = optuna.create_study(storage=storage, sampler=sampler, study_name=settings.name,
                                        directions=directions, load_if_exists=True)
        else:
            study = optuna.load_study(study_name=settings.name, storage=storage, sampler=sampler)
    except Exception as e:
        if isinstance(e, KeyError) and not create:
            raise HwnasError(f"no study '{settings.name}' in the storage of run "
                             f"'{run_dir.name}'") from None
        msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise HwnasError(f"storage of run '{run_dir.name}': {type(e).__name__}: {msg}") from None
    if [d.name.lower() for d in study.directions] != directions:
        raise HwnasError(f"study '{settings.name}' in that storage has other objectives "
                         f"({', '.join(d.name.lower() for d in study.directions)})")
    return study


class _Interrupts:
    """Ctrl-C (SIGINT) becomes KeyboardInterrupt only while an estimator runs; elsewhere it is
    remembered and raised at the next safe point (a second Ctrl-C raises at once).

    Optuna's journal file lock (``JournalFileSymlinkLock``) is a symlink: a KeyboardInterrupt
    inside a storage write, or while waiting for the lock, can leave it behind or remove
    another process's lock, and every worker then waits out the 30 s grace period. Only the
    main thread can install the handler; elsewhere this does nothing.
    """

    def __init__(self) -> None:
        self.safe = False
        self.pending = False
        self._old: Any = None

    def __enter__(self) -> _Interrupts:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._old is not None:
            import signal

            signal.signal(signal.SIGINT, self._old)
            self._old = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.safe or self.pending:
            raise KeyboardInterrupt
        self.pending = True

    def check(self) -> None:
        if self.pending:
            raise KeyboardInterrupt

    def run(self, fn: Callable[[], Any]) -> Any:
        """Call ``fn`` where a Ctrl-C may interrupt it."""
        self.check()
        self.safe = True
        try:
            return fn()
        finally:
            self.safe = False


def _work(study, objective: _Objective, callbacks: list, watch_parent: bool = False) -> None:
    """Run trials on ``study`` until COMPLETE + RUNNING reaches the target (or, with
    ``watch_parent``, until the launching process is gone)."""
    target = objective.target
    parent = os.getppid() if watch_parent else None

    with _Interrupts() as intr:
        objective.interrupts = intr

        def stop_when_done(st, _trial) -> None:
            done, running = _counts(st)
            orphan = parent is not None and os.getppid() != parent
            if done + running >= target or orphan or intr.pending:
                st.stop()

        done, running = _counts(study)
        if done + running >= target:
            return
        study.optimize(objective, callbacks=[stop_when_done, *callbacks], gc_after_trial=False)
        intr.check()


def seed_study(study, space: SearchSpace) -> None:
    """Enqueue the seed configurations (:func:`seed_params`) once."""
    for label, p in seed_params(space):
        study.enqueue_trial(p, user_attrs={SEED_ATTR: label}, skip_if_exists=True)


def optimize(study, space: SearchSpace, settings: SearchSettings, latency_fn: LatencyFn,
             accuracy_fn: AccuracyFn, *, resolution: int | None = None,
             classes: int | None = None, callbacks: Sequence = ()) -> None:
    """Run the search's objective on any Optuna ``study`` (its storage and sampler as given)
    until ``settings.trials`` trials are COMPLETE or running; no run folder is involved
    (benchmarks, experiments). ``study``'s directions must follow ``settings.objectives``."""
    obj = _Objective(space, resolution or settings.resolution or default_resolution(space),
                     int(classes or space.classes), Evaluator(latency_fn, accuracy_fn), settings,
                     settings.trials)
    _work(study, obj, list(callbacks))


def _worker_main(settings: SearchSettings, run_dir: str, target: int, space_path: str,
                 resolution: int, classes: int, latency_fn, accuracy_fn, errors) -> None:
    """Entry point of a ``--workers`` child process.

    It leaves the terminal's process group: a Ctrl-C reaches only the launcher, which passes
    one SIGINT on to each worker (two would interrupt a storage write, see _Interrupts)."""
    import optuna

    os.setpgrp()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        space = load_space(space_path)
        rd = Path(run_dir)
        if latency_fn is None or accuracy_fn is None:
            est = build_estimators(settings, resolution, rd)
            latency_fn, accuracy_fn = latency_fn or est.latency_fn, accuracy_fn or est.accuracy_fn
        study = _open_study(settings, rd)
        obj = _Objective(space, resolution, classes, Evaluator(latency_fn, accuracy_fn), settings,
                         target)
        _work(study, obj, [], watch_parent=True)
    except HwnasError as e:
        errors.put(str(e))
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


# ---- progress ---------------------------------------------------------------------------------------

class _Progress:
    """tqdm bar: trials done, front size, best value per objective (feasible trials)."""

    def __init__(self, settings: SearchSettings, done: int, enabled: bool):
        from tqdm import tqdm

        self.settings = settings
        self.bar = tqdm(total=settings.trials, initial=min(done, settings.trials),
                        desc=f"search {settings.name}", unit="trial", file=sys.stderr,
                        disable=not enabled, dynamic_ncols=True)
        self.last = 0.0

    def update(self, study, force: bool = False) -> None:
        from optuna.trial import TrialState

        done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        self.bar.n = min(done, self.settings.trials)
        now = time.monotonic()
        if force or now - self.last > 0.5:
            self.last = now
            front = feasible_front(study)
            post = {"front": len(front)}
            for i, o in enumerate(self.settings.objectives):
                if front:
                    vals = [t.values[i] for t in front]
                    best = max(vals) if OBJECTIVES[o][0] == "maximize" else min(vals)
                    post[o] = _fmt_obj(o, best)
            self.bar.set_postfix(post, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def _fmt_obj(o: str, v: float) -> str:
    if o == "latency":
        return f"{v:.2f}ms"
    if o == "params":
        return f"{v / 1e6:.2f}M"
    if o == "memory":
        return f"{v / 2**20:.2f}MiB"
    return f"{v:.4g}"


# ---- export -------------------------------------------------------------------------------------------

def trial_rows(study) -> list[dict[str, Any]]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        cons = t.constraints
        r: dict[str, Any] = {
            "number": t.number, "state": t.state.name,
            SEED_ATTR: t.user_attrs.get(SEED_ATTR, ""),
            "arch": t.user_attrs.get("arch", ""),
            **{k: t.user_attrs.get(METRICS_ATTR, {}).get(k, "") for k in METRICS},
            "feasible": (all(v <= 0 for v in cons.values()) if t.state.name == "COMPLETE" else ""),
            "violation_latency": cons.get("latency", ""),
            "violation_params": cons.get("params", ""),
            "datetime_start": t.datetime_start.isoformat(timespec="seconds") if t.datetime_start else "",
            "duration_s": (round(t.duration.total_seconds(), 3) if t.duration else ""),
            WORKER_ATTR: t.user_attrs.get(WORKER_ATTR, ""),
        }
        if t.user_attrs.get(SURPLUS_ATTR):
            r["state"] = "PRUNED(surplus)"
        for k, v in t.params.items():
            r[f"p_{k}"] = v
        rows.append(r)
    return rows


def pareto_rows(study, objectives: Sequence[str]) -> list[dict[str, Any]]:
    """Feasible non-dominated COMPLETE trials (:func:`feasible_front`), one row per arch (its
    first trial), sorted by the first minimised objective."""
    seen: set[str] = set()
    rows = []
    for t in feasible_front(study):
        a = t.user_attrs.get("arch")
        if not a or a in seen:
            continue
        seen.add(a)
        arch = parse_string(a)
        rows.append({"trial": t.number, "arch": a, "file": f"winners/{arch.file_stem()}.yaml",
                     **{k: t.user_attrs.get(METRICS_ATTR, {}).get(k) for k in METRICS},
                     SEED_ATTR: t.user_attrs.get(SEED_ATTR, "")})
    key = next((OBJECTIVES[o][1] for o in objectives if OBJECTIVES[o][0] == "minimize"), "accuracy")
    rows.sort(key=lambda r: (r[key], r["trial"]))
    return rows


def export_run(study, run_dir: Path, objectives: Sequence[str]) -> list[dict[str, Any]]:
    """Write trials.csv, pareto.csv and winners/*.yaml atomically; returns the Pareto rows."""
    rows = pareto_rows(study, objectives)
    write_tables(run_dir, trial_rows(study), rows)
    return rows


# ---- the search -------------------------------------------------------------------------------------

@dataclass
class SearchResult:
    run_dir: Path
    settings: SearchSettings
    complete: int
    failed: int
    new_trials: int
    elapsed_s: float
    pareto: list[dict[str, Any]]
    feasible: int = 0
    resolution: int = 0
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def trials_per_s(self) -> float:
        return self.new_trials / self.elapsed_s if self.elapsed_s > 0 else 0.0


def run_search(settings: SearchSettings, *, latency_fn: LatencyFn | None = None,
               accuracy_fn: AccuracyFn | None = None, classes: int | None = None,
               progress: bool = True, device_info: dict | None = None) -> SearchResult:
    """Create or continue the run ``runs/<settings.name>`` until ``settings.trials`` trials are
    COMPLETE, then write trials.csv, pareto.csv and winners/ (also on Ctrl-C).

    ``latency_fn``/``accuracy_fn`` replace the device's predictor and the accuracy estimator
    (with ``workers > 1`` they must be picklable: module-level functions); ``classes`` is then
    the class count of the searched Archs (default: the space's).
    """
    import optuna

    settings.validate()
    space = load_space(settings.space)
    resolution = settings.resolution or default_resolution(space, settings.device)
    if resolution not in space.resolutions:
        log.info("resolution %d is not among the space's (%s); searching at %d anyway",
                 resolution, ", ".join(map(str, space.resolutions)), resolution)
    if resolution < space.min_resolution():
        raise HwnasError(f"--resolution {resolution} is below the space's total stride "
                         f"{space.min_resolution()}")
    run_dir = runs_dir() / settings.name
    injected = latency_fn is not None and accuracy_fn is not None
    # refuse a mismatching existing run before anything heavy (classes follow from the data)
    pre = identity(settings, space, resolution, 0)
    check_existing_run(run_dir, pre, settings.storage, skip=("classes",))
    if settings.storage is not None:
        open_storage(settings.storage, run_dir)  # a URL that cannot be opened fails here
    if injected:
        info = dict(device_info or {})
        n_classes = int(classes or space.classes)
    else:
        est = build_estimators(settings, resolution, run_dir)
        latency_fn = latency_fn or est.latency_fn
        accuracy_fn = accuracy_fn or est.accuracy_fn
        info, n_classes = est.info, est.classes
    ident = identity(settings, space, resolution, n_classes)
    old_cfg = check_existing_run(run_dir, ident, settings.storage)
    if old_cfg is not None and settings.storage is None:
        settings.storage = old_cfg.get("storage")
    _check_budgets(settings, space, resolution, n_classes, latency_fn)

    run_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "identity": ident, "settings": asdict(settings), **ident,
        "storage": settings.storage, "storage_resolved": settings.storage or str(run_dir / JOURNAL),
        "study_name": settings.name, "population": settings.population_size(),
        "created": (old_cfg or {}).get("created") or time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": _versions(), "injected_estimators": injected,
        "latency_fn": _qualname(latency_fn), "accuracy_fn": _qualname(accuracy_fn), **info,
    }
    config["settings"]["objectives"] = list(settings.objectives)
    study = _open_study(settings, run_dir, create=True)
    atomic_write_json(run_dir / "config.json", config)  # after the storage opened fine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(settings.objectives))
    for k in ("space", "device", "resolution", "accuracy", "data"):
        study.set_user_attr(k, ident[k])
    fail_dead_trials(study)
    if settings.seed_baselines and not any(
            t.user_attrs.get(SEED_ATTR) is None for t in study.get_trials(deepcopy=False)):
        seed_study(study, space)

    done0, _ = _counts(study)
    objective = _Objective(space, resolution, n_classes, Evaluator(latency_fn, accuracy_fn),
                           settings, settings.trials)
    bar = _Progress(settings, done0, progress)
    t0 = time.monotonic()
    last_export = [t0]

    def on_trial(st, _trial) -> None:
        bar.update(st)
        if time.monotonic() - last_export[0] > 60:
            export_run(st, run_dir, settings.objectives)
            last_export[0] = time.monotonic()

    try:
        if settings.workers == 1:
            _work(study, objective, [on_trial])
        else:
            _run_workers(settings, run_dir, space, resolution, n_classes,
                         latency_fn if injected else None, accuracy_fn if injected else None,
                         study, bar, on_trial)
    finally:
        bar.update(study, force=True)
        bar.close()
        pareto = export_run(study, run_dir, settings.objectives)
    elapsed = time.monotonic() - t0
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    res = SearchResult(
        run_dir=run_dir, settings=settings, complete=len(complete),
        failed=sum(t.state == TrialState.FAIL for t in trials),
        new_trials=len(complete) - done0, elapsed_s=elapsed, pareto=pareto,
        feasible=sum(all(v <= 0 for v in t.constraints.values()) for t in complete),
        resolution=resolution, config=config)
    log.info("run %s: %d complete trials (%d new, %.2f trials/s), %d feasible, front %d",
             settings.name, res.complete, res.new_trials, res.trials_per_s, res.feasible,
             len(pareto))
    return res


def _qualname(fn: Any) -> str:
    f = getattr(fn, "__func__", fn)
    owner = getattr(fn, "__self__", None)
    if owner is not None:
        return f"{type(owner).__module__}.{type(owner).__qualname__}.{f.__name__}"
    return f"{getattr(f, '__module__', '?')}.{getattr(f, '__qualname__', type(f).__name__)}"


def _check_budgets(settings: SearchSettings, space: SearchSpace, resolution: int, classes: int,
                   latency_fn: LatencyFn) -> None:
    if settings.latency_budget_ms is None and settings.max_params is None:
        return
    cheap = cheapest_archs(space, resolution, classes)
    if settings.latency_budget_ms is not None:
        lats = np.asarray(latency_fn(cheap), dtype=float).reshape(-1)
        i = int(np.argmin(lats))
        if lats[i] > settings.latency_budget_ms:
            raise HwnasError(
                f"--latency-budget {_num(settings.latency_budget_ms)}ms is below the cheapest "
                f"arch of {space.name} at {resolution} on {settings.device}: predicted "
                f"{lats[i]:.2f} ms ({cheap[i].to_string()})")
    if settings.max_params is not None:
        params = [arch_costs_fast(a)[0] for a in cheap]
        if min(params) > settings.max_params:
            raise HwnasError(f"--max-params {settings.max_params:,} is below the smallest arch "
                             f"of {space.name}: {min(params):,} params")


def _run_workers(settings, run_dir, space, resolution, classes, latency_fn, accuracy_fn, study,
                 bar, on_trial) -> None:
    import multiprocessing as mp
    import pickle

    try:
        pickle.dumps((latency_fn, accuracy_fn))
    except Exception:
        raise HwnasError("--workers > 1 needs picklable latency/accuracy functions "
                         "(module-level functions)") from None
    ctx = mp.get_context("spawn")
    errors = ctx.Queue()
    procs = [ctx.Process(target=_worker_main, name=f"hwnas-search-{i}",
                         args=(settings, str(run_dir), settings.trials, space.source, resolution,
                               classes, latency_fn, accuracy_fn, errors))
             for i in range(settings.workers)]
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            for p in procs:
                p.join(timeout=1.0 / len(procs))
            on_trial(study, None)
    except KeyboardInterrupt:  # the workers are in their own process group: pass it on, once
        import signal

        for p in procs:
            if p.is_alive() and p.pid:
                os.kill(p.pid, signal.SIGINT)
        for p in procs:
            p.join(timeout=60)
        raise
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join()
    msgs = []
    while not errors.empty():
        msgs.append(errors.get())
    if msgs:
        raise HwnasError(msgs[0])
    bad = [p.exitcode for p in procs if p.exitcode not in (0, None)]
    if bad:
        raise RuntimeError(f"{len(bad)} search worker(s) failed (exit {bad[0]}); see above")


def format_summary(res: SearchResult) -> str:
    """The end-of-search table: the Pareto front and the counts."""
    s = res.settings
    lines = [f"run {s.name}: {res.complete} complete trials ({res.new_trials} new in "
             f"{res.elapsed_s:.1f} s, {res.trials_per_s:.1f}/s), {res.failed} failed, "
             f"{res.feasible} feasible; space {s.space} @ {res.resolution}, device {s.device}, "
             f"sampler {s.sampler}",
             f"Pareto front ({len(res.pareto)} archs; {res.run_dir}/pareto.csv, winners/):"]
    hdr = f"  {'trial':>5}  {'accuracy':>9}  {'latency':>9}  {'params':>8}  {'MACs':>8}  {'memory':>9}  arch"
    lines.append(hdr)
    for r in res.pareto:
        lines.append(f"  {r['trial']:>5}  {r['accuracy']:>9.4g}  {r['latency_ms']:>7.2f}ms  "
                     f"{r['params'] / 1e6:>7.3f}M  {r['macs'] / 1e6:>7.1f}M  "
                     f"{r['memory_bytes'] / 2**20:>6.2f}MiB  {_short(r['arch'])}")
    if not res.pareto:
        lines.append("  (no feasible complete trial yet)")
    return "\n".join(lines)


def _short(s: str, n: int = 60) -> str:
    return s if len(s) <= n else s[: n - 3] + "..."


__all__ = [
    "OBJECTIVES", "SAMPLERS", "Evaluator", "Metrics", "Run", "SearchResult", "SearchSettings",
    "arch_costs_fast", "cheapest_archs", "default_resolution", "export_run", "fail_dead_trials",
    "feasible_front", "format_summary", "hypervolume", "load_run", "make_sampler", "open_storage",
    "optimize", "parse_count", "parse_ms", "parse_objectives", "pareto_mask", "run_path",
    "run_search", "seed_params", "seed_study",
]
