"""hwnas quantize: a static QDQ int8 copy of any ONNX model (the profile's settings)."""

from __future__ import annotations

import argparse

from ..onboard.isa import FORMATS
from .options import add_data, add_seed


def register(sub: argparse._SubParsersAction) -> None:
    q = sub.add_parser(
        "quantize", help="quantize an ONNX model to static QDQ int8 (same settings as profiling)",
        description="Write a static QDQ int8 copy of MODEL.onnx with onnxruntime.quantization: "
        "pre-processed, per-channel int8 weights, uint8 activations, calibrated (MinMax) on "
        "inputs at the model's input resolution: images of --data, or seeded random inputs. "
        "Nothing is written if the model cannot be quantized.")
    q.add_argument("model", metavar="MODEL.onnx")
    add_data(q, "calibration data: a dataset (digits, fashion-mnist[:PATH], mnist:PATH, "
             "cifar10:PATH, imagefolder:PATH) or a .npy file of N x C x H x W float32 inputs "
             "[random normal inputs]")
    q.add_argument("-o", "--output", metavar="OUT.onnx",
                   help="the int8 model [MODEL.int8.onnx next to MODEL]")
    q.add_argument("--samples", type=int, default=None, metavar="N",
                   help="calibration inputs [16]")
    add_seed(q, "seed of the calibration sample")
    q.add_argument("--int8-format", default="auto", choices=("auto", *FORMATS),
                   help="u8s8 (full-range int8 weights), u8s8-rr (7-bit weights: exact where "
                   "onnxruntime's U8S8 kernels saturate, x86 without VNNI) or u8u8; auto: "
                   "--device's format, else this machine's [auto]")
    q.add_argument("--device", metavar="NAME",
                   help="with --int8-format auto: quantize for this device's CPU (its table "
                   "records it) instead of this machine's")
    q.set_defaults(func=cmd_quantize)


def cmd_quantize(args) -> None:
    from pathlib import Path

    from ..errors import HwnasError
    from ..io import MAX_ONNX_BYTES, input_file
    from ..profiling.quantize import DEFAULT_SAMPLES, Calibration, quantize_model, resolve_format

    src = input_file(args.model, "an ONNX model", MAX_ONNX_BYTES)
    out = Path(args.output) if args.output else src.with_name(
        src.name.removesuffix(".onnx") + ".int8.onnx")
    if out.resolve() == src.resolve():
        raise HwnasError(f"{out}: the output would overwrite the model; give another -o")
    if args.device:
        from ..context import Device

        dev = Device.of(args.device)
        fmt = resolve_format(args.int8_format, table=dev.table_or_new(),
                             local=dev.config_or_default.is_local)
    else:
        fmt = resolve_format(args.int8_format, local=True)
    cal = Calibration(args.data, DEFAULT_SAMPLES if args.samples is None else args.samples,
                      args.seed, format=fmt)
    r = quantize_model(src, out, cal)
    kb = out.stat().st_size / 1024
    print(f"{out}: int8 QDQ model ({r['quantized']} quantized tensors, {kb:.0f} KiB; "
          f"{src.stat().st_size / 1024:.0f} KiB fp32), int8 format {fmt}, {cal.describe()}")
