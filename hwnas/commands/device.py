"""hwnas device add / list / check."""

from __future__ import annotations

import argparse

_TARGET_HELP = ("'local' (this machine) or 'ssh://user@host[:port]' (a board reached with your "
                "ssh config, keys and known_hosts; key login, host-key checking on)")


def register(sub: argparse._SubParsersAction) -> None:
    dp = sub.add_parser("device", help="add, list and check devices (local or over SSH)",
                        description="A device is a named place where latency is measured: this "
                        "machine or a board over SSH. Its settings live in "
                        "latency_tables/<name>/device.json, next to what is measured on it. "
                        "SSH honours HWNAS_SSH_CONFIG (an ssh config file, ssh -F) and "
                        "HWNAS_SSH_OPTS (extra ssh options).")
    dsub = dp.add_subparsers(dest="device_cmd", metavar="ACTION", required=True)

    add = dsub.add_parser("add", help="add or update a device",
                          description="Add a device (or update its settings). Example: "
                          "hwnas device add pi4 --target ssh://pi@raspberrypi.local --threads 4")
    add.add_argument("name", metavar="NAME", help="device name, also its folder under "
                     "latency_tables/ (letters, digits, '.', '_', '-')")
    add.add_argument("--target", required=True, help=_TARGET_HELP)
    add.add_argument("--threads", type=int, default=1,
                     help="onnxruntime intra-op threads used when measuring (default 1)")
    add.add_argument("--python", default="python3",
                     help="Python 3 on the device: a command on its PATH, an absolute path or "
                     "~/path (default python3; for 'local', the Python running hwnas)")
    add.set_defaults(func=cmd_add)

    ls = dsub.add_parser("list", help="list the devices",
                         description="List the devices in latency_tables/ and how to reach them.")
    ls.add_argument("--json", action="store_true",
                    help="print one JSON document on stdout instead of the table")
    ls.set_defaults(func=cmd_list)

    ck = dsub.add_parser("check", help="check a device is reachable and ready to measure",
                         description="Reach the device, run the on-device runner's --check and "
                         "show Python, numpy and onnxruntime versions and the CPU. Exits 2 with "
                         "one line if the device cannot be reached or lacks something.")
    ck.add_argument("name", metavar="NAME")
    ck.set_defaults(func=cmd_check)


def cmd_add(args) -> None:
    from ..profiling.hosts import DeviceConfig, device_file, save_device

    cfg = DeviceConfig(name=args.name, target=args.target, threads=args.threads,
                       python=args.python).validate()
    existed = device_file(cfg.name).is_file()
    p = save_device(cfg)
    print(f"{'updated' if existed else 'added'} device '{cfg.name}': {cfg.target}, "
          f"{cfg.threads} thread{'s' if cfg.threads != 1 else ''}, python {cfg.python}  ({p})")
    print(f"next: hwnas device check {cfg.name}")


def cmd_list(args) -> None:
    from ..paths import tables_dir
    from ..profiling.hosts import list_devices

    devs = list_devices()
    if args.json:
        from ..io import print_json

        print_json({"tables_dir": str(tables_dir()),
                    "devices": [{"name": d.name, "target": d.target, "threads": d.threads,
                                 "python": d.python} for d in devs]})
        return
    if not devs:
        print(f"no devices in {tables_dir()} (hwnas device add NAME --target local|ssh://user@host[:port])")
        return
    w = max(4, *(len(d.name) for d in devs))
    tw = max(6, *(len(d.target) for d in devs))
    print(f"{'NAME':<{w}}  {'TARGET':<{tw}}  THREADS  PYTHON")
    for d in devs:
        print(f"{d.name:<{w}}  {d.target:<{tw}}  {d.threads:>7}  {d.python}")


def cmd_check(args) -> None:
    from ..profiling.hosts import connect, load_device

    cfg = load_device(args.name)
    info = connect(cfg).check()
    print(format_info(cfg.name, cfg.target, info))


def format_info(name: str, target: str, info: dict) -> str:
    """The --check INFO dict as aligned lines; python/numpy/onnxruntime marked ok/MISSING."""
    info = dict(info)
    g = info.pop
    rows = [("device", f"{name} ({target})")]
    for key in ("python", "numpy", "onnxruntime"):
        v = g(key, None)
        rows.append((key, f"{v}  ok" if v else "MISSING"))
    rows.append(("machine", g("machine", None)))
    cpu, cores, avail = g("cpu_model", None) or g("cpu", None), g("cores", None), g("cores_available", None)
    rows.append(("cpu", ", ".join(x for x in [
        cpu, f"{cores} cores" if cores else None,
        f"{avail} available" if avail and avail != cores else None] if x)))
    osn, kernel = g("os", None), g("kernel", None)
    rows.append(("os", ", ".join(x for x in [osn, f"kernel {kernel}" if kernel else None] if x)))
    gov, f, fmax = g("governor", None), g("freq_mhz", None), g("freq_max_mhz", None)
    rows.append(("clock", ", ".join(x for x in [
        f"governor {gov}" if gov else None, f"{f} MHz" if f else None,
        f"max {fmax} MHz" if fmax else None] if x)))
    dot = g("int8_dot", None)
    if dot is not None:
        rows.append(("int8 dot product", f"yes ({dot}): onnxruntime's fast int8 kernels can use "
                     "it" if dot != "none" else "no (no asimddp/VNNI): int8 may be no faster "
                     "than fp32 here; profile both precisions to see"))
    isa = g("isa", None)
    q = g("int8_qdq", None)
    if isinstance(isa, dict):
        from ..onboard.isa import describe

        flags = ", ".join(isa.get("flags") or []) or "none found"
        rows.append(("int8 ISA", f"{describe(isa)} ({isa.get('machine')}: {flags})"))
    if isinstance(q, dict):
        rows.append(("int8 QDQ models", qdq_line(q)))
        if isinstance(q.get("error_steps"), dict) and "u8s8" in q["error_steps"]:
            rows.append(("int8 numerics", numerics_line(q)))
    t = g("temp_c", None)
    rows.append(("temperature", f"{t} °C" if t is not None else None))
    g("runner_schema", None)
    disk = g("disk_free_mb", None)
    rows.append(("disk", f"{disk} MiB free in the temporary folder" if disk is not None else None))
    for key, v in info.items():
        rows.append((key, _fmt(v) if v is not None else None))
    rows = [(k, v) for k, v in rows if v not in (None, "")]
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)


def qdq_line(q: dict) -> str:
    """The --check INFO's ``int8_qdq`` (hwnas/onboard/qdq.py's probe) as one line."""
    err = str(q.get("error") or "")
    if not q.get("runs") and err.startswith("fp32:"):  # not even the fp32 conv (opset 17)
        return (f"FAIL: this onnxruntime cannot run the fp32 probe conv either ({err}): "
                "install a newer onnxruntime")
    if not q.get("runs"):
        return (f"FAIL: this onnxruntime cannot run static QDQ int8 models ({err}); "
                "profile --precision fp32 only, or install a newer onnxruntime")
    f, i, sp = q.get("fp32_ms"), q.get("int8_ms"), q.get("speedup")
    if not (f and i and sp):
        return "run"
    how = f"{sp:.2f}x faster than fp32" if sp >= 1 else f"{1 / sp:.2f}x slower than fp32"
    return (f"run; int8 {how} on a {q.get('conv', 'probe conv')} ({i:.3f} vs {f:.3f} ms; "
            "informational: one conv, not a network)")


def numerics_line(q: dict) -> str:
    """The probe's measured int8 error per format, and the format hwnas uses here."""
    steps = q["error_steps"]
    each = ", ".join(f"{f} {v:g}" for f, v in steps.items() if isinstance(v, (int, float)))
    sat = ("U8S8 saturates here (onnxruntime's VPMADDUBSW path)" if q.get("saturates")
           else "no format saturates here")
    return (f"{sat}; max error in output steps vs exact integer arithmetic: {each} "
            f"(<= 1 is exact) -> profile and retrain quantize in {q.get('format')}")


def _fmt(v) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k}={_fmt(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v)
    return str(v)
