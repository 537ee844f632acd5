"""hwnas profile / measure / lut show / lut import."""

from __future__ import annotations

import argparse

from ..onboard.isa import FORMATS
from .options import add_data, add_resolution, add_seed, add_statistic

_PROTOCOL_HELP = (
    "Measurement protocol (defaults in brackets): each model gets WARMUP untimed runs when "
    "its onnxruntime session is created, then PASSES short bursts interleaved with the other "
    "models (each burst starts with BURST_WARMUP untimed runs), until it has at least "
    "MIN_REPEATS samples and MIN_TIME seconds of timed runs (a sample is the mean time of the "
    "runs lasting about SAMPLE_MS: one run for all but the fastest models); min, p10, median, "
    "IQR and n are recorded. --quick is a fast, noisy preset for smoke tests.")


def _protocol_args(p: argparse.ArgumentParser) -> None:
    from ..onboard.bench import Protocol

    d = Protocol()
    g = p.add_argument_group("measurement protocol", _PROTOCOL_HELP)
    g.add_argument("--quick", action="store_true",
                   help="fast, noisy preset (warmup 1, 3 passes, 3 samples) for tests")
    g.add_argument("--warmup", type=int, metavar="N", help=f"untimed runs per session [{d.warmup}]")
    g.add_argument("--min-repeats", type=int, metavar="N", help=f"samples per model, at least [{d.min_repeats}]")
    g.add_argument("--min-time", type=float, metavar="SECONDS",
                   help=f"timed seconds per model, at least [{d.min_time_s}]")
    g.add_argument("--passes", type=int, metavar="N", help=f"interleaved bursts per model [{d.passes}]")
    g.add_argument("--burst-warmup", type=int, metavar="N", help=f"untimed runs per burst [{d.burst_warmup}]")
    g.add_argument("--sample-ms", type=float, metavar="MS",
                   help=f"a sample is the mean of the runs lasting about this long [{d.sample_ms:g}]")
    g.add_argument("--chunk", type=int, metavar="N", help=f"models interleaved at a time [{d.chunk}]")
    g.add_argument("--chunk-mb", type=float, metavar="MB", help=f"... at most this many MB of ONNX [{d.chunk_mb:g}]")


_DRIFT_HELP = (
    "Every measurement also times a few sentinel networks already in the device's table "
    "(spanning its latency range, in every chunk) and reports drift = measured / table: how "
    "much slower (> 1) or faster the device runs than when its table was measured. Beyond "
    "the threshold one warning line says so.")


def drift_args(p: argparse.ArgumentParser, *, sentinels: bool = True, accept: bool = False,
               correct: bool = False) -> None:
    """The drift options of a measuring command (see hwnas.profiling.drift)."""
    from ..profiling.drift import DEFAULT_SENTINELS, DEFAULT_THRESHOLD

    g = p.add_argument_group("drift (sentinel networks)", _DRIFT_HELP)
    if sentinels:
        g.add_argument("--sentinels", type=int, default=DEFAULT_SENTINELS, metavar="N",
                       help=f"sentinel networks per chunk; 0 = none [{DEFAULT_SENTINELS}]")
    g.add_argument("--drift-threshold", type=float, default=100 * DEFAULT_THRESHOLD,
                   metavar="PCT", help="warn beyond +-PCT %% drift"
                   + (", and refuse such chunks" if accept else "")
                   + f" [{100 * DEFAULT_THRESHOLD:g}]")
    if accept:
        g.add_argument("--accept-drift", action="store_true",
                       help="merge chunks whose drift is beyond the threshold instead of "
                       "measuring them again (profile) or leaving them out (lut import)")
    if correct:
        g.add_argument("--drift-correct", action="store_true",
                       help="also give the predicted latency scaled by the measured drift "
                       "(labelled 'drift-corrected')")


def drift_settings(args):
    """The DriftSettings of parsed :func:`drift_args` options."""
    from ..profiling.drift import DEFAULT_SENTINELS, DriftSettings

    return DriftSettings(sentinels=getattr(args, "sentinels", DEFAULT_SENTINELS),
                         threshold=args.drift_threshold / 100.0,
                         accept=getattr(args, "accept_drift", False),
                         correct=getattr(args, "drift_correct", False)).validate()


def _protocol(args, threads: int):
    from ..profiling.profile import make_protocol

    return make_protocol(threads, quick=args.quick, warmup=args.warmup,
                         min_repeats=args.min_repeats, min_time_s=args.min_time,
                         passes=args.passes, burst_warmup=args.burst_warmup,
                         sample_ms=args.sample_ms, chunk=args.chunk,
                         chunk_mb=args.chunk_mb)


def register(sub: argparse._SubParsersAction) -> None:
    pr = sub.add_parser(
        "profile", help="measure a space's blocks on a device: the latency table",
        description="Profile a device: export every distinct block of SPACE at resolution R "
        "(stem, MBConv blocks, head, classifier) and N sampled whole networks to ONNX, run "
        "them on the device with onnxruntime (a bundle: manifest + ONNX files + runner), and "
        "write latency_tables/NAME/blocks.json (the LUT) and networks.json. Blocks and networks "
        "already in the table are skipped; running the same command again resumes a killed "
        "run. With --bundle-only DIR nothing is run: copy DIR to the board, run "
        "'python3 run.py' there, and bring results.jsonl back with 'hwnas lut import'.")
    pr.add_argument("--device", required=True, metavar="NAME",
                    help="a device added with 'hwnas device add' (with --bundle-only any name)")
    pr.add_argument("--space", metavar="SPACE",
                    help="a name in search_spaces/ or a path to a YAML file (without --space "
                    "and -r, --archs alone measures only their pieces the table lacks)")
    add_resolution(pr, "input resolution (blocks' sizes depend on it; each is profiled once)")
    pr.add_argument("--networks", type=int, metavar="N",
                    help="sampled whole networks for the latency predictor [150]")
    pr.add_argument("--classes", type=int, metavar="N",
                    help="the classifier's classes: those of the data you will search with "
                    "(10 for digits, Fashion-MNIST, CIFAR-10), so the table has the classifier "
                    "and the networks the search scores; a 1000-class table extrapolates a "
                    "10-class classifier (tens of percent on small networks) [the space's]")
    pr.add_argument("--archs", nargs="+", metavar="FILE", default=[],
                    help="arch files (or baseline names / canonical strings) to measure too; "
                    "alone (no --space), only their pieces and networks the table lacks "
                    "('baselines' or 'baselines@R': every baseline at the table's resolutions)")
    add_seed(pr, "seed of the network sample and order")
    add_statistic(pr, "the statistic the table's lookups use (all are stored) "
                    "[the table's, or min for a new table]")
    pr.add_argument("--replace", action="store_true",
                    help="start a new table even if the existing one was measured on another "
                    "machine, onnxruntime version, thread count or protocol (old files are kept "
                    "as *.bak-DATE)")
    pr.add_argument("--refine", type=int, metavar="N",
                    help="then adaptive sampling: cross-validate the predictor on the device's "
                    "networks and measure up to N new networks (with their missing pieces) where "
                    "the held-out error is largest; prints the error per group before/after "
                    "(alone: --device D --refine N)")
    pr.add_argument("--precision", default="fp32", metavar="P[,P]",
                    help="fp32, int8 or fp32,int8: int8 exports every block and network as a "
                    "static QDQ int8 model quantized on the host (see hwnas quantize) [fp32]")
    pr.add_argument("--int8-format", default="auto", choices=("auto", *FORMATS),
                    help="int8: u8s8 (full-range int8 weights), u8s8-rr (7-bit weights, "
                    "onnxruntime's reduce_range) or u8u8; auto: the device's, as device check "
                    "reports its CPU: u8s8 where onnxruntime's U8S8 kernels cannot saturate "
                    "(x86 with VNNI, ARM), else u8s8-rr [auto]")
    add_data(pr, "int8: calibrate networks on images of this dataset at the profiled "
             "resolution (see hwnas quantize) [random inputs]")
    pr.add_argument("--bundle-only", metavar="DIR",
                    help="only write the bundle to DIR (or DIR.tar.gz) for running by hand")
    _protocol_args(pr)
    drift_args(pr, accept=True)
    pr.set_defaults(func=cmd_profile)

    me = sub.add_parser(
        "measure", help="time whole networks on a device (same protocol)",
        description="Time one network (or a few) on a device with the profiling protocol and "
        "print median, IQR and n (and min, p10). ARCH is an arch file, a baseline name "
        "(mbv2-0.5, mbv2-0.5@160, ...), a canonical arch string, or an ONNX file.")
    me.add_argument("models", nargs="+", metavar="ARCH|MODEL.onnx")
    me.add_argument("--device", required=True, metavar="NAME")
    me.add_argument("--save", action="store_true",
                    help="also add the measurements of archs to latency_tables/NAME/networks.json "
                    "(source 'measure')")
    me.add_argument("--json", action="store_true", help="print one JSON document on stdout "
                    "instead of the text (times in ms; progress stays on stderr)")
    _protocol_args(me)
    drift_args(me, correct=True)
    me.set_defaults(func=cmd_measure)

    lp = sub.add_parser("lut", help="inspect and import latency tables")
    lsub = lp.add_subparsers(dest="lut_cmd", metavar="ACTION", required=True)
    sh = lsub.add_parser(
        "show", help="entries, provenance and coverage of a device's table",
        description="Show a device's latency table: how many blocks and networks, where and how "
        "they were measured (provenance and protocol), and how much of a space it covers "
        "(every shipped space at every resolution it has blocks for, or --space/-r).")
    sh.add_argument("device", metavar="NAME")
    sh.add_argument("--space", metavar="SPACE", help="coverage of this space")
    add_resolution(sh, "... at this resolution")
    sh.add_argument("--entries", action="store_true", help="also list every block entry")
    sh.add_argument("--networks", action="store_true", help="also list every network entry")
    sh.add_argument("--json", action="store_true", help="print one JSON document on stdout "
                    "instead of the text (times in ms)")
    sh.set_defaults(func=cmd_lut_show)

    im = lsub.add_parser(
        "import", help="merge a bundle's results into a device's table",
        description="Merge the results of a bundle run by hand (its results.jsonl, or the whole "
        "bundle folder copied back) into latency_tables/NAME/. Results measured on another "
        "machine, onnxruntime version, thread count or protocol than the table's are refused "
        "unless --replace (which keeps the old table as *.bak-DATE).")
    im.add_argument("results", metavar="RESULTS", help="results.jsonl or the bundle folder")
    im.add_argument("--device", required=True, metavar="NAME")
    im.add_argument("--replace", action="store_true", help="start a new table (old one backed up)")
    add_statistic(im, "the statistic the table's lookups use")
    drift_args(im, sentinels=False, accept=True)
    im.set_defaults(func=cmd_lut_import)


def cmd_profile(args) -> None:
    from pathlib import Path

    from ..context import Device
    from ..profiling.precision import parse_precisions
    from ..profiling.profile import DEFAULT_NETWORKS, profile
    from ..profiling.quantize import Calibration
    from ..space import load_space

    dev = Device.load(args.device)
    if args.space is None or args.resolution is None:  # --archs alone: what the table lacks
        return _profile_archs(args, dev, _protocol(args, dev.config.threads),
                              drift_settings(args))
    from ..profiling.refine import resolve_archs
    from .options import positive

    positive(classes=args.classes)
    archs = resolve_archs(args.archs, dev)  # files, baseline names, strings, baselines[@R]
    space = load_space(args.space)
    if args.classes is not None:
        from dataclasses import replace

        space = replace(space, classes=args.classes)
    rep = profile(dev, space, args.resolution,
                  networks=DEFAULT_NETWORKS if args.networks is None else args.networks,
                  archs=archs, seed=args.seed,
                  protocol=_protocol(args, dev.config_or_default.threads),
                  statistic=args.statistic, replace=args.replace, bundle_only=args.bundle_only,
                  drift=drift_settings(args), precisions=parse_precisions(args.precision),
                  calibration=Calibration(args.data), int8_format=args.int8_format)
    if args.bundle_only:
        out = Path(args.bundle_only)
        size = out.stat().st_size if out.is_file() else sum(
            f.stat().st_size for f in out.rglob("*") if f.is_file())
        folder = out.name.removesuffix(".tar.gz").removesuffix(".tgz")
        run = f"cd {folder} && ~/venv/bin/python3 run.py"
        if out.is_file():
            run = f"tar xzf {out.name} && {run}"
        print(f"bundle: {out}  ({size / 2**20:.1f} MiB: {rep.blocks_total} blocks + "
              f"{rep.networks_total} networks, {rep.already} of them already in the table)")
        print("copy it to the board and run it there (Python 3 with onnxruntime and numpy, "
              "e.g. in ~/venv; run it again if it stops, it resumes):")
        print(f"  scp -r {out} pi@raspberrypi.local:")
        print(f"  ssh pi@raspberrypi.local '{run}'")
        print("then bring the results back and import them:")
        print(f"  scp pi@raspberrypi.local:{folder}/results.jsonl .")
        print(f"  hwnas lut import results.jsonl --device {args.device}")
        return
    print(rep.summary())
    if args.refine:
        _refine(args, dev, _protocol(args, dev.config.threads), drift_settings(args))
    print(next_after_profile(args.device, args.space, args.resolution, args.classes))


def _profile_archs(args, dev, protocol, drift) -> None:
    """``hwnas profile --device D --archs NET...`` (no --space): only what the table lacks of
    those networks (:func:`hwnas.profiling.refine.profile_archs`), then ``--refine N`` if asked."""
    from ..context import Device
    from ..errors import HwnasError
    from ..profiling.refine import profile_archs, resolve_archs

    archs = resolve_archs(args.archs, dev)
    if not archs and args.refine and args.space is None and args.resolution is None:
        return _refine(args, dev, protocol, drift)
    if args.space is not None or args.resolution is not None or not archs:
        raise HwnasError("hwnas profile needs --space SPACE and --resolution R, or --archs "
                         "FILE... alone (which measures only what the table lacks of them)")
    if args.bundle_only:
        raise HwnasError("--bundle-only needs --space and --resolution")
    rep = profile_archs(dev, archs, protocol=protocol, statistic=args.statistic,
                        replace=args.replace, drift=drift)
    print(rep.summary())
    if args.refine:
        _refine(args, Device(dev.name), protocol, drift)


def _refine(args, dev, protocol, drift) -> None:
    """``hwnas profile ... --refine N``: adaptive sampling (:func:`hwnas.profiling.refine.refine`)."""
    from ..context import Device
    from ..errors import HwnasError
    from ..profiling.refine import refine

    if args.bundle_only:
        raise HwnasError("--refine measures on the device: it cannot be used with --bundle-only")
    rep = refine(Device(dev.name), args.refine, seed=args.seed, statistic=args.statistic,
                 protocol=protocol, drift=drift)
    print(rep.summary())


def next_after_profile(device: str, space: str, resolution: int, classes: int | None = None) -> str:
    """The ``next:`` line of hwnas profile: check the predictor, then search."""
    data = " --data DATA" if classes else ""  # DATA: one with those classes
    return (f"next: hwnas predictor eval --device {device} (how well the table predicts), then "
            f"hwnas search --space {space} --device {device} -r {resolution}{data} --name RUN")


def cmd_measure(args) -> None:
    from pathlib import Path

    from ..baselines import resolve_arch
    from ..context import Device
    from ..errors import HwnasError
    from ..profiling.measure import describe_stats, measure

    dev = Device.load(args.device)
    protocol = _protocol(args, dev.config.threads)
    ds = drift_settings(args)
    onnx = [m for m in args.models if m.endswith(".onnx")]
    archs = [resolve_arch(m) for m in args.models if not m.endswith(".onnx")]
    for m in onnx:
        if not Path(m).is_file():
            raise HwnasError(f"{m}: no such ONNX file")
    res = measure(dev, archs, onnx, protocol=protocol, source="measure" if args.save else None,
                  drift=ds)
    if args.json:
        return _measure_json(args, dev, archs, res, protocol, ds)
    for spec in args.models:
        key = spec if spec.endswith(".onnx") else resolve_arch(spec).to_string()
        print(f"{spec}: {describe_stats(res.stats[key])}")
    print(f"device {args.device}, threads {protocol.threads}, {protocol.passes} interleaved passes")
    d = res.drift
    if d is None:
        print("drift: no sentinels (the device's table has no networks yet)")
        return
    print(f"drift: {d.short()} against the table: the device ran {d.speed()} than when its "
          f"table was measured" + ("" if d.beyond else f" (within +-{100 * d.threshold:g} %)"))
    if ds.correct and archs:
        _print_corrected(dev, archs, res, d)


def _measure_json(args, dev, archs, res, protocol, ds) -> None:
    from ..baselines import resolve_arch
    from ..errors import HwnasError
    from ..io import print_json

    models = []
    for spec in args.models:
        key = spec if spec.endswith(".onnx") else resolve_arch(spec).to_string()
        models.append({"model": spec, "key": key, **res.stats[key].to_dict()})
    d = res.drift
    out = {"device": args.device, "threads": protocol.threads, "passes": protocol.passes,
           "protocol": protocol.to_dict(), "models": models,
           "drift": None if d is None else d.to_dict(), "saved": bool(args.save)}
    if ds.correct and archs and d is not None:
        try:
            pred = dev.predictor()
        except HwnasError as e:
            out["drift_corrected"] = {"error": str(e)}
        else:
            out["drift_corrected"] = [
                {"arch": a.to_string(), "statistic": pred.statistic,
                 "predicted_ms": (p := float(pred.predict([a])[0])),
                 "drift_corrected_ms": p * d.median,
                 "measured_ms": res.stats[a.to_string()].value(pred.statistic)} for a in archs]
    print_json(out)


def _print_corrected(dev, archs, res, d) -> None:
    """--drift-correct: each arch's prediction, and the prediction scaled by the drift."""
    from ..errors import HwnasError

    try:
        pred = dev.predictor()
    except HwnasError as e:
        print(f"drift-corrected prediction: no predictor ({e})")
        return
    stat = pred.statistic
    for a in archs:
        p = float(pred.predict([a])[0])
        m = res.stats[a.to_string()].value(stat)
        print(f"{a.to_string()[:60]}: predicted {p:.3f} ms, drift-corrected {p * d.median:.3f} "
              f"ms (x{d.median:.3f}), measured {m:.3f} ms ({stat})")


def cmd_lut_show(args) -> None:
    from ..errors import HwnasError
    from ..profiling.lut import LatencyTable
    from ..space import load_space, load_spaces

    t = LatencyTable.load(args.device)
    pairs = []
    if args.space:
        sp = load_space(args.space)
        for r in ([args.resolution] if args.resolution else sp.resolutions):
            pairs.append((sp, r))
    elif args.resolution:
        raise HwnasError("--resolution needs --space")
    else:
        for sp in load_spaces():
            pairs += [(sp, r) for r in sp.resolutions if t.coverage(sp, r)[0] > 0]
    if args.json:
        return _lut_json(args, t, pairs)
    print(t.describe(pairs))
    if args.entries:
        for k in sorted(t.blocks):
            s = t.blocks[k]
            print(f"  {k:<48} {t.block_ms(k):9.4f} ms  (median {s.median_ms:.4f}, IQR "
                  f"{s.iqr_ms:.4f}, n {s.n})")
    if args.networks:
        for k in sorted(t.networks):
            s = t.networks[k]
            print(f"  {t.network_ms(k):9.3f} ms  IQR {s.iqr_ms:.3f}  n {s.n:<4} "
                  f"{t.network_sources.get(k, 'profile'):<8} {k}")


def _lut_json(args, t, pairs) -> None:
    from ..io import print_json

    srcs: dict[str, int] = {}
    for s in t.network_sources.values():
        srcs[s] = srcs.get(s, 0) + 1
    out = {"device": t.device, "dir": str(t.dir), "statistic": t.statistic,
           "block_count": len(t.blocks), "network_count": len(t.networks),
           "networks_by_source": dict(sorted(srcs.items())), "provenance": t.provenance,
           "coverage": [{"space": sp.name, "resolution": r, "blocks_in_table": have,
                         "blocks_total": total}
                        for sp, r in pairs for have, total in [t.coverage(sp, r)]]}
    if args.entries:
        out["blocks"] = [{"key": k, "latency_ms": t.block_ms(k), **t.blocks[k].to_dict()}
                         for k in sorted(t.blocks)]
    if args.networks:
        out["networks"] = [{"arch": k, "latency_ms": t.network_ms(k), **t.networks[k].to_dict(),
                            "source": t.network_sources.get(k, "profile")}
                           for k in sorted(t.networks)]
    print_json(out)


def cmd_lut_import(args) -> None:
    from ..paths import tables_dir
    from ..profiling.profile import import_results

    rs, nb, nn = import_results(args.device, args.results, replace=args.replace,
                                statistic=args.statistic, drift=drift_settings(args))
    pv = rs.provenance
    print(f"imported {nb} blocks and {nn} networks from {rs.path} into "
          f"{tables_dir() / args.device}  (measured on {pv.get('cpu_model')}, "
          f"{pv.get('machine')}, onnxruntime {pv.get('onnxruntime')}, threads {pv.get('threads')})")
