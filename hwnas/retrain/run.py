"""Retrain a search run's winners and baselines with one recipe, and re-measure them on the device.

``run_retrain(RetrainSettings(run=...))`` closes the loop of a search run ``runs/RUN/``:

1. **select** winners from the run's Pareto front (:func:`select_winners`: ``top`` K spread
   along the front, the ``knee``, the best within the run's latency ``budget``, or ``all``)
   and build the baselines (MobileNetV2 widths, MobileNetV3-small) at the run's resolution
   with the dataset's classes;
2. **train** every model from scratch with the same :class:`~hwnas.train.Recipe` for each
   seed (:func:`hwnas.train.train_arch`; fixed seeds), evaluate on the dataset's test
   split, and export the first seed's trained network to ``runs/RUN/models/<name>.onnx``;
3. **measure** all the ONNX files on the device in ONE interleaved call with the
   profiler's protocol (:func:`hwnas.profiling.measure.measure`; by default the protocol the
   device's latency table was measured with, so measured and predicted are comparable),
   with the table's sentinels: the drift goes into retrain.json and the summary;
4. **predict** each model's latency with the device's latency predictor;
5. write ``runs/RUN/retrain.csv`` (:data:`COLUMNS`) and ``runs/RUN/retrain.json`` (settings,
   recipe, protocol, the summary of :func:`summarize`).

Files, all written atomically::

    runs/RUN/retrain/<recipe id>/<name>/seed<S>.pt     training checkpoint (torch.save of
                                                       state dicts; read with weights_only)
    runs/RUN/retrain/<recipe id>/<name>/seed<S>.json   the finished training's result
    runs/RUN/retrain/measured-<device>.json            the last interleaved measurement
    runs/RUN/models/<name>.onnx                        deployable model (first seed's weights)

The recipe id (``e<epochs>-<hash>``) hashes the recipe, the dataset and the resolution, so
another ``--epochs`` or learning rate trains anew next to the old results instead of
mixing with them. Resuming: a finished (model, seed) -- its ``.json`` exists -- is never
retrained; an unfinished one continues from its per-epoch checkpoint; the measurement is
reused when it holds exactly the same models measured with the same protocol (a new model
re-measures all of them together, for fairness).

On many machines (``storage``: a work queue in an Optuna storage, by default the run's own
RDB storage), each (model, seed) is an item that any process claims; ``train_only`` workers
train and stop, ``collect`` gathers the results for the measurement
(:mod:`hwnas.retrain.queue`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..arch import Arch
from ..context import Device
from ..errors import HwnasError
from ..io import atomic_write_json, atomic_write_text
from ..profiling.measure import measurement_protocol, protocol_matches_table
from ..runs import (
    CONFIG_FILE,
    RETRAIN_FILE,
    csv_text,
    load_retrain,
    load_run,
    retrain_labels,
    winner_arch,
)
from ..search.pareto import knee_index, spread_indices
from .result import Model
from .table import format_summary, format_table, summarize
from .table import rows as table_rows

log = logging.getLogger(__name__)

#: the columns of retrain.csv, in order (the report viewer reads these)
COLUMNS = ["name", "kind", "arch", "params", "macs", "peak_act_bytes", "predicted_ms",
           "measured_median_ms", "measured_iqr_ms", "measured_n", "error_pct", "acc_mean",
           "acc_std", "seeds", "epochs", "onnx"]
#: extra columns after :data:`COLUMNS`: the statistic the predictor predicts (the device
#: table's) and the measured value of that statistic, which ``error_pct`` compares with
#: ``search_score`` is the winner's score in the search, ``search_metric`` what it is (the run's
#: score column: naswot_score, val_acc, supernet_val_acc, ...; hwnas.runs.score_column)
EXTRA_COLUMNS = ["statistic", "measured_stat_ms", "predicted_by", "search_score", "search_metric",
                 "search_latency_ms", "weights", "train_s"]
DEFAULT_BASELINES = ("mbv2-0.35", "mbv2-0.5", "mbv2-0.75", "mbv2-1.0")
SELECTIONS = ("top", "knee", "budget", "all")
MEASURE_FORMAT = "hwnas-retrain-measure/1"
CSV_FILE = RETRAIN_FILE
JSON_FILE = "retrain.json"

__all__ = ["COLUMNS", "DEFAULT_BASELINES", "SELECTIONS", "Model", "RetrainResult",
           "RetrainSettings", "format_summary", "format_table", "knee_index", "load_retrain",
           "parse_seeds", "retrain_labels", "run_retrain", "select_winners", "spread_indices",
           "summarize"]


# ---- settings ---------------------------------------------------------------------------------

@dataclass
class RetrainSettings:
    """What ``hwnas retrain`` does; ``None`` means "the run's" (device, data)."""

    run: str
    select: str = "top"
    top: int = 3
    seeds: tuple[int, ...] = (0, 1, 2)
    baselines: tuple[str, ...] = DEFAULT_BASELINES
    device: str | None = None
    data: str | None = None
    recipe: Any = None  # a hwnas.train.Recipe (default: Recipe())
    protocol: Any = None  # a hwnas.onboard.bench.Protocol (default: measurement_protocol())
    quick: bool = False  # the quick measurement preset (tests, smoke runs)
    protocol_overrides: dict = field(default_factory=dict)  # warmup, passes, ... (None: keep)
    feedback: bool = False  # add the measurements to the device's networks.json
    torch_device: str = "cpu"  # where to train: cpu, cuda, mps or auto (hwnas.train)
    drift: Any = None  # a hwnas.profiling.drift.DriftSettings (default: DriftSettings())
    storage: str | None = None  # the work queue's storage (None: the run's RDB; "none": here)
    train_only: bool = False  # claim and train queue items, no measurement
    collect: bool = False  # no training: gather every result, measure, tabulate
    int8: bool = False  # also each model quantized: fp32 and int8 accuracy with onnxruntime
    from_supernet: str | None = None  # deploy winners from a supernet ("": the search's)
    finetune_epochs: int = 0  # --from-supernet: fine-tune epochs after BN recalibration
    distill: bool = False  # ... from the supernet's largest subnet
    baselines_from_supernet: bool = False  # baselines the space holds are deployed too

    def validate(self) -> RetrainSettings:
        if self.train_only and self.collect:
            raise HwnasError("--train-only and --collect exclude each other")
        if self.select not in SELECTIONS:
            raise HwnasError(f"--select '{self.select}': choose from {', '.join(SELECTIONS)}")
        if self.select == "top" and self.top < 1:
            raise HwnasError(f"--top must be >= 1, got {self.top}")
        if not self.seeds:
            raise HwnasError("--seeds: give at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise HwnasError(f"--seeds {','.join(map(str, self.seeds))}: a seed is listed twice")
        from ..baselines import BASELINES

        for b in self.baselines:
            if b not in BASELINES:
                raise HwnasError(f"unknown baseline '{b}' (known: {', '.join(BASELINES)})")
        if len(set(self.baselines)) != len(self.baselines):
            raise HwnasError("--baselines: a baseline is listed twice")
        if self.finetune_epochs < 0:
            raise HwnasError(f"--finetune-epochs must be >= 0, got {self.finetune_epochs}")
        if self.from_supernet is None and (self.finetune_epochs or self.distill
                                           or self.baselines_from_supernet):
            raise HwnasError("--finetune-epochs, --distill and --baselines-from-supernet go "
                             "with --from-supernet")
        if self.distill and not self.finetune_epochs:
            raise HwnasError("--distill fine-tunes from the largest subnet: give "
                             "--finetune-epochs N (N >= 1)")
        return self


def parse_seeds(text: str | int) -> tuple[int, ...]:
    """``"3"`` -> (0, 1, 2) (a count); ``"0,5,7"`` or ``"7,"`` -> those seeds."""
    s = str(text).strip()
    try:
        if "," in s:
            seeds = tuple(int(x) for x in s.split(",") if x.strip())
        else:
            n = int(s)
            if n < 1:
                raise ValueError
            seeds = tuple(range(n))
    except ValueError:
        raise HwnasError(f"--seeds '{text}': a count (3 = seeds 0,1,2) or a comma list of "
                         "seeds (0,5,7; one seed: 7,)") from None
    if not seeds or any(x < 0 for x in seeds):
        raise HwnasError(f"--seeds '{text}': seeds must be integers >= 0")
    return seeds


# ---- selecting winners --------------------------------------------------------------------------

def select_winners(pareto: Sequence[dict], select: str = "top", top: int = 3,
                   budget_ms: float | None = None, score: str = "score") -> list[dict]:
    """The Pareto rows to retrain (each with ``arch``, ``latency_ms`` and the search's
    ``score`` column, :attr:`hwnas.runs.Run.score`), sorted by predicted latency. ``top``: ``top`` spread along the front (:func:`spread_indices`);
    ``knee``: :func:`knee_index`; ``budget``: the most accurate with ``latency_ms <=
    budget_ms``; ``all``: the whole front."""
    rows = [r for r in pareto if r.get("arch")]
    rows.sort(key=lambda r: (float(r.get("latency_ms") or 0.0), -float(r.get(score) or 0.0)))
    if not rows:
        raise HwnasError("the run's Pareto front is empty (pareto.csv has no feasible trial); "
                         "run the search longer or relax its budgets")
    if select == "all":
        return rows
    if select == "top":
        return [rows[i] for i in spread_indices(len(rows), top)]
    if select == "knee":
        i = knee_index([float(r["latency_ms"]) for r in rows], [float(r[score]) for r in rows])
        return [rows[i]]
    if select == "budget":
        if budget_ms is None:
            raise HwnasError("--select budget: the run has no latency budget (searched without "
                             "--latency-budget); use --select knee|all or --top K")
        ok = [r for r in rows if float(r["latency_ms"]) <= budget_ms]
        if not ok:
            raise HwnasError(f"--select budget: no winner within {budget_ms:g} ms")
        return [max(ok, key=lambda r: (float(r[score]), -float(r["latency_ms"])))]
    raise HwnasError(f"--select '{select}': choose from {', '.join(SELECTIONS)}")


# ---- models -------------------------------------------------------------------------------------

def _winner_models(run, settings: RetrainSettings, adapt) -> list[Model]:
    budget = run.config.get("latency_budget_ms")
    rows = select_winners(run.pareto, settings.select, settings.top, budget, run.score)
    out = []
    for r in rows:
        arch = winner_arch(run.path, r)
        name = Path(str(r.get("file") or "")).stem or arch.file_stem()
        search = {**r, "search_score": r.get(run.score), "search_metric": run.score}
        out.append(Model(name, "winner", adapt(arch), search))
    return out


def _baseline_models(names: Sequence[str], resolution: int, adapt) -> list[Model]:
    from ..baselines import baseline

    return [Model(n, "baseline", adapt(baseline(n, resolution))) for n in names]


# ---- training -----------------------------------------------------------------------------------

def recipe_id(recipe, data_spec: str, resolution: int) -> str:
    """``e<epochs>-<hash>``: what makes two trainings of one arch and seed the same."""
    d = {k: v for k, v in recipe.to_dict().items() if k != "threads"}
    blob = json.dumps({"recipe": d, "data": data_spec, "resolution": resolution}, sort_keys=True)
    return f"e{recipe.epochs}-{hashlib.sha1(blob.encode()).hexdigest()[:10]}"


# ---- measuring and predicting -----------------------------------------------------------------------

def _measure(dev: Device, models: list[Model], run_dir: Path, protocol, feedback: bool,
             progress: bool, drift=None, files: Sequence[str] = ()) -> tuple[dict[str, Any], Any]:
    """Stats per arch string (and per ONNX file in ``files``, relative to ``run_dir``: the
    int8 models), measured in one interleaved call with the table's sentinels (or the stored
    measurement of exactly these models with this protocol), and the drift."""
    from ..profiling.drift import Drift
    from ..profiling.lut import Stats
    from ..profiling.measure import measure

    device = dev.name
    archs = {m.arch.to_string(): m for m in models}
    cache = run_dir / "retrain" / f"measured-{device}.json"
    proto = protocol.to_dict()
    if cache.is_file():
        try:
            c = json.loads(cache.read_text())
            ok = (c.get("format") == MEASURE_FORMAT and c.get("protocol") == proto
                  and set(c.get("stats", {})) == set(archs) | set(files)
                  and (c.get("feedback") or not feedback))
            if ok:
                log.info("measurement of these %d models on %s: from %s", len(archs), device,
                         cache)
                return ({k: Stats.from_dict(v, f"{cache}: {k[:40]}") for k, v in c["stats"].items()},
                        Drift.from_dict(c.get("drift")))
        except (OSError, ValueError, HwnasError) as e:
            log.warning("%s: unreadable (%s); measuring again", cache, e)
    onnx = {s: run_dir / m.onnx_rel for s, m in archs.items()}
    log.info("measuring %d models on %s, interleaved (%d passes, >= %d samples each)",
             len(archs), device, protocol.passes, protocol.min_repeats)
    res = measure(dev, [m.arch for m in archs.values()], [run_dir / f for f in files],
                  onnx=onnx, protocol=protocol, source="retrain" if feedback else None,
                  progress=progress, drift=drift, what="retrain measurement")
    res.stats.update({f: res.stats.pop(str(run_dir / f)) for f in files})
    atomic_write_json(cache, {"format": MEASURE_FORMAT, "device": device, "protocol": proto,
                              "feedback": feedback, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                              "stats": {k: v.to_dict() for k, v in res.stats.items()},
                              "drift": res.drift.to_dict() if res.drift else None})
    return res.stats, res.drift


def _predict(dev: Device, archs: list[Arch]) -> tuple[list[float | None], str, str]:
    """(predicted ms per arch, what predicted them, the statistic predicted)."""

    from ..profiling.lut import DEFAULT_STATISTIC, lut_sum

    table = dev.table if dev.has_table else None
    statistic = table.statistic if table is not None else DEFAULT_STATISTIC
    try:
        pred = dev.predictor()
        vals, why = pred.predict_each(archs)
        if why:  # the others are still predicted
            log.warning("%d of %d models not predicted: %s", vals.count(None), len(vals), why)
        return vals, "predictor", getattr(pred, "statistic", None) or statistic
    except HwnasError as e:
        log.warning("no latency predictor for '%s' (%s); predicting with the table's block sum",
                    dev.name, str(e).splitlines()[0] if str(e) else type(e).__name__)
    blocks = table.latencies()[0] if table is not None else {}
    return ([lut_sum(blocks, a) for a in archs],  # None where the table lacks a block
            "lut-sum" if table is not None else "none", statistic)


# ---- the whole step -----------------------------------------------------------------------------------

@dataclass
class RetrainResult:
    run_dir: Path
    rows: list[dict]
    meta: dict
    trained: int  # (model, seed) trainings finished in this call

    def summary(self) -> str:
        return format_summary(self.rows, self.meta)


def _recipe_text(r) -> str:
    return (f"{r.optimizer} lr {r.lr:g}, cosine, batch {r.batch_size}, wd {r.weight_decay:g}, "
            f"label smoothing {r.label_smoothing:g}, augment {'on' if r.augment else 'off'}"
            + (f", subset {r.subset}" if r.subset else ""))


def run_retrain(settings: RetrainSettings, progress: bool = True) -> RetrainResult:
    """Train, export, measure, predict and tabulate (see the module docstring)."""
    from ..data import load_dataset
    from ..train import Recipe, adapt_arch, resolve_torch_device
    from . import queue as rq

    settings.validate()
    run = load_run(settings.run)
    cfg = run.config
    device = settings.device or cfg.get("device")
    if not device and not settings.train_only:
        raise HwnasError(f"run '{run.name}' names no device; give --device")
    resolution = int(cfg.get("resolution") or 0)
    if resolution <= 0:
        raise HwnasError(f"{run.path / CONFIG_FILE}: no resolution")
    data_spec = settings.data or cfg.get("data") or "digits"
    recipe = settings.recipe or Recipe()
    rid = recipe_id(recipe, data_spec, resolution)
    if settings.train_only:
        dev = target = protocol = None
    else:  # measuring needs a registered device: fail before training
        dev = Device.load(device)
        target = dev.config.target
        protocol = settings.protocol or measurement_protocol(dev, settings.quick,
                                                             **settings.protocol_overrides)
    url = rq.queue_url(settings.storage, cfg, run.path)
    queue = rq.open_queue(url, rq.queue_name(rid, cfg.get("study_name") or run.name), run.path,
                          optional=settings.collect)  # --collect: the queue only gives hints
    data = load_dataset(data_spec, resolution, 0)  # the fixed split: one test set for all

    def adapt(a: Arch) -> Arch:
        return adapt_arch(replace(a, resolution=resolution), data)

    models = [*_winner_models(run, settings, adapt),
              *_baseline_models(settings.baselines, resolution, adapt)]
    src = None
    if settings.from_supernet is not None:  # refusals before anything trains (hwnas.retrain.deploy)
        from . import deploy

        src = deploy.open_source(settings.from_supernet, cfg, data_spec, resolution, data,
                                 settings.finetune_epochs, settings.distill)
        deploy.assign(src, models, settings.baselines_from_supernet)
    log.info("%s %d winner(s) and %d baseline(s) on %s at %d px, %d epoch(s), seeds %s%s",
             "collecting" if settings.collect else "retraining", sum(m.kind == "winner" for m in models), len(settings.baselines), data_spec,
             resolution, recipe.epochs, ",".join(map(str, settings.seeds)),
             f" (work queue {queue.name} in {url})" if queue else "")
    torch_device = resolve_torch_device(settings.torch_device)  # fails before any training
    alone = [m for m in models if not m.tag]  # the models trained stand-alone
    plan = None
    if not settings.collect:  # said before it starts: the trainings and about how long
        from .plan import make_plan

        plan = make_plan(models, settings.seeds, recipe, data, run.path, rid, torch_device)
        log.info("%s", plan.text())
    trained = 0
    if src is not None and not settings.train_only:
        trained += deploy.deploy_models(src, [m for m in models if m.tag], settings.seeds, data,
                                        data_spec, recipe, run.path, rid, progress, torch_device)
    if queue is not None and not settings.collect:
        trained += rq.train_queue(queue, alone, settings.seeds, data, data_spec, recipe, run.path,
                                  rid, progress, torch_device, wait=not settings.train_only)
    elif not settings.collect:
        trained += rq.train_local(alone, data, data_spec, recipe, settings.seeds, run.path, rid,
                                  progress, torch_device)
    if settings.train_only:
        left = queue.pending([rq.Item.of(m, s, False) for m in alone for s in settings.seeds]) \
            if queue is not None else []
        return RetrainResult(run.path, [], {"run": run.name, "recipe_id": rid, "queue": url,
                                            "pending": [it.key for it in left]}, trained)
    results = rq.collect_results(models, settings.seeds, run.path, rid, queue,
                                 "--collect" if settings.collect else "retrain")
    same = protocol_matches_table(dev, protocol)
    q8 = {}
    if settings.int8:  # seed 0's ONNX models quantized, timed beside fp32 (hwnas.retrain.int8)
        from ..onboard.isa import detect
        from ..profiling.quantize import resolve_format
        from .int8 import quantize_models

        local = dev.config_or_default.is_local
        table = dev.table_or_new()
        isa = table.provenance.get("isa") or (detect() if local else None)
        q8 = quantize_models({m.name: m.onnx_rel for m in models}, run.path, data, progress=progress,
                             fmt=resolve_format(table=table, local=local), device_isa=isa)
    stats, drift = _measure(dev, models, run.path, protocol, settings.feedback, progress,
                            settings.drift, files=[q["onnx_int8"] for q in q8.values()])
    if settings.feedback:  # the measurements joined (or made) the table: read it afresh
        dev = Device.load(device)
    predicted, predicted_by, statistic = _predict(dev, [m.arch for m in models])
    rows = table_rows(models, results, stats, predicted, predicted_by, statistic, settings.seeds,
                 recipe.epochs)
    if settings.int8:
        from . import int8 as retrain_int8

        retrain_int8.add_columns(rows, models, q8, stats,
                                 retrain_int8.predict_int8(dev, [m.arch for m in models]),
                                 cfg.get("precision"))
    meta = {"run": run.name, "device": device, "target": target,
            "protocol": protocol.to_dict(), "statistic": statistic,
            "predicted_by": predicted_by, "protocol_matches_table": same, "data": data_spec, "resolution": resolution,
            "recipe": recipe.to_dict(), "recipe_id": rid, "recipe_text": _recipe_text(recipe),
            "seeds": list(settings.seeds), "select": settings.select,
            "top": settings.top if settings.select == "top" else None,
            "baselines": list(settings.baselines), "feedback": settings.feedback,
            "drift": drift.to_dict() if drift is not None else None,
            "drift_correct": bool(settings.drift is not None and settings.drift.correct),
            "queue": url, "trained_here": trained,
            "plan": None if plan is None else {"trainings": plan.models * plan.seeds,
                                               "todo": plan.todo, "estimate_s": plan.estimate_s},
            "supernet": src.describe() if src is not None else None,
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    from .int8 import COLUMNS as INT8_COLUMNS

    cols = COLUMNS + EXTRA_COLUMNS + (list(INT8_COLUMNS) if settings.int8 else [])
    atomic_write_text(run.path / CSV_FILE, csv_text(rows, cols, extra=False))
    atomic_write_json(run.path / JSON_FILE, {**meta, "summary": summarize(rows),
                                             "settings": _settings_dict(settings)})
    if settings.feedback:
        log.info("added %d whole-network measurements to %s's networks.json (source retrain); "
                 "the predictor refits from them when next loaded", len(stats), device)
    return RetrainResult(run.path, rows, meta, trained)


def _settings_dict(s: RetrainSettings) -> dict:
    d = asdict(replace(s, recipe=None, protocol=None))
    d["recipe"] = s.recipe.to_dict() if s.recipe is not None else None
    d["protocol"] = s.protocol.to_dict() if s.protocol is not None else None
    d["drift"] = asdict(s.drift) if s.drift is not None else None
    return d
