"""hwnas accuracy fit: a learned accuracy predictor fit on measured results, its
cross-validated ranking quality, and its file for ``--accuracy predictor:FILE``."""

from __future__ import annotations

import argparse

from .options import add_seed


def register(sub: argparse._SubParsersAction) -> None:
    ap = sub.add_parser("accuracy", help="learned accuracy predictors from measured results")
    asub = ap.add_subparsers(dest="accuracy_command", metavar="SUBCOMMAND", required=True)
    fit = asub.add_parser(
        "fit", help="fit an accuracy predictor on measured results and cross-validate it",
        description="Fit the accuracy predictor (hwnas.accuracy_sources.AccuracyPredictor: "
        "per-layer block choices, widths, depth, MACs and params -> accuracy, with an "
        "uncertainty) on the measured archs of FILE: NAS-Bench-Macro's JSON, a CSV "
        "arch,accuracy[,std,seeds], a run's retrain.csv, or a predictor file. Prints its seeded "
        "k-fold cross-validated Kendall tau, Spearman and MAPE. With -o, writes the predictor "
        "as data (training rows + settings; refitted on load) for --accuracy predictor:FILE.")
    fit.add_argument("file", metavar="FILE", help="measured results (or a predictor file)")
    fit.add_argument("--space", metavar="SPACE", help="the space its archs are of (checked, and "
                     "recorded: a search of another space refuses the predictor)")
    fit.add_argument("--model", default=None, metavar="NAME",
                     help="ridge-bag (default: bagged ridges), ridge, extra-trees, random-forest or gp")
    add_seed(fit, "model and fold seed")
    fit.add_argument("--folds", type=int, default=5, metavar="K", help="k-fold splits [5]")
    fit.add_argument("-o", "--output", metavar="FILE.json", help="write the predictor file")
    fit.add_argument("--json", action="store_true", help="one JSON object on stdout")
    fit.set_defaults(func=cmd_fit)


def cmd_fit(args) -> None:
    import time

    from ..accuracy_sources.predictor import AccuracyPredictor
    from ..accuracy_sources.regressor import DEFAULT_MODEL, MODELS
    from ..accuracy_sources.results import read_results
    from ..errors import HwnasError

    if args.model is not None and args.model not in MODELS:
        raise HwnasError(f"--model {args.model!r}: choose from {', '.join(MODELS)}")
    if args.folds < 2:
        raise HwnasError(f"--folds must be >= 2, got {args.folds}")
    if args.seed < 0:
        raise HwnasError(f"--seed must be >= 0, got {args.seed}")
    if args.output and not args.output.endswith(".json"):
        raise HwnasError(f"-o {args.output}: a predictor file ends with .json")
    t0 = time.perf_counter()
    res = read_results(args.file)
    if res.kind == "predictor" and args.model is None:
        pred = AccuracyPredictor.load(args.file, space=args.space)
    else:
        pred = AccuracyPredictor(res, model=args.model or DEFAULT_MODEL, random_state=args.seed,
                                 space=args.space)
    cv = pred.cross_validate(args.folds, args.seed)
    seconds = time.perf_counter() - t0
    if args.output:
        pred.save(args.output)
    if args.json:
        from ..io import print_json

        print_json({**pred.settings(), "cv": cv, "seconds": round(seconds, 2),
                    "output": args.output})
        return
    print(f"fitted      {pred.model} on {cv['rows']} measured archs of {args.file} "
          f"({res.kind}, sha256 {res.sha256[:12]}){', space ' + str(pred.space) if pred.space else ''}")
    print(f"cv          {cv['folds']}-fold (seed {cv['seed']}): Kendall tau {cv['kendall_tau']:.3f}, "
          f"Spearman {cv['spearman']:.3f}, MAPE {cv['mape_pct']:.2f} %  ({seconds:.1f} s)")
    if args.output:
        print(f"wrote       {args.output}  (use: --accuracy predictor:{args.output})")
