"""The search run: :func:`run_search` creates or continues ``runs/RUN`` (settings, identity
check, storage, seeds, the workers), shows progress and exports the run's tables
(:func:`export_run`); :func:`optimize` runs the same objective on any Optuna study."""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..arch import num_str, parse_string
from ..context import Device
from ..errors import HwnasError
from ..paths import runs_dir
from ..runs import (
    JOURNAL,
    LEGACY_SCORE,
    METRICS,
    SEED_ATTR,
    WORKER_ATTR,
    RunConfig,
    check_existing_run,
    identity,
    write_tables,
)
from ..space import SearchSpace, load_space
from ..trials.storage import (
    check_journal,
    check_storage_url,
    open_storage,
    resolve_storage_url,
    retry_storage,
    seed_lock,
    worker_seed,
)
from ..trials.workers import (
    WORKER_ENV,
    count_trials,
    reap_dead_trials,
    record_worker,
    run_trials,
    worker_name,
)
from .objective import (
    METRICS_ATTR,
    SURPLUS_ATTR,
    Estimators,
    Evaluator,
    Objective,
    arch_costs_fast,
    build_estimators,
    classifier_warning,
)
from .pareto import feasible_front
from .seeds import cheapest_archs, default_resolution, seed_study
from .settings import OBJECTIVES, AccuracyFn, LatencyFn, SearchSettings, objective_column
from .study import open_study

log = logging.getLogger(__name__)

__all__ = ["SearchResult", "export_run", "format_summary", "optimize", "pareto_rows",
           "run_search", "trial_rows"]


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
    config: RunConfig = field(default_factory=RunConfig)

    @property
    def trials_per_s(self) -> float:
        return self.new_trials / self.elapsed_s if self.elapsed_s > 0 else 0.0


def run_search(settings: SearchSettings, *, latency_fn: LatencyFn | None = None,
               accuracy_fn: AccuracyFn | None = None, classes: int | None = None,
               progress: bool = True, device_info: dict | None = None,
               worker: str | None = None) -> SearchResult:
    """Create or continue the run ``runs/<settings.name>`` until ``settings.trials`` trials are
    COMPLETE, then write trials.csv, pareto.csv and winners/ (also on Ctrl-C).

    ``latency_fn``/``accuracy_fn`` replace the device's predictor and the accuracy estimator
    (with ``workers > 1`` they must be picklable: module-level functions); ``classes`` is then
    the class count of the searched Archs (default: the space's). With ``progress=False``
    Optuna's per-trial INFO lines are silenced too (its verbosity is restored afterwards).

    Several processes, on one machine or many, may run the same run at once on one shared
    storage (``settings.storage``): each samples with its own seed, derived from
    ``settings.seed`` and ``worker`` (default :func:`~hwnas.trials.workers.worker_name`:
    ``HWNAS_WORKER_ID``, else host and pid); the seed trials are enqueued once; together they
    end with exactly ``settings.trials`` COMPLETE trials, also when one of them is killed.
    """
    import optuna

    verbosity = optuna.logging.get_verbosity()
    if not progress and verbosity < optuna.logging.WARNING:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return _run_search(settings, latency_fn, accuracy_fn, classes, progress, device_info,
                           worker)
    finally:
        optuna.logging.set_verbosity(verbosity)


def _run_search(settings: SearchSettings, latency_fn: LatencyFn | None,
                accuracy_fn: AccuracyFn | None, classes: int | None, progress: bool,
                device_info: dict | None, worker: str | None) -> SearchResult:
    settings.validate()
    check_storage_url(settings.storage)  # a missing database driver: one line, before any work
    space = load_space(settings.space)
    injected = latency_fn is not None and accuracy_fn is not None
    # the device is read once: its table gives the resolution, the predictor and provenance
    dev = settings.device if injected else Device.load(settings.device)
    resolution = _resolution(settings, space, dev)
    run_dir = runs_dir() / settings.name
    storage = _check_run_folder(settings, space, resolution, run_dir)
    est = _estimators(settings, resolution, run_dir, dev, latency_fn, accuracy_fn,
                      classes or space.classes, device_info, injected)
    ident = identity(settings, space, resolution, est.classes)
    old_cfg = check_existing_run(run_dir, ident, settings.storage)
    if old_cfg is not None and settings.storage is None:
        settings.storage = old_cfg.storage
    _check_budgets(settings, space, resolution, est.classes, est.latency_fn)

    run_dir.mkdir(parents=True, exist_ok=True)
    score = settings.score_column(injected)  # what the score is: its column, its metric name
    config = _run_config(settings, ident, old_cfg, est, injected, run_dir, score)
    if storage is None:  # the run's journal, a storage from its config, a SQLite file in it
        storage = open_storage(settings.storage, run_dir)
    name = worker_name(worker)
    sampler_seed = worker_seed(settings.seed, name)
    study = open_study(settings, run_dir, create=True, sampler_seed=sampler_seed, storage=storage)
    config.write(run_dir)  # after the storage opened fine
    _prepare_study(study, settings, space, ident, score, storage, run_dir, name, sampler_seed)

    done0, _ = count_trials(study)
    objective = Objective(space, resolution, est.classes,
                          Evaluator(est.latency_fn, est.accuracy_fn), settings, settings.trials,
                          score)
    t0 = time.monotonic()
    pareto = _search_trials(study, objective, settings, run_dir, space, resolution, est,
                            injected, done0, progress, score, worker)
    res = _result(study, settings, run_dir, done0, time.monotonic() - t0, pareto, resolution,
                  config)
    log.info("run %s: %d complete trials (%d new, %.2f trials/s), %d feasible, front %d",
             settings.name, res.complete, res.new_trials, res.trials_per_s, res.feasible,
             len(pareto))
    return res


def _resolution(settings: SearchSettings, space: SearchSpace, dev: Device | str) -> int:
    """The resolution searched: asked for, else the device table's / the space's default.
    Above the space's largest resolution is refused; below its smallest is allowed down to
    the total stride (e.g. 32 px for small images such as Fashion-MNIST's)."""
    resolution = settings.resolution or default_resolution(space, dev)
    lo, hi = space.min_resolution(), max(space.resolutions)
    if not 0 < resolution <= hi:
        raise HwnasError(f"--resolution {resolution} is outside the resolutions of space "
                         f"{space.name} ({lo}..{hi})")
    if resolution not in space.resolutions:
        log.info("resolution %d is not among the space's (%s); searching at %d anyway",
                 resolution, ", ".join(map(str, space.resolutions)), resolution)
    if resolution < space.min_resolution():
        raise HwnasError(f"--resolution {resolution} is below the space's total stride "
                         f"{space.min_resolution()}")
    return resolution


def _check_run_folder(settings: SearchSettings, space: SearchSpace, resolution: int,
                      run_dir: Path):
    """Refuse an existing run made with other settings, or a journal that is not one, before
    anything heavy (the class count, which follows from the data, is checked later); returns
    the storage ``settings.storage`` names when it is outside the run folder (opened here, so
    a URL that cannot be opened fails now), else None."""
    pre = identity(settings, space, resolution, 0)
    old_cfg = check_existing_run(run_dir, pre, settings.storage, skip=("classes",))
    journal = settings.storage or (old_cfg.storage if old_cfg is not None else None)
    if journal is None or "://" not in journal:
        # a journal file: is it one? (only read; repaired later once known to be a journal)
        check_journal(run_dir / JOURNAL if journal is None else Path(journal))
    if settings.storage is not None and not _inside(settings.storage, run_dir):
        return open_storage(settings.storage, run_dir)
    return None


def _estimators(settings: SearchSettings, resolution: int, run_dir: Path, dev: Device | str,
                latency_fn: LatencyFn | None, accuracy_fn: AccuracyFn | None, classes: int,
                device_info: dict | None, injected: bool) -> Estimators:
    """The trials' latency and accuracy functions: the caller's (``injected``: both given,
    ``classes`` and ``device_info`` theirs too), else the device's predictor and the accuracy
    estimator of ``settings`` (either one replaced by the caller's when given)."""
    if injected:
        return Estimators(latency_fn, accuracy_fn, int(classes), dict(device_info or {}))
    est = build_estimators(settings, resolution, run_dir, dev)
    # here, once, not in build_estimators: each --workers process builds its own estimators
    warning = classifier_warning(dev, settings.space, resolution, est.classes,
                                 "fp32" if settings.precision == "search" else settings.precision)
    if warning:
        log.warning("%s", warning)
        est.info["latency_warning"] = warning
    return replace(est, latency_fn=latency_fn or est.latency_fn,
                   accuracy_fn=accuracy_fn or est.accuracy_fn)


def _run_config(settings: SearchSettings, ident: dict[str, Any], old: RunConfig | None,
                est: Estimators, injected: bool, run_dir: Path, score: str) -> RunConfig:
    """What config.json says about this run (its creation time kept when it continues)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return RunConfig(
        identity=ident, settings={**asdict(settings), "objectives": list(settings.objectives)},
        **ident, storage=settings.storage,
        storage_resolved=_resolved(settings.storage, run_dir), study_name=settings.name,
        population=settings.population_size(), created=(old.created if old else None) or now,
        updated=now, versions=_versions(), injected_estimators=injected,
        latency_fn=_qualname(est.latency_fn), accuracy_fn=_qualname(est.accuracy_fn),
        score_column=score).with_info(est.info)


def _prepare_study(study, settings: SearchSettings, space: SearchSpace, ident: dict[str, Any],
                   score: str, storage, run_dir: Path, name: str, sampler_seed: int) -> None:
    """Name the study's metrics and attributes, record this worker, fail the trials of dead
    processes and enqueue the seed trials."""
    import optuna

    def set_attrs() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([objective_column(o, score) for o in settings.objectives])
        for k in ("space", "device", "resolution", "accuracy", "data"):
            study.set_user_attr(k, ident[k])

    retry_storage(set_attrs, "study attributes")  # N processes may set them at once
    if settings.workers == 1:
        record_worker(study, name, sampler_seed)
    reap_dead_trials(study)
    if settings.seed_baselines:
        # new seeds, and again those whose trial failed: looked at and enqueued under a lock
        # that every process of this study, on any machine, takes
        with seed_lock(storage, settings.storage, run_dir, settings.name):
            seed_study(study, space)


def _search_trials(study, objective: Objective, settings: SearchSettings, run_dir: Path,
                   space: SearchSpace, resolution: int, est: Estimators, injected: bool,
                   done0: int, progress: bool, score: str,
                   worker: str | None) -> list[dict[str, Any]]:
    """Run the trials (here, or in ``settings.workers`` processes) with a progress bar,
    exporting the run's tables every minute and at the end (also on Ctrl-C); returns the
    Pareto rows."""
    bar = _Progress(settings, done0, progress, score)
    last_export = [time.monotonic()]

    def on_trial(st, _trial) -> None:
        bar.update(st)
        if time.monotonic() - last_export[0] > 60:
            export_run(st, run_dir, settings.objectives, score)
            last_export[0] = time.monotonic()

    try:
        if settings.workers == 1:
            run_trials(study, objective, [on_trial])
        else:
            _run_workers(settings, run_dir, space, resolution, est.classes,
                         est.latency_fn if injected else None,
                         est.accuracy_fn if injected else None, study, bar, on_trial, worker)
    finally:
        bar.update(study, force=True)
        bar.close()
        pareto = export_run(study, run_dir, settings.objectives, score)
    return pareto


def _result(study, settings: SearchSettings, run_dir: Path, done0: int, elapsed: float,
            pareto: list[dict[str, Any]], resolution: int, config: RunConfig) -> SearchResult:
    """The counts of the study's trials once the search stopped."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    return SearchResult(
        run_dir=run_dir, settings=settings, complete=len(complete),
        failed=sum(t.state == TrialState.FAIL for t in trials),
        new_trials=len(complete) - done0, elapsed_s=elapsed, pareto=pareto,
        feasible=sum(all(v <= 0 for v in t.constraints.values()) for t in complete),
        resolution=resolution, config=config)


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
                f"--latency-budget {num_str(settings.latency_budget_ms)}ms is below the cheapest "
                f"arch of {space.name} at {resolution} on {settings.device}: predicted "
                f"{lats[i]:.2f} ms ({cheap[i].to_string()})")
    if settings.max_params is not None:
        params = [arch_costs_fast(a)[0] for a in cheap]
        if min(params) > settings.max_params:
            raise HwnasError(f"--max-params {settings.max_params:,} is below the smallest arch "
                             f"of {space.name}: {min(params):,} params")


def _inside(url: str, run_dir: Path) -> bool:
    """A SQLite URL whose file is in the run folder (not to be created before the run is)."""
    r = resolve_storage_url(url, run_dir) or ""
    return r.startswith("sqlite") and str(run_dir.absolute()) in r


def _resolved(url: str | None, run_dir: Path) -> str:
    """The storage as every process opens it: the journal file's absolute path, or the URL
    with a relative SQLite path resolved against the run folder."""
    if url is None:
        return str((run_dir / JOURNAL).absolute())
    if "://" not in url:
        return str(Path(url).absolute())
    return resolve_storage_url(url, run_dir) or url


def _run_workers(settings, run_dir, space, resolution, classes, latency_fn, accuracy_fn, study,
                 bar, on_trial, worker=None) -> None:
    import multiprocessing as mp
    import pickle

    try:
        pickle.dumps((latency_fn, accuracy_fn))
    except Exception:
        raise HwnasError("--workers > 1 needs picklable latency/accuracy functions "
                         "(module-level functions)") from None
    ctx = mp.get_context("spawn")
    base = worker or os.environ.get(WORKER_ENV)  # named workers: one name (and seed) per child
    errors = ctx.Queue()
    procs = [ctx.Process(target=_worker_main, name=f"hwnas-search-{i}",
                         args=(settings, str(run_dir), settings.trials, space.source, resolution,
                               classes, latency_fn, accuracy_fn, errors,
                               f"{base}/{i}" if base else None, os.getpid()))
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


def optimize(study, space: SearchSpace, settings: SearchSettings, latency_fn: LatencyFn,
             accuracy_fn: AccuracyFn, *, resolution: int | None = None,
             classes: int | None = None, callbacks: Sequence = ()) -> None:
    """Run the search's objective on any Optuna ``study`` (its storage and sampler as given)
    until ``settings.trials`` trials are COMPLETE or running; no run folder is involved
    (benchmarks, experiments). ``study``'s directions must follow ``settings.objectives``."""
    obj = Objective(space, resolution or settings.resolution or default_resolution(space),
                     int(classes or space.classes), Evaluator(latency_fn, accuracy_fn), settings,
                     settings.trials)
    run_trials(study, obj, list(callbacks))


def _worker_main(settings: SearchSettings, run_dir: str, target: int, space_path: str,
                 resolution: int, classes: int, latency_fn, accuracy_fn, errors,
                 worker: str | None = None, launcher: int | None = None) -> None:
    """Entry point of a ``--workers`` child process.

    It leaves the terminal's process group: a Ctrl-C reaches only the launcher, which passes
    one SIGINT on to each worker (two would interrupt a storage write, see hwnas.trials.workers.Interrupts).
    It stops once its ``launcher`` (that process's PID) is gone -- also when the launcher died
    before this worker started, when its parent is already another process."""
    import optuna

    os.setpgrp()
    if launcher is not None and os.getppid() != launcher:
        return  # the launcher died while this worker started
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        space = load_space(space_path)
        rd = Path(run_dir)
        injected = latency_fn is not None and accuracy_fn is not None
        score = settings.score_column(injected)
        if latency_fn is None or accuracy_fn is None:
            est = build_estimators(settings, resolution, rd)
            latency_fn, accuracy_fn = latency_fn or est.latency_fn, accuracy_fn or est.accuracy_fn
        name = worker_name(worker)
        sampler_seed = worker_seed(settings.seed, name)
        study = open_study(settings, rd, sampler_seed=sampler_seed)
        record_worker(study, name, sampler_seed)
        obj = Objective(space, resolution, classes, Evaluator(latency_fn, accuracy_fn), settings,
                         target, score)
        run_trials(study, obj, [], watch_parent=launcher or True)
    except HwnasError as e:
        errors.put(str(e))
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for pkg in ("hwnas", "optuna", "torch", "onnxruntime", "scikit-learn", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


# ---- progress ---------------------------------------------------------------------------------------

class _Progress:
    """tqdm bar: trials done, front size, best value per objective (feasible trials)."""

    def __init__(self, settings: SearchSettings, done: int, enabled: bool, score: str = "score"):
        from tqdm import tqdm

        self.settings, self.score = settings, score
        self.bar = tqdm(total=settings.trials, initial=min(done, settings.trials),
                        desc=f"search {settings.name}", unit="trial", file=sys.stderr,
                        disable=None if enabled else True, dynamic_ncols=True)
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
                    post[self.score if o == "accuracy" else o] = _fmt_obj(o, best)
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

def _metrics(t, score: str, missing: Any = None) -> dict[str, Any]:
    """A trial's metrics, its score under ``score`` (kept as "accuracy" by runs made before)."""
    m = t.user_attrs.get(METRICS_ATTR, {})
    out = {k: m.get(k, missing) for k in METRICS if k != "score"}
    v = m.get(score, m.get("score", m.get(LEGACY_SCORE, missing)))
    return {score: v, **out}


def trial_rows(study, score: str = "score") -> list[dict[str, Any]]:
    """One row per trial (trials.csv); ``score``: the run's score column."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        cons = t.constraints
        r: dict[str, Any] = {
            "number": t.number, "state": t.state.name,
            SEED_ATTR: t.user_attrs.get(SEED_ATTR, ""),
            "arch": t.user_attrs.get("arch", ""),
            "precision": t.user_attrs.get("precision", "fp32"),
            **_metrics(t, score, ""),
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


def pareto_rows(study, objectives: Sequence[str], score: str = "score") -> list[dict[str, Any]]:
    """Feasible non-dominated COMPLETE trials (:func:`feasible_front`), one row per arch (its
    first trial), sorted by the first minimised objective; ``score``: the score column."""
    seen: set[tuple[str, str]] = set()
    rows = []
    for t in feasible_front(study):
        a, prec = t.user_attrs.get("arch"), t.user_attrs.get("precision", "fp32")
        if not a or (a, prec) in seen:  # --precision search: an arch may win in both
            continue
        seen.add((a, prec))
        arch = parse_string(a)
        rows.append({"trial": t.number, "arch": a, "precision": prec,
                     "file": f"winners/{arch.file_stem()}.yaml",
                     **_metrics(t, score),
                     SEED_ATTR: t.user_attrs.get(SEED_ATTR, "")})
    key = next((OBJECTIVES[o][1] for o in objectives if OBJECTIVES[o][0] == "minimize"), score)
    rows.sort(key=lambda r: (r[key], r["trial"]))
    return rows


def export_run(study, run_dir: Path, objectives: Sequence[str],
               score: str = "score") -> list[dict[str, Any]]:
    """Write trials.csv, pareto.csv and winners/*.yaml atomically; returns the Pareto rows.
    ``score``: the run's score column (:func:`hwnas.runs.score_column`)."""
    rows = pareto_rows(study, objectives, score)
    write_tables(run_dir, trial_rows(study, score), rows, score)
    return rows


def format_summary(res: SearchResult) -> str:
    """The end-of-search table: the Pareto front and the counts."""
    s = res.settings
    lines = [f"run {s.name}: {res.complete} complete trials ({res.new_trials} new in "
             f"{res.elapsed_s:.1f} s, {res.trials_per_s:.1f}/s), {res.failed} failed, "
             f"{res.feasible} feasible; space {s.space} @ {res.resolution}, device {s.device}, "
             f"sampler {s.sampler}",
             f"Pareto front ({len(res.pareto)} archs; {res.run_dir}/pareto.csv, winners/):"]
    sc = res.config.score_column or "score"
    hdr = f"  {'trial':>5}  {sc:>14}  {'latency':>9}  {'params':>8}  {'MACs':>8}  {'memory':>9}  arch"
    lines.append(hdr)
    for r in res.pareto:
        lines.append(f"  {r['trial']:>5}  {r[sc]:>14.4g}  {r['latency_ms']:>7.2f}ms  "
                     f"{r['params'] / 1e6:>7.3f}M  {r['macs'] / 1e6:>7.1f}M  "
                     f"{r['memory_bytes'] / 2**20:>6.2f}MiB  {_short(r['arch'])}")
    if not res.pareto:
        lines.append("  (no feasible complete trial yet)")
    return "\n".join(lines)


def _short(s: str, n: int = 60) -> str:
    return s if len(s) <= n else s[: n - 3] + "..."
