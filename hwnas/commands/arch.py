"""hwnas space / arch / export."""

from __future__ import annotations

import argparse
import sys

from .options import add_resolution, add_seed


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("space", help="inspect search spaces")
    ssub = sp.add_subparsers(dest="space_cmd", metavar="ACTION", required=True)
    show = ssub.add_parser("show", help="stages, choices, size and distinct blocks of a space",
                           description="Show a search space: its stages and choices, the number "
                           "of configurations, and how many distinct blocks the profiler would "
                           "measure at a resolution.")
    show.add_argument("space", metavar="SPACE", help="a name in search_spaces/ or a path to a YAML file")
    add_resolution(show, "resolution for the block count "
                      "(default: the space's largest)")
    show.set_defaults(func=cmd_space_show)

    ap = sub.add_parser("arch", help="sample and inspect architectures (arch files)")
    asub = ap.add_subparsers(dest="arch_cmd", metavar="ACTION", required=True)
    smp = asub.add_parser("sample", help="sample a random Arch from a space",
                          description="Sample Archs uniformly from a space's choices.")
    smp.add_argument("space", metavar="SPACE")
    add_seed(smp)
    add_resolution(smp, "fix the input resolution")
    smp.add_argument("-n", type=int, default=1, help="how many (with -o, files get a -<i> suffix)")
    smp.add_argument("-o", "--output", help="write an arch file (.yaml or .json) instead of stdout")
    smp.set_defaults(func=cmd_arch_sample)

    info = asub.add_parser("info", help="canonical string, params, MACs, peak activation memory",
                           description="ARCH is an arch file (.yaml/.json), a baseline name "
                           "(mbv2-0.35, mbv2-0.5, mbv2-0.75, mbv2-1.0, mbv2-1.4, mbv3-small, "
                           "mbv3-small-0.75, mbv3-large, or timm's names mobilenetv2_035 ... "
                           "mobilenetv2_140, mobilenetv3_small_075, mobilenetv3_small_100, "
                           "mobilenetv3_large_100; add @RES for another resolution, e.g. "
                           "mbv2-0.5@160), a NAS-Bench-Macro network (macro:<8 digits 0/1/2>, "
                           "e.g. macro:02012100), a canonical arch string, or an ONNX file "
                           "(at most 512 MB): one hwnas exported, or a MobileNet-family network "
                           "exported by torch or timm, whose Arch is read from the graph (stem, "
                           "MBConv blocks with kernel, expansion, SE and activation, residuals, "
                           "head, pre-logits layer, classes); a graph that does not fit is "
                           "refused naming its first node that does not.")
    info.add_argument("arch", metavar="ARCH", nargs="?")
    info.add_argument("--archs-file", metavar="F",
                      help="many ARCHs (one a line; blank lines and '#' comments skipped): one "
                      "line each (params, MACs, peak activation bytes, the spec), counted "
                      "analytically by hwnas.costs (no torch), or with --json one JSON list")
    info.add_argument("--blocks", action="store_true", help="also list every block key")
    info.add_argument("--json", action="store_true",
                      help="print one JSON document on stdout instead of the text (with every "
                      "block key)")
    info.set_defaults(func=cmd_arch_info)

    bl = asub.add_parser("baseline", help="write a baseline's arch file",
                         description="Write a baseline arch file (MobileNetV2 widths, "
                         "MobileNetV3-small-like) at its usual or another resolution.")
    bl.add_argument("name", metavar="NAME", help="mbv2-0.35 | mbv2-0.5 | mbv2-0.75 | mbv2-1.0 | mbv3-small")
    add_resolution(bl, "input resolution")
    bl.add_argument("--classes", type=int, default=1000)
    bl.add_argument("-o", "--output", help="arch file to write (default: stdout)")
    bl.set_defaults(func=cmd_arch_baseline)

    ex = sub.add_parser("export", help="export an Arch to ONNX",
                        description="Export ARCH (file, baseline name or canonical string) with "
                        "freshly initialised weights to ONNX (opset 17, batch 1, float32).")
    ex.add_argument("arch", metavar="ARCH")
    ex.add_argument("-o", "--output", required=True, metavar="FILE.onnx")
    add_seed(ex, "weight initialisation seed")
    ex.set_defaults(func=cmd_export)


def cmd_space_show(args) -> None:
    from ..space import load_space

    print(load_space(args.space).describe(args.resolution))


def cmd_arch_sample(args) -> None:
    from pathlib import Path

    from ..arch import dump_arch, save_arch
    from ..errors import HwnasError
    from ..space import load_space

    if not 1 <= args.n <= 100_000:
        raise HwnasError(f"-n must be in 1..100000, got {args.n}")
    archs = load_space(args.space).sample(args.seed, args.n, args.resolution)
    for i, a in enumerate(archs):
        if args.output:
            p = Path(args.output)
            if len(archs) > 1:
                p = p.with_name(f"{p.stem}-{i}{p.suffix}")
            save_arch(a, p)
            print(p)
        else:
            sys.stdout.write(("---\n" if i else "") + dump_arch(a))


def cmd_arch_info(args) -> None:
    from ..pieces import arch_pieces
    from .predict import resolve_arch_or_onnx

    if args.archs_file:
        return _arch_info_batch(args)
    if args.arch is None:
        from ..errors import HwnasError

        raise HwnasError("give an ARCH (or --archs-file F)")

    a = resolve_arch_or_onnx(args.arch)  # checked against the limits before torch builds anything
    from ..model import arch_costs

    c = arch_costs(a)
    from ..macro import macro_code

    code = macro_code(a)
    if args.json:
        from ..io import print_json

        print_json({"arch": a.to_string(), "resolution": a.resolution, "channels": a.channels,
                    "blocks": len(a.blocks), "classes": a.classes, "params": c.params,
                    "macs": c.macs, "peak_activation_bytes": c.peak_act_bytes,
                    "peak_activation_note": "float32, batch 1, sequential, freed after last use",
                    "block_keys": [p.key for p in arch_pieces(a)], "macro_code": code})
        return
    print(f"arch        {a.to_string()}")
    print(f"resolution  {a.resolution}x{a.resolution}x{a.channels}, {len(a.blocks)} blocks, {a.classes} classes")
    print(f"params      {c.params / 1e6:.3f} M ({c.params:,})")
    print(f"MACs        {c.macs / 1e6:.1f} M  (torch.utils.flop_counter, batch 1)")
    print(f"peak act.   {c.peak_act_bytes / 2**20:.2f} MiB  (float32, batch 1, sequential, freed after last use)")
    if code is not None:
        print(f"NAS-Bench-Macro  {code}  (macro:{code})")
    if args.blocks:
        for p in arch_pieces(a):
            print(f"  {p.key}")


def _arch_info_batch(args) -> None:
    """``arch info [ARCH] --archs-file F``: every Arch's counts (analytical, no torch)."""
    from ..costs import arch_costs
    from ..pieces import arch_pieces
    from ..specs import arch_specs
    from .predict import resolve_arch_or_onnx

    specs = arch_specs([args.arch] if args.arch else [], args.archs_file)
    rows = []
    for spec in specs:
        a = resolve_arch_or_onnx(spec)
        c = arch_costs(a)
        r = {"spec": spec, "arch": a.to_string(), "resolution": a.resolution,
             "channels": a.channels, "blocks": len(a.blocks), "classes": a.classes,
             "params": c.params, "macs": c.macs, "peak_activation_bytes": c.peak_act_bytes}
        if args.blocks or args.json:
            r["block_keys"] = [p.key for p in arch_pieces(a)]
        rows.append(r)
    if args.json:
        from ..io import print_json

        print_json(rows)
        return
    print(f"# {'params':>10} {'MACs':>12} {'peak act. B':>12}  ARCH  (analytical counts, "
          "float32 activations at batch 1)")
    for r in rows:
        print(f"{r['params']:12d} {r['macs']:12d} {r['peak_activation_bytes']:12d}  {r['spec']}")
        for k in r.get("block_keys", []) if args.blocks else []:
            print(f"    {k}")


def cmd_arch_baseline(args) -> None:
    from ..arch import dump_arch, save_arch
    from ..baselines import baseline

    a = baseline(args.name, args.resolution, args.classes)
    if args.output:
        print(save_arch(a, args.output))
    else:
        sys.stdout.write(dump_arch(a))


def cmd_export(args) -> None:
    from ..baselines import resolve_arch
    from ..errors import HwnasError

    if not args.output.endswith(".onnx"):
        raise HwnasError(f"{args.output}: output must end with .onnx")
    a = resolve_arch(args.arch)  # checked against the limits before torch builds anything
    from ..export import export_arch

    data = export_arch(a, args.output, seed=args.seed)
    print(f"{args.output}  ({len(data) / 2**20:.2f} MiB, {a.to_string()})")
