"""hwnas train / score: try the training recipe and the accuracy estimators on one dataset."""

from __future__ import annotations

import argparse

from ..runs import SUPERNET_METRICS
from .options import (
    DATASETS,
    add_data,
    add_optimizer,
    add_resolution,
    add_seed,
    add_threads,
    add_torch_device,
    positive,
)

ARCH_HELP = ("an arch file (.yaml/.json), a baseline name (mbv2-0.5, mbv2-0.5@160, ...) or a "
             "canonical arch string; its classes are adapted to the dataset")


def register(sub: argparse._SubParsersAction) -> None:
    tr = sub.add_parser("train", help="train one Arch on a dataset with the project's recipe",
                        description="Train ARCH from scratch with the project's recipe (SGD + "
                        "Nesterov or AdamW, cosine schedule, label smoothing, augmentation, fixed "
                        "seed) and print its test accuracy. With -o, a checkpoint is written "
                        "after every epoch and the same command resumes from it.")
    tr.add_argument("arch", metavar="ARCH", help=ARCH_HELP)
    add_data(tr, required=True)
    add_resolution(tr, "input resolution (default: the arch's)")
    tr.add_argument("--epochs", type=int, default=10)
    tr.add_argument("--batch-size", type=int, default=64)
    add_optimizer(tr)
    tr.add_argument("--subset", type=int, help="train on this many (stratified) training images")
    tr.add_argument("--no-augment", action="store_true", help="no random shifts/flips")
    add_seed(tr, "seed of the weights, data order and augmentation")
    add_threads(tr)
    tr.add_argument("-o", "--output", metavar="CHECKPOINT.pt",
                    help="checkpoint (state dicts, written each epoch; resumed if it exists)")
    add_torch_device(tr, what="where to train")
    tr.set_defaults(func=cmd_train)

    sc = sub.add_parser("score", help="estimate the accuracy of Archs (zero-cost proxy, short "
                        "training or a supernet)",
                        description="Score each ARCH with an accuracy estimator, higher is "
                        "better: 'zero-cost' is NASWOT (Mellor et al., ICML 2021; log-determinant "
                        "of the activation-pattern kernel on one real minibatch, no training); "
                        "'train' is a few epochs of the recipe, scored on a held-out part of the "
                        "training split; 'supernet' scores ARCH as a subnet of the trained "
                        "supernet of --space (hwnas supernet train): inherited weights, BatchNorm "
                        "re-estimated, accuracy on the part of the training split the supernet "
                        "held out.")
    sc.add_argument("archs", metavar="ARCH", nargs="*", help=ARCH_HELP)
    sc.add_argument("--archs-file", metavar="F", help="also score the ARCHs of F (one a line; "
                    "blank lines and '#' comments skipped)")
    add_data(sc, DATASETS + " (not with table:/predictor:)")
    sc.add_argument("--estimator", default="zero-cost", metavar="KIND",
                    help="zero-cost (default), train, supernet, table:FILE (accuracy looked up in "
                    "measured results: NAS-Bench-Macro's JSON, a CSV arch,accuracy[,std,seeds], a "
                    "run's retrain.csv) or predictor:FILE (a learned accuracy predictor fit on such "
                    "a file, or a file of 'hwnas accuracy fit -o')")
    sc.add_argument("--json", action="store_true",
                    help="one JSON list of {arch, spec, score} (and std with predictor:) on stdout")
    add_resolution(sc, "score every Arch at this resolution (default: each at its own)")
    sc.add_argument("--epochs", type=int, default=3, help="with --estimator train")
    sc.add_argument("--batch-size", type=int, default=64, help="with --estimator zero-cost")
    add_seed(sc, "seed of the estimator (minibatch, training, data split)")
    add_threads(sc)
    sc.add_argument("--cache", metavar="FILE.json", help="score cache shared between runs")
    sc.add_argument("--space", metavar="SPACE", help="with --estimator supernet: the search space")
    sc.add_argument("--supernet", metavar="ID", help="with --estimator supernet: a supernet id or "
                    "folder (default: the newest complete one of --space, --data and -r)")
    sc.add_argument("--bn-images", type=int, default=2000, metavar="N",
                    help="with --estimator supernet: images to re-estimate BatchNorm with (2000)")
    sc.add_argument("--val-images", type=int, default=2000, metavar="N",
                    help="with --estimator supernet: score on a stratified N of the validation "
                    "images (2000, what the search uses; 0: all of them)")
    sc.add_argument("--supernet-metric", default="accuracy", choices=SUPERNET_METRICS,
                    help="with --estimator supernet: score by validation accuracy (default) or "
                    "by mean log-likelihood of the true class (ranks with less noise)")
    add_torch_device(sc, what="where torch scores")
    sc.set_defaults(func=cmd_score)


def cmd_train(args) -> None:
    from pathlib import Path

    from ..baselines import resolve_arch
    from ..data import load_dataset
    from ..train import Recipe, adapt_arch, resolve_torch_device, train_arch

    positive(resolution=args.resolution, epochs=args.epochs, batch_size=args.batch_size,
              subset=args.subset, threads=args.threads)
    device = resolve_torch_device(args.torch_device)
    arch = resolve_arch(args.arch)
    data = load_dataset(args.data, args.resolution or arch.resolution, args.seed)
    arch = adapt_arch(arch, data, args.resolution)
    recipe = Recipe(epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer,
                    lr=args.lr, augment=not args.no_augment, subset=args.subset, threads=args.threads)
    r = train_arch(arch, data, recipe, args.seed, Path(args.output) if args.output else None,
                   device=device)
    print(f"arch        {arch.to_string()}")
    print(f"data        {data.name}: {len(data.train_y)} train / {len(data.test_y)} test images, "
          f"{data.classes} classes, at {arch.resolution}x{arch.resolution}")
    print(f"recipe      {recipe.epochs} epochs, {recipe.optimizer} lr {recipe.lr}, batch "
          f"{recipe.batch_size}, seed {args.seed}"
          + (f" (resumed after epoch {r.resumed_from})" if r.resumed_from else ""))
    print(f"train loss  {r.train_loss:.4f}")
    print(f"test acc    {100 * r.test_acc:.2f} %  ({r.seconds:.1f} s on {r.device})")
    if args.output:
        print(f"checkpoint  {args.output}")


def cmd_score(args) -> None:
    from ..accuracy_sources.predictor import is_source
    from ..errors import HwnasError
    from ..specs import arch_specs

    specs = arch_specs(args.archs, args.archs_file)
    if is_source(args.estimator) or args.estimator.split(":")[0] in ("table", "predictor"):
        return _score_source(args, specs)
    if args.estimator not in ("zero-cost", "train", "supernet"):
        raise HwnasError(f"--estimator {args.estimator!r}: choose zero-cost, train, supernet, "
                         "table:FILE or predictor:FILE")
    if not args.data:
        raise HwnasError(f"--estimator {args.estimator} needs --data (the dataset it scores on)")
    if args.json:
        raise HwnasError("--json goes with --estimator table:FILE or predictor:FILE")
    from ..accuracy import make_estimator
    from ..baselines import resolve_arch
    from ..train import resolve_torch_device

    positive(resolution=args.resolution, epochs=args.epochs, batch_size=args.batch_size,
              threads=args.threads, bn_images=args.bn_images,
              val_images=args.val_images or None)
    device = resolve_torch_device(args.torch_device)
    archs = [resolve_arch(a) for a in specs]
    if args.estimator == "supernet":
        if not args.space:
            raise HwnasError("--estimator supernet needs --space (the space the supernet covers)")
        if not args.resolution:
            raise HwnasError("--estimator supernet needs -r (the resolution the supernet trained at)")
        kw = {"space": args.space, "supernet": args.supernet, "bn_images": args.bn_images,
              "val_images": args.val_images or None,  # 0: the whole validation carve
              "metric": args.supernet_metric}
    elif args.space or args.supernet or args.supernet_metric != "accuracy":
        raise HwnasError("--space, --supernet and --supernet-metric go with --estimator supernet")
    elif args.estimator == "zero-cost":
        kw = {"batch_size": args.batch_size}
    else:
        kw = {"epochs": args.epochs, "progress": True}
    est = make_estimator(args.estimator, args.data, args.resolution, seed=args.seed,
                         cache_path=args.cache, threads=args.threads, torch_device=device, **kw)
    scores = est.score(archs)
    what = {"train": "; accuracy on a held-out part of the training split",
            "supernet": f"; subnet accuracy on the part of the training split supernet "
                        f"{getattr(est, 'store', None) and est.store.id} held out",
            "zero-cost": ""}[args.estimator]
    print(f"# {est.name} on {args.data}, seed {args.seed}, torch device {device}; higher is "
          f"better{what}")
    for spec, s in zip(specs, scores, strict=True):
        print(f"{s:10.4f}  {spec}")


def _score_source(args, specs: list[str]) -> None:
    """``--estimator table:FILE | predictor:FILE``: measured results, no torch, no data."""
    from ..accuracy_sources.predictor import AccuracyPredictor, make_source, parse_source
    from ..baselines import resolve_arch
    from ..errors import HwnasError

    parse_source(args.estimator)
    if args.data or args.supernet or args.supernet_metric != "accuracy" or args.cache:
        raise HwnasError(f"--estimator {args.estimator.split(':')[0]}:FILE takes no --data, "
                         "--cache, --supernet or --supernet-metric (the file is the source)")
    archs = [resolve_arch(a) for a in specs]
    est = make_source(args.estimator, space=args.space)
    std = None
    if isinstance(est, AccuracyPredictor):
        mean, std = est.predict(archs, return_std=True)
        scores = [float(v) for v in mean]
    else:
        scores = est.score(archs)
    if args.json:
        from ..io import print_json

        print_json([{"spec": spec, "arch": a.to_string(), "score": s,
                     **({"std": float(std[i])} if std is not None else {})}
                    for i, (spec, a, s) in enumerate(zip(specs, archs, scores, strict=True))])
        return
    st = est.settings()
    src = st.get("file") or st.get("source_file") or st.get("predictor_file")
    print(f"# {est.name} {src} (sha256 {str(st.get('sha256') or st.get('source_sha256'))[:12]}); "
          "higher is better" + ("; predicted from measured results" if std is not None else ""))
    for spec, s in zip(specs, scores, strict=True):
        print(f"{s:10.4f}  {spec}")
