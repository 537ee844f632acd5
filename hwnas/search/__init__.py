"""Multi-objective architecture search with Optuna: objectives, constraints, storage, Pareto export.

``run_search(SearchSettings(space=..., device=..., name=...))`` creates or continues the run
``runs/RUN/`` (the folder and its files: :mod:`hwnas.runs`) until ``trials`` trials are
COMPLETE, then writes trials.csv, pareto.csv and winners/.

The modules, in the order a trial meets them:

* :mod:`~hwnas.search.settings` -- :class:`SearchSettings`, its validation, the objectives;
* :mod:`~hwnas.search.seeds`    -- the fixed resolution, seed configurations, cheapest archs;
* :mod:`~hwnas.trials.storage`  -- the Optuna storage (journal file or URL; URL checks, retries,
  heartbeat settings), samplers, per-worker seeds, the seed lock, the study;
* :mod:`~hwnas.search.objective` -- Arch -> metrics and constraints (``arch_costs_fast``,
  the latency and accuracy estimators);
* :mod:`~hwnas.trials.workers`  -- worker identity and liveness, how trials are counted, Ctrl-C;
* :mod:`~hwnas.search.pareto`   -- non-dominated points, hypervolume, the feasible front;
* :mod:`~hwnas.search.run`      -- the run loop (:func:`run_search`, :func:`optimize`), progress,
  export.
"""

from ..runs import (
    IDENTITY,
    JOURNAL,
    METRICS,
    SEED_ATTR,
    WORKER_ATTR,
    Run,
    check_existing_run,
    load_run,
    run_path,
)
from ..trials.storage import (
    check_journal,
    check_storage_url,
    heartbeat_settings,
    make_sampler,
    open_storage,
    resolve_storage_url,
    retry_storage,
    seed_lock,
    sqlite_file,
    worker_seed,
)
from ..trials.workers import (
    WORKER_ENV,
    Interrupts,
    count_trials,
    fail_dead_trials,
    reap_dead_trials,
    record_worker,
    run_trials,
    worker_alive,
    worker_id,
    worker_name,
)
from .objective import (
    METRICS_ATTR,
    SURPLUS_ATTR,
    Estimators,
    Evaluator,
    Metrics,
    Objective,
    arch_costs_fast,
    build_estimators,
)
from .pareto import feasible_front, hypervolume, pareto_mask
from .run import (
    SearchResult,
    export_run,
    format_summary,
    optimize,
    pareto_rows,
    run_search,
    trial_rows,
)
from .seeds import cheapest_archs, cheapest_params, default_resolution, seed_params, seed_study
from .settings import (
    ACCURACY_KINDS,
    OBJECTIVES,
    SAMPLERS,
    AccuracyFn,
    LatencyFn,
    SearchSettings,
    parse_count,
    parse_ms,
    parse_objectives,
)
from .study import open_study

__all__ = [
    # settings
    "ACCURACY_KINDS", "OBJECTIVES", "SAMPLERS", "AccuracyFn", "LatencyFn", "SearchSettings",
    "parse_count", "parse_ms", "parse_objectives",
    # seeds
    "cheapest_archs", "cheapest_params", "default_resolution", "seed_params", "seed_study",
    # storage
    "check_journal", "check_storage_url", "heartbeat_settings", "make_sampler", "open_storage",
    "open_study", "resolve_storage_url", "retry_storage", "seed_lock", "sqlite_file",
    "worker_seed",
    # objective
    "METRICS_ATTR", "SURPLUS_ATTR", "Estimators", "Evaluator", "Metrics", "Objective",
    "arch_costs_fast", "build_estimators",
    # workers
    "WORKER_ENV", "Interrupts", "count_trials", "fail_dead_trials", "reap_dead_trials",
    "record_worker", "run_trials", "worker_alive", "worker_id", "worker_name",
    # pareto
    "feasible_front", "hypervolume", "pareto_mask",
    # run
    "SearchResult", "export_run", "format_summary", "optimize", "pareto_rows", "run_search",
    "trial_rows",
    # the run folder (hwnas.runs), importable from here as before
    "IDENTITY", "JOURNAL", "METRICS", "SEED_ATTR", "WORKER_ATTR", "Run", "check_existing_run",
    "load_run", "run_path",
]
