"""hwnas predict / predictor fit / predictor eval."""

from __future__ import annotations

import argparse
import logging

from ..profiling.precision import PRECISIONS
from .options import add_resolution, add_seed, add_statistic

log = logging.getLogger(__name__)

_ARCH_HELP = ("an arch file (.yaml/.json), a baseline name (mbv2-0.35, mbv2-0.5, mbv2-0.75, "
              "mbv2-1.0, mbv2-1.4, mbv3-small, mbv3-small-0.75, mbv3-large; add @RES for another resolution, e.g. mbv2-0.5@160), a "
              "canonical arch string, an ONNX file (MODEL.onnx: hwnas's export, or a "
              "MobileNet-family network exported by torch / timm, its Arch read from the graph; "
              "at most 512 MB), or timm's name (mobilenetv2_035 ... mobilenetv2_140, "
              "mobilenetv3_small_075, mobilenetv3_small_100, mobilenetv3_large_100)")
_JSON_HELP = "print one JSON document on stdout instead of the text (times in ms)"
_STAT_HELP = "which of the table's statistics to predict (min, p10, median) [the table's]"
_PREC_HELP = ("fp32 or int8: predict from the table's entries of that precision (one model per "
              "precision; int8 needs hwnas profile --precision fp32,int8) [fp32]")


def register(sub: argparse._SubParsersAction) -> None:
    pr = sub.add_parser(
        "predict", help="predicted latency of an Arch on a device, block by block",
        description="Predict the latency of ARCH on a device from its latency table: every "
        "piece (stem, MBConv blocks, head, classifier) is looked up in the table, or predicted "
        "by the block model when the table lacks its key (other widths, resolutions, kernels); "
        "the network model then corrects the sum with what whole-network measurements taught "
        "it (per-inference overhead, effects between blocks). Prints the prediction, the "
        "per-block breakdown and whether every block was in the table. Fails with one line if "
        "the device has no table at the Arch's resolution, too few whole-network measurements, "
        "or the Arch needs an operator the table never measured.")
    pr.add_argument("arch", metavar="ARCH", nargs="?", help=_ARCH_HELP)
    pr.add_argument("--archs-file", metavar="F",
                    help="predict many ARCHs (one a line; blank lines and '#' comments skipped) "
                    "in one batch: one line '<ms> <spec>' each, or with --json one JSON list")
    pr.add_argument("--device", required=True, metavar="NAME", help="a device with a latency table")
    add_statistic(pr, _STAT_HELP)
    pr.add_argument("--json", action="store_true", help=_JSON_HELP)
    pr.add_argument("--precision", choices=PRECISIONS, default="fp32", help=_PREC_HELP)
    pr.add_argument("--predictor", metavar="FILE",
                    help="use a saved predictor (hwnas predictor fit -o FILE) instead of fitting "
                    "on the device's current table")
    pr.add_argument("--drift-correct", action="store_true",
                    help="also print the prediction scaled by the device's last measured drift "
                    "(latency_tables/NAME/drift.json: measured / table of the sentinel networks "
                    "in its last measurement run)")
    pr.set_defaults(func=cmd_predict)

    pp = sub.add_parser("predictor", help="fit, save and evaluate a device's latency predictor")
    psub = pp.add_subparsers(dest="predictor_cmd", metavar="ACTION", required=True)
    fit = psub.add_parser(
        "fit", help="fit the predictor and save it as data",
        description="Fit the latency predictor on a device's table and save it as data: its "
        "settings and the training measurements (JSON; no pickle). Loading refits it "
        "deterministically in well under a second. The default file, "
        "latency_tables/NAME/predictor.json, also sets the settings (e.g. --statistic) that "
        "'hwnas predict' and the search use for that device.")
    fit.add_argument("--device", required=True, metavar="NAME", help="a device with a latency table")
    add_statistic(fit, _STAT_HELP)
    fit.add_argument("--precision", choices=PRECISIONS, default="fp32", help=_PREC_HELP)
    fit.add_argument("-o", "--output", metavar="FILE",
                     help="where to save [latency_tables/NAME/predictor.json]")
    fit.set_defaults(func=cmd_fit)

    ev = psub.add_parser(
        "eval", help="held-out accuracy: MACs-linear, LUT sum, block-model sum, full predictor",
        description="Evaluate four latency predictors on a device's held-out whole-network "
        "measurements: MACs-linear (a line fitted on MACs), LUT sum (the table's blocks added "
        "up), block-model sum (the block model's predictions added up) and the full predictor. "
        "Networks of the spaces are split into K folds, each predicted by models trained on "
        "the other folds; baseline networks (MobileNetV2 widths, MobileNetV3-small, at any "
        "resolution) and other networks outside the spaces are predicted by models trained on "
        "all space networks. Prints RMSE, MAPE, the share within +-5 % and +-10 % and "
        "Kendall's tau per group, and writes them as CSV.")
    ev.add_argument("--device", required=True, metavar="NAME", help="a device with a latency table")
    ev.add_argument("--space", metavar="SPACE", help="report only this space's networks "
                    "(and the baselines)")
    add_resolution(ev, "... at this resolution")
    ev.add_argument("--folds", type=int, default=5, metavar="K", help="k-fold splits [5]")
    add_seed(ev, "seed of the fold split")
    add_statistic(ev, _STAT_HELP)
    ev.add_argument("--precision", default="fp32", metavar="P[,P]",
                    help="fp32, int8 or fp32,int8: evaluate the model of each precision on "
                    "that precision's measurements, same protocol [fp32]")
    ev.add_argument("-o", "--output", metavar="FILE.csv",
                    help="metrics CSV [latency_tables/NAME/predictor_eval.csv; int8: "
                    "predictor_eval.int8.csv]")
    ev.add_argument("--predictions", metavar="FILE.csv",
                    help="also write every held-out network's measured and predicted latencies")
    ev.add_argument("--json", action="store_true",
                    help="print one JSON document (per precision: statistic, metrics rows, "
                    "coverage, warning, files written) instead of the table")
    ev.set_defaults(func=cmd_eval)


def _load(device: str, statistic: str | None, predictor_file: str | None = None,
          precision: str = "fp32"):
    from ..context import Device
    from ..predictor import LatencyPredictor

    if predictor_file:
        pred = LatencyPredictor.load(predictor_file)
        if statistic and statistic != pred.statistic:
            from ..errors import HwnasError

            raise HwnasError(f"{predictor_file}: predicts the {pred.statistic} statistic, "
                             f"not {statistic}")
        if pred.device_ and pred.device_ != device:
            from ..errors import HwnasError

            raise HwnasError(f"{predictor_file}: was fitted for device '{pred.device_}', "
                             f"not '{device}'")
        if pred.provenance_.get("precision", "fp32") != precision:
            from ..errors import HwnasError

            raise HwnasError(f"{predictor_file}: predicts "
                             f"{pred.provenance_.get('precision', 'fp32')} latency, not {precision}")
        return pred
    return Device.load(device).predictor(statistic, precision)


def resolve_arch_or_onnx(spec: str):
    """An ARCH argument, or an ONNX file: hwnas's own (its Arch from its metadata) or a
    MobileNet-family network from elsewhere (its Arch read from the graph,
    :mod:`hwnas.onnx_import`)."""
    from ..baselines import resolve_arch

    if spec.lower().endswith(".onnx"):
        from ..onnx_import import arch_of_onnx_file

        return arch_of_onnx_file(spec)
    return resolve_arch(spec)


def _source(pred, key: str, in_table: bool) -> str:
    """Where a block's latency comes from: the table, the block model, or the block model
    with an activation never measured on this piece kind ('transfer*', see the warnings)."""
    from ..predictor import piece_of

    if in_table:
        return "table"
    return "transfer*" if pred.block_model_.transfer(piece_of(key)) is not None else "block model"


def prediction(args) -> dict:
    """The facts `hwnas predict` shows, as JSON-ready data (times in ms)."""
    arch = resolve_arch_or_onnx(args.arch)
    pred = _load(args.device, args.statistic, args.predictor, args.precision)
    ms = float(pred.predict([arch])[0])
    rows = pred.explain(arch)
    lut = pred.lut_sum(arch)
    total = float(sum(r[1] for r in rows))
    measured = pred.networks_.get(arch.to_string())
    out = {
        "arch": arch.to_string(), "device": args.device, "precision": args.precision,
        "statistic": pred.statistic,
        "fitted_on": {"blocks": len(pred.blocks_), "networks": len(pred.networks_)},
        "predicted_ms": ms, "block_sum_ms": total,
        "network_model_factor": ms / total if total > 0 else None,
        "lut_sum_ms": None if lut is None else float(lut),
        "measured_ms": None if measured is None else float(measured),
        "blocks_in_table": sum(1 for r in rows if r[2]), "blocks_total": len(rows),
        "blocks": [{"index": i, "latency_ms": float(v),
                    "source": _source(pred, key, in_table), "key": key}
                   for i, (key, v, in_table) in enumerate(rows)],
        "warnings": [f"block model extrapolates for {key}: {why}"
                     for key, why in pred.extrapolations(arch)],
    }
    if args.drift_correct:
        out["drift_corrected"] = _corrected(args.device, ms)
    return out


def cmd_predict(args) -> None:
    if args.archs_file:
        return _predict_batch(args)
    if args.arch is None:
        from ..errors import HwnasError

        raise HwnasError("give an ARCH (or --archs-file F)")
    d = prediction(args)
    if args.json:
        from ..io import print_json

        print_json(d)
        return
    ms, total, lut, measured = d["predicted_ms"], d["block_sum_ms"], d["lut_sum_ms"], d["measured_ms"]
    fit = d["fitted_on"]
    print(f"arch        {d['arch']}")
    print(f"device      {d['device']}  ({d['precision']} {d['statistic']} latency; fitted on "
          f"{fit['blocks']} blocks and {fit['networks']} networks)")
    print(f"predicted   {ms:.4f} ms")
    if args.drift_correct:
        _print_corrected(args.device, d["drift_corrected"])
    print(f"block sum   {total:.4f} ms  (network model: x{ms / total:.3f})" if total > 0 else "")
    if lut is not None:
        print(f"LUT sum     {lut:.4f} ms")
    if measured is not None:
        print(f"measured    {measured:.4f} ms  (this network is in the table: "
              f"{100 * (ms / measured - 1):+.1f}%)")
    have, n = d["blocks_in_table"], d["blocks_total"]
    if have < n:
        print(f"table       {have} of {n} blocks in the table; "
              f"{n - have} predicted by the block model")
    else:
        print(f"table       every block in the table ({n} of {n})")
    print(f"  {'#':>3}  {'ms':>8}  {'source':<11} block key")
    for b in d["blocks"]:
        print(f"  {b['index']:>3}  {b['latency_ms']:8.4f}  {b['source']:<11} {b['key']}")
    for w in d["warnings"]:
        print(f"warning: {w}")


def _predict_batch(args) -> None:
    """``predict [ARCH] --archs-file F``: one batch prediction of every Arch."""
    from ..specs import arch_specs

    specs = arch_specs([args.arch] if args.arch else [], args.archs_file)
    archs = [resolve_arch_or_onnx(s) for s in specs]
    pred = _load(args.device, args.statistic, args.predictor, args.precision)
    ms = [float(v) for v in pred.predict(archs)]
    corr = _corrected(args.device, 1.0) if args.drift_correct else None
    if args.json:
        from ..io import print_json

        print_json([{"spec": s, "arch": a.to_string(), "predicted_ms": v,
                     **({"drift_corrected_ms": v * corr["drift"]} if corr else {})}
                    for s, a, v in zip(specs, archs, ms, strict=True)])
        return
    print(f"# predicted {args.precision} {pred.statistic} latency (ms) on {args.device}"
          + (f"; drift-corrected x {corr['drift']:.3f} in the second column" if corr else ""))
    for s, v in zip(specs, ms, strict=True):
        print(f"{v:10.4f}  " + (f"{v * corr['drift']:10.4f}  " if corr else "") + s)


def _corrected(device: str, ms: float) -> dict | None:
    """The prediction scaled by the device's last measured drift; None: none measured yet."""
    from ..context import Device
    from ..profiling.drift import last

    got = last(Device.load(device).dir)
    if got is None:
        return None
    d, rec = got
    return {"latency_ms": ms * d.median, "drift": d.median, "sentinels": len(d.sentinels),
            "run": rec.get("what"), "date": rec.get("date")}


def _print_corrected(device: str, c: dict | None) -> None:
    if c is None:
        print("drift-corr. (no drift measured on this device yet: every measurement run, "
              f"e.g. hwnas measure ARCH --device {device}, records it)")
        return
    print(f"drift-corr. {c['latency_ms']:.4f} ms  (drift-corrected: predicted x {c['drift']:.3f}, "
          f"the drift of {c['sentinels']} sentinels in the last {c['run'] or '?'} run, "
          f"{c['date'] or '?'})")


def cmd_fit(args) -> None:
    import time

    from ..context import Device
    from ..predictor import PREDICTOR_FILE

    dev = Device.load(args.device)
    t = time.perf_counter()
    pred = dev.predictor(args.statistic, args.precision)
    took = time.perf_counter() - t
    out = args.output or dev.dir / (PREDICTOR_FILE if args.precision == "fp32" else
                                    PREDICTOR_FILE.replace(".json", f".{args.precision}.json"))
    pred.save(out)
    nm = pred.network_model_
    print(f"fitted the latency predictor of '{args.device}' ({args.precision} "
          f"{pred.statistic} latency) on "
          f"{len(pred.blocks_)} blocks and {len(pred.networks_)} networks in {took:.2f} s")
    print("network model: " + " + ".join(f"{c:.4g}*{f}" for c, f in
                                          zip(nm.coef_, nm.features, strict=True))
          + f" + {nm.intercept_:.4g}  (ridge alpha {nm.alpha_:g})")
    print(f"saved {out}  (settings + training measurements; refitted on load)")


def cmd_eval(args) -> None:
    from ..context import Device
    from ..errors import HwnasError
    from ..profiling.precision import parse_precisions

    if args.folds < 2:
        raise HwnasError(f"--folds must be >= 2, got {args.folds}")
    if args.resolution and not args.space:
        raise HwnasError("--resolution needs --space")
    precisions = parse_precisions(args.precision)
    dev = Device.load(args.device)
    out = [_eval_one(args, dev, dev.table.view(p), p, len(precisions) > 1) for p in precisions]
    if getattr(args, "json", False):
        from ..io import print_json

        print_json({"device": args.device, "evaluations": out})


def _eval_one(args, dev, table, precision: str, several: bool) -> dict:
    from pathlib import Path

    from ..errors import HwnasError
    from ..io import atomic_write_text
    from ..predictor import evaluate, network_groups
    from ..space import load_space, load_spaces

    def named(path, default: str) -> Path:
        p = Path(path) if path else dev.dir / default
        if precision == "fp32" or (path and not several):  # a name given for one precision
            return p
        return p.with_name(f"{p.stem}.{precision}{p.suffix}")

    spaces = [load_space(args.space)] if args.space else load_spaces()
    groups = network_groups(table.networks, spaces)
    test_groups = None
    if args.space:
        sp = spaces[0]
        res = [args.resolution] if args.resolution else list(sp.resolutions)
        test_groups = [f"{sp.name}@{r}" for r in res]
        have = {g: sum(v == g for v in groups.values()) for g in set(groups.values())}
        if not any(have.get(g) for g in test_groups):
            known = ", ".join(f"{g} ({n})" for g, n in sorted(have.items())) or "none"
            raise HwnasError(f"device '{args.device}' has no whole-network measurements of "
                             f"{sp.name}{' at ' + str(args.resolution) if args.resolution else ''} "
                             f"(it has: {known}); run hwnas profile --device {args.device} "
                             f"--space {sp.name} --resolution R")
    settings = dev.predictor_settings()
    stat = args.statistic or settings.get("statistic") or table.statistic
    settings["statistic"] = stat
    blocks, nets = table.latencies(stat)
    ev = evaluate(blocks, nets, groups, test_groups=test_groups, folds=args.folds,
                  random_state=args.seed, settings=settings)
    quiet = getattr(args, "json", False)  # --json: one document on stdout, nothing else
    say = (lambda *_: None) if quiet else print
    say(f"device {args.device}: {precision} {stat} latency (the table's statistic: measured "
        f"and predicted are both the {stat}), {len(blocks)} blocks, {len(nets)} networks; "
        f"{args.folds}-fold over space networks, baselines/others held out")
    say(ev.table())
    out = named(args.output, "predictor_eval.csv")
    atomic_write_text(out, ev.to_csv())
    say(f"wrote {out}")
    written = [str(out)]
    if args.predictions:
        atomic_write_text(named(args.predictions, ""), ev.predictions_csv())
        say(f"wrote {named(args.predictions, '')}")
        written.append(str(named(args.predictions, "")))
    warning = ev.warning(args.device)
    if warning:
        log.warning("%s", warning)
    return {"precision": precision, "statistic": stat, "blocks": len(blocks),
            "networks": len(nets), **ev.to_dict(), "warning": warning, "written": written}

