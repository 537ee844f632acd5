"""``hwnas demo``: the whole pipeline on an embedded default, on this machine.

1. **device** -- this machine as a local device. If the reference table that ships in
   ``latency_tables/`` (:data:`~hwnas.paths.REFERENCE_DEVICE`) was measured on a machine
   like this one (same CPU model, architecture, onnxruntime version, threads and protocol)
   *and* its sentinel networks (:mod:`hwnas.profiling.drift`), timed here, run within the drift
   threshold (+-8 %) of their table entries -- a cloud VM's CPU string is generic, and
   another host with the same string can be 2x slower -- the demo uses it (copied into
   ``$HWNAS_HOME`` when that is elsewhere) and profiles only what it lacks; otherwise it
   profiles into a fresh device named for this machine
   (``<arch>-<cores>core-<cpu hash>``; ``-quick`` for the quick protocol), so that numbers
   of another CPU never mix with this one's;
2. **profile** the demo space at a small resolution (blocks + a sample of whole networks),
   with the dataset's 10 classes (the classifier and networks the search will score);
3. **fit** the device's latency predictor (held-out check printed);
4. **search** with the zero-cost accuracy proxy (NASWOT) on the bundled digits dataset,
   with a latency budget at the median predicted latency of the space;
5. **retrain** the top winners and one baseline on digits for a few epochs and re-measure
   them on the device;
6. **report**: ``runs/<run>/report.html``.

Every step resumes: running the same command again skips what is finished (the profile's
table entries, complete trials, trained seeds, the measurement) and finishes the rest.

``--quick`` (about 2 minutes on 2 cores; the tests run it) searches a small embedded space
(:data:`QUICK_SPACE`) at 32 px with the quick measurement protocol, 100 trials, 2 winners
+ 1 baseline trained for 1 epoch; the default searches ``mobilenetv2`` at
:data:`~hwnas.paths.DEMO_RESOLUTION` (the shipped table's resolution).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import paths
from .context import Device
from .errors import HwnasError
from .profiling.drift import Drift, DriftSettings

log = logging.getLogger(__name__)

TORCH_THREADS = 1  # torch intra-op threads while scoring and training (see run_demo)

__all__ = ["DemoPlan", "FULL", "QUICK", "QUICK_SPACE", "DemoResult", "choose_device", "run_demo",
           "this_machine_name"]

#: the --quick demo's space: MobileNetV2-like, fewer stages and choices (~100 blocks at 32 px)
QUICK_SPACE = """\
# hwnas demo --quick: a small MobileNetV2-like space (written by hwnas demo; do not edit --
# the demo refuses a changed copy)
name: demo-quick
description: small MobileNetV2-like space for the quick demo
resolutions: [32]
channels: 3
classes: 10
stem: {out: 16, kernel: 3, stride: 2, act: relu6}
head: {out: 256, act: relu6}
stages:
  - {out: 16, stride: 1, depth: 1,      kernel: [3],    expand: [1]}
  - {out: 24, stride: 2, depth: [1, 2], kernel: [3, 5], expand: [3, 6], width: [0.5, 1.0]}
  - {out: 32, stride: 2, depth: [1, 2], kernel: [3, 5], expand: [3, 6], width: [0.5, 1.0]}
  - {out: 64, stride: 2, depth: [1, 2], kernel: [3, 5], expand: [3, 6], width: [0.5, 1.0]}
  - {out: 96, stride: 1, depth: 1,      kernel: [3, 5], expand: [3, 6]}
"""


@dataclass(frozen=True)
class DemoPlan:
    """The demo's settings."""

    run: str
    space: str
    resolution: int
    networks: int  # sampled whole networks profiled for the predictor
    trials: int
    top: int  # winners retrained
    baselines: tuple[str, ...]
    epochs: int
    seeds: tuple[int, ...]
    quick: bool  # the quick measurement protocol
    budget_quantile: float = 0.5  # latency budget: this quantile of the space's predicted latency
    data: str = "digits"
    notes: tuple[str, ...] = field(default=())
    subset: int | None = None  # retrain on a stratified subset of this many training images


# a larger dataset than digits is retrained on this many images, so the demo stays minutes long
DEMO_SUBSET = 5000


def plan_for(quick: bool = False, data: str = "digits") -> DemoPlan:
    """The demo's plan: FULL or QUICK, on ``data`` (digits by default; another dataset gets its
    own run, ``demo-<data>``, and retrains on :data:`DEMO_SUBSET` training images)."""
    from dataclasses import replace

    base = QUICK if quick else FULL
    if data == "digits":
        return base
    tag = "".join(c if c.isalnum() or c in "._-" else "-" for c in data.split(":")[0])
    return replace(base, run=f"{base.run}-{tag}", data=data, subset=DEMO_SUBSET)


FULL = DemoPlan(run="demo", space="mobilenetv2", resolution=paths.DEMO_RESOLUTION, networks=60,
                trials=300, top=3, baselines=("mbv2-0.35",), epochs=2, seeds=(0, 1), quick=False)
QUICK = DemoPlan(run="demo-quick", space="demo-quick", resolution=32, networks=30, trials=100,
                 top=2, baselines=("mbv2-0.35",), epochs=1, seeds=(0,), quick=True)


# ---- the device ---------------------------------------------------------------------------------

def _provenance(threads: int, protocol: dict[str, Any]) -> dict[str, Any]:
    from .onboard.bench import provenance

    return {**provenance(threads), "protocol": protocol}


def this_machine_name(prov: dict[str, Any], quick: bool = False) -> str:
    """``<arch>-<cores>core-<6 hex of the CPU model>`` (+ ``-quick``): a device name that says
    what this machine is and differs for another CPU."""
    cpu = str(prov.get("cpu_model") or "?")
    h = hashlib.sha1(cpu.encode()).hexdigest()[:6]
    name = f"{prov.get('machine') or 'cpu'}-{prov.get('cores') or '?'}core-{h}"
    return name + ("-quick" if quick else "")


@dataclass
class DeviceChoice:
    name: str
    reason: str
    protocol: Any  # hwnas.onboard.bench.Protocol
    drift: Drift | None = None  # the reference table's sentinels timed here (None: not timed)


def _table_files(d: Path) -> list[Path]:
    from .profiling.lut import BLOCKS_FILE, NETWORKS_FILE

    return [d / n for n in (BLOCKS_FILE, NETWORKS_FILE) if (d / n).is_file()]


def time_sentinels(name: str, table, protocol, threads: int = 1,
                   drift: DriftSettings | None = None, progress: bool = False) -> Drift | None:
    """Time the sentinels of ``table`` (a LatencyTable, e.g. the shipped reference one) on
    this machine with ``protocol``, as a local device called ``name`` that need not be
    registered: their drift, None if the table has no networks."""
    from .onboard.runner import read_records
    from .profiling.drift import chunk_drifts, write_layout
    from .profiling.hosts import DeviceConfig
    from .profiling.profile import RESULTS, build_bundle, run_bundle, sentinel_entries, work_root

    drift = drift or DriftSettings()
    sents = sentinel_entries(table.sentinels(drift.sentinels))
    if not sents:
        return None
    bundle = work_root(name) / f"sentinels-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        build_bundle(bundle, sents, protocol, progress, {"device": name})
        write_layout(bundle, protocol)
        run_bundle(DeviceConfig(name=name, target="local", threads=threads), bundle, progress,
                   desc="sentinels")
        chunks = chunk_drifts(read_records(str(bundle / RESULTS)), table, drift.threshold)
    finally:
        shutil.rmtree(bundle, ignore_errors=True)
    return Drift.pooled([c.drift for c in chunks])


def choose_device(plan: DemoPlan, threads: int = 1, drift: DriftSettings | None = None,
                  progress: bool = False) -> DeviceChoice:
    """The device the demo measures on (see the module docstring); registers it as local."""
    from .onboard.bench import Protocol, incompatibility
    from .profiling.hosts import DeviceConfig, save_device
    from .profiling.lut import LatencyTable
    from .profiling.profile import make_protocol

    fresh_protocol = make_protocol(threads, quick=plan.quick)
    mine = _provenance(threads, fresh_protocol.to_dict())
    ref = paths.REFERENCE_DEVICE
    name, reason, protocol = this_machine_name(mine, plan.quick), "", fresh_protocol
    timed = None
    if not plan.quick:
        ref_dev = Device.load(ref)
        home_dir = ref_dev.dir
        shipped = paths.PACKAGE_ROOT / "latency_tables" / ref
        src = home_dir if _table_files(home_dir) else shipped if _table_files(shipped) else None
        ref_local = ref_dev.config.is_local if ref_dev.has_config else True
        if src is not None and ref_local:
            try:
                if src == home_dir:
                    prov = ref_dev.table.provenance
                else:
                    import json

                    prov = json.loads(_table_files(src)[0].read_text()).get("provenance") or {}
            except (OSError, ValueError, HwnasError) as e:
                log.warning("reference table %s: unreadable (%s)", src, e)
                prov = {}
            proto = Protocol.from_dict({**(prov.get("protocol") or {}), "threads": threads})
            why = incompatibility(prov, {**mine, "protocol": proto.to_dict()}) if prov else \
                "no provenance"
            if why is None:  # provenance alike: do its sentinels run as fast here?
                try:
                    timed = time_sentinels(ref, LatencyTable.load(ref, where=src), proto,
                                           threads, drift, progress)
                except HwnasError as e:
                    log.warning("reference table %s: its sentinels could not be timed (%s)", src, e)
                if timed is not None and timed.beyond:
                    why = (f"this machine's provenance, but its {len(timed.sentinels)} sentinel "
                           f"networks run {timed.speed()} here (drift {timed.median:.3f}, beyond "
                           f"+-{100 * timed.threshold:g} %): another host behind the same CPU "
                           "string, or a busy or throttled machine")
            if why is None:
                if src != home_dir:
                    home_dir.mkdir(parents=True, exist_ok=True)
                    for f in _table_files(src) + [p for p in (src / "predictor.json",) if p.is_file()]:
                        shutil.copyfile(f, home_dir / f.name)
                    log.info("copied the shipped latency table of %s into %s", ref, home_dir)
                name, protocol = ref, proto
                check = (f"its sentinels run within +-{100 * timed.threshold:g} % here "
                         f"(drift {timed.median:.3f})" if timed is not None
                         else "it has no networks to time, so by its provenance only")
                reason = (f"the shipped reference table ({ref}) was measured on a machine like "
                          f"this one ({check}); only what it lacks is profiled")
            else:
                reason = (f"the shipped reference table ({ref}) was measured with {why}: "
                          f"profiling this machine as '{name}' instead")
        else:
            reason = f"no shipped reference table: profiling this machine as '{name}'"
    else:
        reason = f"quick measurement protocol: profiling this machine as '{name}'"
    chosen = Device.load(name)
    if chosen.has_config:
        cfg = chosen.config
        if not cfg.is_local:
            raise HwnasError(f"device '{name}' exists with target {cfg.target}; the demo needs it "
                             f"local (remove latency_tables/{name}/device.json)")
        if cfg.threads != threads:
            raise HwnasError(f"device '{name}' is set to {cfg.threads} threads; the demo measures "
                             f"with {threads}")
    else:
        save_device(DeviceConfig(name=name, target="local", threads=threads))
    return DeviceChoice(name, reason, protocol, timed)


def ensure_space(plan: DemoPlan):
    """The demo's space; the quick one is written to ``$HWNAS_HOME/search_spaces/`` once."""
    from .space import load_space, space_from_dict

    if plan.space != QUICK.space:
        return load_space(plan.space)
    import yaml

    want = space_from_dict(yaml.safe_load(QUICK_SPACE), "the demo's quick space")
    p = paths.space_files().get(plan.space)
    if p is not None:
        have = load_space(p)
        if have.params() != want.params() or have.resolutions != want.resolutions or \
                (have.stem, have.head, have.classes) != (want.stem, want.head, want.classes):
            raise HwnasError(f"{p} is not the demo's quick space (edited?); remove it and "
                             "run hwnas demo --quick again")
        return have
    from .io import atomic_write_text

    p = paths.home() / "search_spaces" / f"{plan.space}.yaml"
    atomic_write_text(p, QUICK_SPACE)
    log.info("wrote the quick demo's space to %s", p)
    return load_space(plan.space)


# ---- the run ------------------------------------------------------------------------------------

@dataclass
class DemoResult:
    plan: DemoPlan
    device: str
    device_reason: str
    report: Path
    rows: list[dict]
    seconds: dict[str, float]
    budget_ms: float | None
    measurement: str
    predictor_check: str = ""
    drift: dict | None = None  # the retrain measurement's drift (hwnas.profiling.drift.Drift.to_dict)

    def summary(self) -> str:
        from .report import fmt as _fmt
        from .report import fmt_count as _fmt_count
        from .runs import retrain_labels

        lines = [f"report: {self.report}", "",
                 f"{self.plan.run}: {self.plan.trials} trials of {self.plan.space} at "
                 f"{self.plan.resolution} px on device {self.device}"
                 + (f", latency budget {self.budget_ms:g} ms" if self.budget_ms else ""),
                 f"  {'model':<24} {'kind':<8} {'accuracy':>16} {'measured':>10} "
                 f"{'predicted':>10} {'error':>7} {'params':>9}"]
        labels = retrain_labels(self.rows)  # W1, W2, ... by measured latency, as retrain/report
        winners = sorted((r for r in self.rows if r.get("kind") == "winner"),
                         key=lambda r: int(labels[str(r.get("name"))][1:]))
        archs = [f"  {labels[str(r.get('name'))]} = {r.get('arch')}" for r in winners]
        for r in self.rows:
            lines.append(
                f"  {labels[str(r.get('name'))][:24]:<24} {str(r.get('kind')):<8} "
                f"{_fmt(r.get('acc_mean'), '.3f')} +- {_fmt(r.get('acc_std'), '.3f'):<5}   "
                f"{_fmt(r.get('measured_stat_ms') or r.get('measured_median_ms'), '.3f'):>7} ms "
                f"{_fmt(r.get('predicted_ms'), '.3f'):>7} ms {_fmt(r.get('error_pct'), '+.1f'):>6}% "
                f"{_fmt_count(r.get('params')):>9}")
        stat = next((r.get("statistic") for r in self.rows if r.get("statistic")), None)
        lines += archs
        lines += ["", f"accuracy: test split of {self.plan.data}, {self.plan.epochs} epoch(s), "
                  f"seed(s) {','.join(map(str, self.plan.seeds))}; latency: onnxruntime on "
                  f"{self.measurement}; measured = the table's statistic"
                  + (f" ({stat})" if stat else "") + ", error = (predicted - measured) / measured"]
        if self.drift:
            from .profiling.drift import note

            lines.append(note(self.drift))
        if self.predictor_check:
            lines.append(f"predictor (held out): {self.predictor_check}")
        lines.append("time: " + ", ".join(f"{k} {v:.0f} s" for k, v in self.seconds.items())
                     + f" (total {sum(self.seconds.values()):.0f} s)")
        return "\n".join(lines)


def _step(i: int, n: int, text: str) -> None:
    log.info("[%d/%d] %s", i, n, text)


def _budget(plan: DemoPlan, space, device: Device) -> float:
    """``budget_quantile`` of the predicted latency of 200 seeded samples of the space, to
    2 significant digits (an existing run keeps its own)."""
    import numpy as np

    from .runs import CONFIG_FILE, RunConfig

    run_dir = paths.runs_dir() / plan.run
    if (run_dir / CONFIG_FILE).is_file():
        try:
            b = RunConfig.read(run_dir).latency_budget_ms
            if b:
                return float(b)
        except HwnasError:  # unreadable: the search refuses it with its own line
            pass
    from dataclasses import replace

    pred = device.predictor()
    archs = [replace(a, classes=10) for a in space.sample(seed=0, n=200, resolution=plan.resolution)]
    q = float(np.quantile(np.asarray(pred.predict(archs), dtype=float), plan.budget_quantile))
    return float(f"{q:.2g}")


def _predictor_check(device: Device, spaces) -> str:
    """The held-out accuracy of the predictor on the device's networks (as in the report)."""
    from .report import device_parity, parity_metrics

    measured, predict, in_sample, why = device_parity(device, device.table, spaces)
    if predict is None:
        return f"not evaluated ({why})"
    keys = sorted(measured)
    m = parity_metrics(predict(keys), [measured[k] for k in keys])
    if not m.get("n"):
        return "not evaluated"
    return (f"{m['n']:.0f} networks, MAPE {m['mape']:.1f} %, {100 * m['within_band']:.0f} % "
            f"within +-10 %, Kendall tau {m.get('kendall_tau', float('nan')):.3f} "
            + ("(in-sample)" if in_sample else "(5-fold, held out)"))


def run_demo(quick: bool = False, progress: bool = True, plan: DemoPlan | None = None,
             drift: DriftSettings | None = None, data: str = "digits") -> DemoResult:
    """Run (or resume) the demo; returns where the report is and the retrain table."""
    import torch

    plan = plan or plan_for(quick, data)
    threads = torch.get_num_threads()
    # one torch thread: on 2 cores (and on a busy machine) the small networks of the demo
    # score and train several times faster than with a thread per core fighting for them
    torch.set_num_threads(TORCH_THREADS)
    try:
        return _run(plan, progress, (drift or DriftSettings()).validate())
    finally:
        torch.set_num_threads(threads)


def _run(plan: DemoPlan, progress: bool, drift: DriftSettings) -> DemoResult:
    import optuna

    from .data import load_dataset
    from .profiling.profile import profile
    from .report import write_report
    from .retrain.run import RetrainSettings, run_retrain
    from .search import SearchSettings, run_search
    from .train import Recipe

    n = 6
    times: dict[str, float] = {}
    t = time.monotonic()
    classes = load_dataset(plan.data, plan.resolution).classes  # a bad --data fails first
    space = ensure_space(plan)
    _step(1, n, "device: this machine")
    dev = choose_device(plan, drift=drift, progress=progress)
    log.info("      %s", dev.reason)
    times["device"] = time.monotonic() - t

    t = time.monotonic()
    _step(2, n, f"profile {space.name} at {plan.resolution} px on {dev.name} "
          f"({'quick' if plan.quick else 'default'} protocol, {plan.networks} sampled networks)")
    # the space with the dataset's classes: the classifier blocks and the sampled networks are
    # then those the search scores (a 1000-class table predicts a 10-class head poorly)
    from dataclasses import replace

    searched = replace(space, classes=classes)
    rep = profile(dev.name, searched, plan.resolution,
                  networks=plan.networks, protocol=dev.protocol, progress=progress, drift=drift)
    log.info("      %s", rep.summary())
    times["profile"] = time.monotonic() - t

    t = time.monotonic()
    _step(3, n, f"fit the latency predictor of {dev.name}")
    profiled = Device.load(dev.name)  # read once, after profiling into it
    check = _predictor_check(profiled, [space, searched])
    budget = _budget(plan, space, profiled)
    log.info("      held out: %s; latency budget %g ms (median predicted latency of the space)",
             check, budget)
    times["predictor"] = time.monotonic() - t

    t = time.monotonic()
    _step(4, n, f"search: {plan.trials} trials, NSGA-II, zero-cost accuracy (NASWOT) on "
          f"{plan.data}, budget {budget:g} ms")
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        res = run_search(SearchSettings(space=plan.space, device=dev.name, name=plan.run,
                                        trials=plan.trials, latency_budget_ms=budget,
                                        accuracy="zero-cost", data=plan.data,
                                        resolution=plan.resolution), progress=progress)
    finally:
        optuna.logging.set_verbosity(verbosity)
    log.info("      %d complete trials, %d feasible, Pareto front %d", res.complete, res.feasible,
             len(res.pareto))
    times["search"] = time.monotonic() - t

    t = time.monotonic()
    _step(5, n, f"retrain the top {plan.top} winners and {', '.join(plan.baselines)} on "
          f"{plan.data} ({plan.epochs} epoch(s)"
          f"{f' on {plan.subset} training images' if plan.subset else ''}, "
          f"seed(s) {','.join(map(str, plan.seeds))}) and "
          f"re-measure them on {dev.name}")
    rr = run_retrain(RetrainSettings(run=plan.run, select="top", top=plan.top, seeds=plan.seeds,
                                     baselines=plan.baselines,
                                     recipe=Recipe(epochs=plan.epochs, subset=plan.subset),
                                     protocol=dev.protocol, quick=plan.quick, drift=drift),
                     progress=progress)
    times["retrain"] = time.monotonic() - t

    t = time.monotonic()
    _step(6, n, "report")
    out = write_report(plan.run)
    for note in out.data.notes:
        log.info("      note: %s", note)
    times["report"] = time.monotonic() - t
    return DemoResult(plan, dev.name, dev.reason, out.path, rr.rows, times, budget,
                      out.data.measurement.text(), check, rr.meta.get("drift"))
