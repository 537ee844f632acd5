"""hwnas retrain: train a run's winners and baselines with one recipe, re-measure on the device."""

from __future__ import annotations

import argparse

from .options import Later, add_data, add_optimizer, add_threads, add_torch_device


def _selections() -> list[str]:
    from ..retrain.run import SELECTIONS  # on first use: it imports numpy

    return [s for s in SELECTIONS if s != "top"]  # --top K is its own option


_DESCRIPTION = """\
Close the loop of a search run: train the selected Pareto winners of runs/RUN and the
baselines from scratch with the same recipe (SGD or AdamW, cosine schedule, label
smoothing, the standard augmentation, fixed seeds), report their test accuracy (mean +- std
over the seeds), export each to ONNX (runs/RUN/models/NAME.onnx, the deployable artefacts;
first seed's weights), time all of them on the device in one interleaved run with the
profiler's protocol (locally or over SSH), and predict their latency with the device's
predictor.

Writes runs/RUN/retrain.csv (name, kind, arch, params, MACs, peak activation memory,
predicted ms, measured median/IQR/n, error %, accuracy mean/std, seeds, epochs, onnx) and
runs/RUN/retrain.json, then prints which winners dominate which baselines (lower measured
median latency, accuracy at least the baseline's within the seeds' noise) and the speedup at
matched accuracy.

The measurement also times a few sentinel networks of the device's table and reports the
drift (measured / table: how much slower or faster the device runs than when its table was
measured) beside the prediction errors; --drift-correct adds the prediction scaled by it.

Winners: --top K (default 3) takes K winners spread evenly along the front by latency
rank, from the most accurate (K=1: the most accurate; K=2: both ends); --select knee the
front's knee (farthest from the line between its ends, objectives scaled to [0,1]);
--select budget the most accurate within the run's --latency-budget; --select all every
winner. Baselines are built at the run's resolution with the dataset's classes.

Resumable, model by model: each finished (model, seed) is kept in
runs/RUN/retrain/<recipe id>/<name>/seed<S>.json, with its per-epoch checkpoint
(seed<S>.pt: torch.save of state dicts, read back with weights_only=True); running the same
command again skips what is finished and continues an interrupted training. Another
--epochs or learning rate trains anew in its own folder. A corrupt or foreign checkpoint
is refused with one line (delete it to train that model again).

Many machines: with --storage URL (default: the run's own RDB storage, when the search used
one), each (model, seed) is a work item in an Optuna study of that storage; every process
started with the same options claims items until none is left, and a killed worker's item
goes back to the queue (after HWNAS_GRACE_S without a heartbeat, as for hwnas search).
Extra machines run --train-only (train, no measurement); the measuring machine waits for
all items, or a later --collect gathers them. Results and checkpoints are files in
runs/RUN/retrain/: share the run folder, or copy each machine's runs/RUN/retrain/ back
before --collect (which refuses, naming them, while any is missing).
"""

_EPILOG = """\
examples:
  hwnas retrain first                                   # 3 winners + MobileNetV2 x0.35..1.0
  hwnas retrain first --select knee --epochs 30 --seeds 3 --baselines mbv2-0.5,mbv3-small
  hwnas retrain pi-20ms --select budget --data cifar10:~/data/cifar-10-batches-py --feedback
  hwnas retrain first --device pi5                      # measure on another device
  hwnas retrain sn-run --from-supernet --finetune-epochs 2 --distill   # weights from the supernet
  hwnas retrain big --storage postgresql+psycopg2://u@db/hwnas --train-only   # extra machines
  hwnas retrain big --storage postgresql+psycopg2://u@db/hwnas   # trains too, then measures
  hwnas retrain big --collect                           # after copying retrain/ folders back
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("retrain", help="retrain winners + baselines, re-measure on the device",
                       description=_DESCRIPTION, epilog=_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", metavar="RUN", help="a search run: runs/RUN (or its folder path)")
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--top", type=int, metavar="K",
                     help="K winners spread along the front by latency (default: 3)")
    sel.add_argument("--select", choices=Later(_selections),
                     help="the knee, the most accurate within the run's latency budget, or all")
    p.add_argument("--baselines", default="mbv2-0.35,mbv2-0.5,mbv2-0.75,mbv2-1.0", metavar="LIST",
                   help="comma list of mbv2-0.35, mbv2-0.5, mbv2-0.75, mbv2-1.0, mbv3-small, or "
                   "'none' (default: the four MobileNetV2 widths)")
    p.add_argument("--device", metavar="NAME",
                   help="measure on (and predict for) this device (default: the run's)")
    p.add_argument("--feedback", action="store_true",
                   help="add the whole-network measurements to the device's networks.json "
                   "(source 'retrain'): the predictor refits from them when next loaded")
    q = p.add_mutually_exclusive_group()
    q.add_argument("--train-only", action="store_true",
                   help="claim and train work items of the queue, then stop (no measurement); "
                   "on a train-predict-search loop run (hwnas search --train-budget), the "
                   "waiting items of its rounds, with the loop's recipe and data")
    q.add_argument("--collect", action="store_true",
                   help="no training: gather every result in runs/RUN/retrain/, measure, "
                   "write retrain.csv (refused, naming them, while any is missing)")
    p.add_argument("--int8", action="store_true",
                   help="also quantize each trained model (static QDQ int8, calibrated on "
                   "training images; see hwnas quantize), measure the test accuracy of the "
                   "fp32 and int8 ONNX models with onnxruntime and time the int8 models in the "
                   "same interleaved device run (retrain.csv: acc_int8, measured_int8_*_ms, "
                   "int8_speedup, ...)")
    p.add_argument("--storage", metavar="URL",
                   help="Optuna storage of the work queue shared by many machines "
                   "(sqlite:///, postgresql+psycopg2://, a journal file); default: the run's "
                   "storage when it is a URL; 'none': train here without a queue")
    d = p.add_argument_group(
        "deployment from the supernet",
        "Winners take their weights from a supernet instead of a stand-alone training: the "
        "subnet is extracted as a plain network, its BatchNorm statistics re-estimated on 2,000 "
        "training images (as the supernet estimator does), optionally fine-tuned with the "
        "recipe above, then exported and measured with the others. retrain.csv says where each "
        "model's weights came from (weights: supernet, supernet+N, stand-alone) and what they "
        "cost (train_s, wall seconds per seed; the supernet's own training is in retrain.json).")
    d.add_argument("--from-supernet", nargs="?", const="", metavar="ID",
                   help="deploy the winners from supernet ID (runs/supernets/ID or a folder); "
                   "without ID the one that scored the search, else the newest of the run's "
                   "space, data and resolution")
    d.add_argument("--finetune-epochs", type=int, default=0, metavar="N",
                   help="fine-tune each deployed model N epochs with the recipe (its --lr, "
                   "--batch-size, ...) [0]")
    d.add_argument("--distill", action="store_true",
                   help="fine-tune from the soft predictions of the supernet's largest subnet "
                   "instead of the labels")
    d.add_argument("--baselines-from-supernet", action="store_true",
                   help="deploy the baselines the supernet holds the same way (the others "
                   "train stand-alone, one line says which)")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="no progress bars or progress messages (warnings and errors only)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON document (the retrain.csv rows, the winners-vs-baselines "
                   "summary, the files, the next command) on stdout instead of the tables")

    t = p.add_argument_group("training recipe (the same for every model)")
    add_data(t, "digits, fashion-mnist[:PATH], mnist:PATH, cifar10:PATH or imagefolder:PATH "
             "(default: the run's dataset)")
    t.add_argument("--epochs", type=int, default=10, help="epochs per model [10]")
    t.add_argument("--seeds", default="3", metavar="S",
                   help="a count (3 = seeds 0,1,2) or a comma list (0,5,7; one seed: 7,) [3]")
    add_optimizer(t)
    t.add_argument("--batch-size", type=int, default=64, help="[64]")
    t.add_argument("--weight-decay", type=float, help="on conv/linear weights [4e-5 sgd, 0.05 adamw]")
    t.add_argument("--label-smoothing", type=float, default=0.1, help="[0.1]")
    t.add_argument("--warmup-epochs", type=float, default=0.0, help="linear warmup [0]")
    t.add_argument("--no-augment", dest="augment", action="store_false",
                   help="no random translation / flips")
    t.add_argument("--subset", type=int, metavar="N",
                   help="train on a stratified seeded subset of N training images (smoke runs)")
    add_threads(t, "torch threads while training")
    add_torch_device(t, what="where to train", more="; recorded in each training's result (the "
                     "measurement is on --device)")

    m = p.add_argument_group(
        "measurement protocol",
        "Default: the protocol the device's latency table was measured with (so measured and "
        "predicted compare, and --feedback can join the table), with the device's threads.")
    m.add_argument("--quick", action="store_true",
                   help="the fast, noisy preset (warmup 1, 3 passes, 3 samples): smoke tests")
    m.add_argument("--warmup", type=int, help="untimed runs per session")
    m.add_argument("--min-repeats", type=int, help="samples per model, at least")
    m.add_argument("--min-time", type=float, metavar="SECONDS", help="timed seconds per model")
    m.add_argument("--passes", type=int, help="interleaved bursts per model")
    from .profile import drift_args

    drift_args(p, correct=True)
    p.set_defaults(func=cmd_retrain)


def cmd_retrain(args) -> None:
    import logging

    logger = logging.getLogger("hwnas")
    level = logger.level
    if args.quiet:
        logger.setLevel(logging.WARNING)
    try:
        _retrain(args)
    finally:
        logger.setLevel(level)


def _retrain(args) -> None:
    from ..errors import HwnasError
    from ..retrain.run import RetrainSettings, parse_seeds, run_retrain
    from ..search.loop_train import is_loop_run
    from ..train import Recipe
    from .profile import drift_settings

    if is_loop_run(args.run):
        return _loop_worker(args)

    if args.epochs < 1:
        raise HwnasError(f"--epochs must be >= 1, got {args.epochs}")
    from ..train import resolve_torch_device

    resolve_torch_device(args.torch_device)  # before the run is read
    recipe = Recipe(epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer,
                    lr=args.lr, weight_decay=args.weight_decay, label_smoothing=args.label_smoothing,
                    augment=args.augment, subset=args.subset, threads=args.threads,
                    warmup_epochs=args.warmup_epochs)
    bl = [] if args.baselines.strip().lower() == "none" else \
        [b.strip() for b in args.baselines.split(",") if b.strip()]
    settings = RetrainSettings(
        run=args.run, select=args.select or "top", top=args.top if args.top is not None else 3,
        seeds=parse_seeds(args.seeds), baselines=tuple(bl), device=args.device, data=args.data,
        recipe=recipe, quick=args.quick, feedback=args.feedback, torch_device=args.torch_device,
        drift=drift_settings(args),
        protocol_overrides={"warmup": args.warmup, "min_repeats": args.min_repeats,
                            "min_time_s": args.min_time, "passes": args.passes},
        storage=args.storage, train_only=args.train_only, collect=args.collect,
        int8=args.int8, from_supernet=args.from_supernet, finetune_epochs=args.finetune_epochs,
        distill=args.distill, baselines_from_supernet=args.baselines_from_supernet)
    res = run_retrain(settings, progress=not args.quiet and not args.json)
    name = res.run_dir.name
    if args.train_only:
        left = res.meta["pending"]
        nxt = f"next: hwnas retrain {name} --collect (same options) measures them"
        if args.json:
            from ..io import print_json

            print_json({"run": name, "trained": res.trained, "pending": left,
                        "next": nxt.removeprefix("next: ")})
            return
        print(f"run {name}: {res.trained} trainings in this call; "
              + (f"{len(left)} item(s) not finished yet" if left else "every item finished")
              + f"; measure with: hwnas retrain {name} --collect (same options)")
        print(nxt)
        return
    nxt = (f"next: hwnas view {name} (the report: the front, the retrained models measured "
           f"vs predicted)")
    if args.json:
        from ..io import print_json
        from ..retrain.run import summarize

        print_json({"run": name, "folder": str(res.run_dir), "trained": res.trained,
                    "csv": str(res.run_dir / "retrain.csv"), "rows": res.rows,
                    "summary": summarize(res.rows), "meta": res.meta,
                    "next": nxt.removeprefix("next: ")})
        return
    print(f"run {name}: {len(res.rows)} models ({res.trained} trainings in this "
          f"call) -> {res.run_dir / 'retrain.csv'}, ONNX in {res.run_dir / 'models'}")
    print(res.summary())
    print(nxt)


def _loop_worker(args) -> None:
    """``--train-only`` on a loop run: its queue's waiting items (hwnas.search.loop_train)."""
    from ..errors import HwnasError
    from ..search.loop_train import work_loop_queue
    from ..train import resolve_torch_device

    if not args.train_only:
        raise HwnasError(f"'{args.run}' is a train-predict-search loop run: hwnas retrain "
                         f"{args.run} --train-only trains the waiting items of its rounds; "
                         "its front is loop-front.csv (train those archs with hwnas train)")
    n, left = work_loop_queue(args.run, args.storage, not args.quiet and not args.json,
                              resolve_torch_device(args.torch_device), args.threads)
    if args.json:
        from ..io import print_json

        print_json({"run": args.run, "trained": n, "pending": left})
        return
    print(f"loop run {args.run}: {n} trainings in this call; {left} item(s) of its queue not "
          "finished (the loop process waits for them, or start this again)")
