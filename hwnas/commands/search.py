"""hwnas search: multi-objective architecture search with Optuna."""

from __future__ import annotations

import argparse

from ..profiling.precision import FP32, PRECISIONS
from ..runs import SUPERNET_METRICS
from ..trials.storage import SAMPLERS
from .options import add_data, add_resolution, add_seed

_DESCRIPTION = """\
Search a space for the accuracy x latency (x params x memory) Pareto front on a device.

Each trial samples one Arch of SPACE (every trial the same parameters; the input resolution
is fixed), predicts its latency on DEVICE with the device's latency predictor, estimates its
accuracy (zero-cost proxy, or a short training run) on the dataset, and counts its params,
MACs and peak activation memory. Budgets become Optuna constraints: pareto.csv holds only
feasible non-dominated Archs.

The score is stored and shown as what it is, never as "accuracy" (only a retrained test
accuracy is): naswot_score (--accuracy zero-cost), val_acc (train: validation accuracy of a
short training), supernet_val_acc or supernet_loglik (supernet), table_acc (table:FILE),
predicted_acc (predictor:FILE). The objective keeps its name: --objectives accuracy,latency.

The run lives in runs/RUN/: config.json (settings, versions, device provenance), journal.log
(the Optuna study; open it with `optuna-dashboard runs/RUN/journal.log`), trials.csv,
pareto.csv and winners/*.yaml (one arch file per Pareto Arch). Running the same command
again continues until --trials trials are complete in total (a kill loses at most the
trials in flight); a larger --trials extends the run.
"""

_EPILOG = """\
examples:
  hwnas search --space mobilenetv2 --device x86_64-2core-ref --name first
  hwnas search --space mobilenetv2 --device pi5 --name pi-20ms --latency-budget 20ms \\
      --max-params 2M --objectives accuracy,latency,memory --trials 1000
  hwnas search ... --workers 2                                   # two processes, one study
  hwnas search ... --storage postgresql://user@db/hwnas          # several machines
  hwnas search ... --storage sqlite:///study.db                  # a file in runs/RUN/

Several machines: run the same command (same --name, --storage, --seed) on each; every
process samples with its own seed (from --seed and --worker-id, default host and pid), the
seed configurations are enqueued once, and together they stop at exactly --trials COMPLETE.
A worker killed on any machine is noticed by its heartbeat (HWNAS_HEARTBEAT_S, default 60;
HWNAS_GRACE_S, default 3 heartbeats) and its trial is run again.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="multi-objective architecture search (Optuna)",
                       description=_DESCRIPTION, epilog=_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", required=True, metavar="SPACE",
                   help="a space in search_spaces/ (mobilenetv2, mobilenetv3) or a YAML path")
    p.add_argument("--device", required=True, metavar="NAME",
                   help="device whose latency predictor scores the Archs (latency_tables/NAME)")
    p.add_argument("--name", required=True, metavar="RUN", help="run name: folder runs/RUN")
    p.add_argument("--trials", type=int, default=200, metavar="N",
                   help="complete trials in total (default: 200)")
    p.add_argument("--objectives", default="accuracy,latency", metavar="LIST",
                   help="comma list of accuracy (max), latency (ms, min), params (min), "
                   "memory (peak activation bytes, min); default: accuracy,latency")
    p.add_argument("--latency-budget", metavar="TIME",
                   help="constraint: predicted latency at most TIME (20ms, 0.02s)")
    p.add_argument("--max-params", metavar="COUNT",
                   help="constraint: at most COUNT parameters (2M, 500k, 1500000)")
    # no argparse choices: SearchSettings.validate names an unknown sampler (the same line
    # for the CLI and the Python API)
    p.add_argument("--sampler", default="nsga2", metavar="NAME",
                   help=f"the Optuna sampler: {', '.join(SAMPLERS)} [nsga2]; gp's own cost is "
                   "~1-6 s per trial here: worth it with --accuracy train")
    p.add_argument("--accuracy", default="zero-cost", metavar="KIND",
                   help="accuracy estimator: zero-cost (default; a training-free proxy), "
                   "supernet (a subnet of the weight-sharing supernet trained with 'hwnas "
                   "supernet train' on this space, data and resolution: ~2 s per Arch on 2 "
                   "cores), train (a short training run per Arch), table:FILE (accuracy looked "
                   "up in measured results: NAS-Bench-Macro's JSON, a CSV arch,accuracy[,std,seeds] "
                   "or a run's retrain.csv) or predictor:FILE (a learned accuracy predictor fit "
                   "on such a file, or a file from 'hwnas accuracy fit -o')")
    p.add_argument("--supernet-metric", default="accuracy", choices=SUPERNET_METRICS,
                   help="with --accuracy supernet: score each subnet by its validation accuracy "
                   "(default) or by the mean log-likelihood of the true class on the same "
                   "images, which ranks architectures with less noise (README, ranking)")
    add_data(p, "dataset for the estimator: digits (bundled, default), fashion-mnist[:PATH], "
             "mnist:PATH, cifar10:PATH or imagefolder:PATH", default="digits")
    p.add_argument("--precision", default=FP32, choices=(*PRECISIONS, "search"),
                   help="latency of every trial predicted as fp32 (default) or as static int8 "
                   "(the device's int8 entries: hwnas profile --precision fp32,int8); search: "
                   "precision is a choice of each trial")
    add_resolution(p, "input resolution searched at (default: the one the device's table "
                   "was profiled at, else 96)")
    p.add_argument("--population", type=int, metavar="N",
                   help="NSGA-II/III population (default: trials/10 within 10..50); also "
                   "sets TPE/GP's random start-up (half of it, at least 10)")
    add_seed(p, "sampler and estimator seed")
    p.add_argument("--workers", type=int, default=1, metavar="W",
                   help="processes evaluating trials in parallel on the same study")
    p.add_argument("--storage", metavar="URL",
                   help="Optuna storage instead of runs/RUN/journal.log: sqlite:///x.db, "
                   "postgresql://..., mysql://..., redis://..., or a journal file path; "
                   "lets several machines share one study (use the same --name)")
    p.add_argument("--worker-id", metavar="NAME",
                   help="this process's name in a shared study: its sampler seed is derived "
                   "from --seed and NAME (default: $HWNAS_WORKER_ID, else host and pid); the "
                   "same NAME and --seed reproduce its proposals")
    p.add_argument("--no-seed", dest="seed_baselines", action="store_false",
                   help="do not seed a new study with the space's MobileNetV2-like and "
                   "cheapest configurations")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true",
                   help="print one JSON document (counts, the score's column, the Pareto front, "
                   "the next command) on stdout instead of the summary")
    lp = p.add_argument_group(
        "the train-predict-search loop (--accuracy predictor --train-budget K)",
        "Spend K trainings where they teach a learned accuracy predictor most about the front: "
        "a first round spread across the latency range, then rounds that train the candidates "
        "on the predictor's optimistic front (accuracy + its uncertainty), refitting after each. "
        "Candidates: the whole space when it has <= 20,000 configurations, else a sample. "
        "Writes runs/RUN/loop.json (resumable) and loop-trained/front/predicted.csv.")
    lp.add_argument("--train-budget", type=int, metavar="K",
                    help="trainings in all (with --accuracy predictor)")
    lp.add_argument("--train-rounds", type=int, default=10, metavar="R",
                    help="rounds after the first (default 10)")
    lp.add_argument("--oracle", default="train", metavar="SPEC",
                    help="what a training is: train (the retrain recipe, --train-epochs on a "
                    "--train-subset of --data minus a held-out 20 %%, scored on that held-out "
                    "part: val_acc; default) or table:FILE (a lookup in measured results, "
                    "e.g. NAS-Bench-Macro's JSON: how the benchmark runs the loop). train runs "
                    "each (arch, seed) as a work item of the retrain queue in --storage (default "
                    "runs/RUN/loop-queue.log): more processes share a round with hwnas retrain "
                    "RUN --train-only")
    lp.add_argument("--train-epochs", type=int, default=2, metavar="E",
                    help="epochs of each training with --oracle train (default 2)")
    lp.add_argument("--train-subset", type=int, default=5000, metavar="N",
                    help="training images of each training with --oracle train, a stratified "
                    "seeded subset (default 5000)")
    p.set_defaults(func=cmd_search)


def cmd_search(args) -> int | None:
    if args.train_budget is not None or args.accuracy == "predictor":
        return cmd_loop(args)
    import optuna

    from ..search import SearchSettings, format_summary, parse_count, parse_ms, run_search

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    settings = SearchSettings(
        space=args.space, device=args.device, name=args.name, trials=args.trials,
        objectives=args.objectives,
        latency_budget_ms=parse_ms(args.latency_budget) if args.latency_budget else None,
        max_params=parse_count(args.max_params) if args.max_params else None,
        sampler=args.sampler, accuracy=args.accuracy, data=args.data, seed=args.seed,
        workers=args.workers, storage=args.storage, resolution=args.resolution,
        population=args.population, seed_baselines=args.seed_baselines,
        precision=args.precision, supernet_metric=args.supernet_metric,
    )
    res = run_search(settings, progress=not args.quiet and not args.json, worker=args.worker_id)
    nxt = next_after_search(res.run_dir.name, settings.device)
    if args.json:
        from ..io import print_json

        print_json({"run": res.run_dir.name, "folder": str(res.run_dir),
                    "complete": res.complete, "new_trials": res.new_trials,
                    "failed": res.failed, "feasible": res.feasible,
                    "elapsed_s": round(res.elapsed_s, 3), "resolution": res.resolution,
                    "objectives": list(settings.objectives),
                    "score_column": res.config.get("score_column"),
                    "pareto": res.pareto, "next": nxt.removeprefix("next: ")})
        return 0
    print(format_summary(res))
    print(nxt)
    return 0


def next_after_search(run: str, device: str) -> str:
    """The ``next:`` line of hwnas search: retrain the winners, then the report."""
    return (f"next: hwnas retrain {run} (train the winners and baselines, measure them on "
            f"{device}; --top K / --seeds / --epochs size it), then hwnas view {run}")


def cmd_loop(args) -> int:
    from ..errors import HwnasError
    from ..search.loop_run import LoopRun, run_loop_search

    if args.accuracy != "predictor" or args.train_budget is None:
        raise HwnasError("the train-predict-search loop is --accuracy predictor with "
                         "--train-budget K (a predictor fit on a file is predictor:FILE)")
    if args.resolution is None:
        from ..space import load_space

        sp = load_space(args.space)
        if len(sp.resolutions) != 1:
            raise HwnasError(f"space '{sp.name}' has resolutions {list(sp.resolutions)}: "
                             "give one with -r")
        res = sp.resolutions[0]
    else:
        res = int(args.resolution)
    cfg = LoopRun(run=args.name, space=args.space, device=args.device, resolution=res,
                  oracle=args.oracle, data=args.data, epochs=args.train_epochs,
                  budget=args.train_budget, rounds=args.train_rounds, seed=args.seed,
                  subset=args.train_subset, storage=args.storage)
    out = run_loop_search(cfg, progress=not args.quiet and not args.json)
    if args.json:
        from ..io import print_json

        print_json(out)
        return 0
    tau = "" if out["cv_kendall_tau"] is None else \
        f"; predictor 5-fold CV Kendall tau {out['cv_kendall_tau']:.3f}"
    print(f"{out['run']}: {out['trained']} trained of {out['candidates']} candidates in "
          f"{out['rounds']} rounds ({out['seconds']:.0f} s){tau}; front of the trained archs "
          f"(their {out['score_column']}, predicted latency):")
    for r in out["front"]:
        print(f"  {r[out['score_column']]:8.3f}  {r['latency_ms']:8.3f} ms  {r['arch']}")
    print(f"next: the predictor's front over every candidate is in {out['folder']}/"
          "loop-predicted.csv; train the chosen archs longer with hwnas train ARCH")
    return 0
