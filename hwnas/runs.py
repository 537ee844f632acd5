"""A run folder, ``runs/RUN/``: its files, reading it back, and the one typed CSV reader.

The search creates a run and writes it; retrain and the report read it (and retrain adds
its results). Everything here is plain files -- no Optuna, no torch::

    runs/RUN/config.json     every setting, its identity, versions, the device's provenance
                             (:class:`RunConfig` writes and reads it)
    runs/RUN/journal.log     the Optuna study (unless the run keeps it in another storage)
    runs/RUN/trials.csv      every trial (:func:`trial_columns`, then p_<param> columns)
    runs/RUN/pareto.csv      the feasible non-dominated trials (:func:`pareto_columns`)
    runs/RUN/winners/*.yaml  their arch files
    runs/RUN/retrain.csv     the retrained winners and baselines (hwnas.retrain.run.COLUMNS)

The search's score is named for what computed it (:func:`score_column`): ``naswot_score``
(the zero-cost proxy), ``val_acc`` (validation accuracy of a short training),
``supernet_val_acc`` / ``supernet_loglik`` (a subnet of the supernet), ``table_acc`` (looked
up in measured results), ``predicted_acc`` (the learned accuracy predictor), ``score`` (an
injected function). Only a trained test accuracy (retrain.csv) is called accuracy. Runs
written before had the score in a column ``accuracy``: :func:`load_run` reads it as the
run's score column.

One rule types every CSV cell on reading (:func:`read_rows`): counts (``params``, ``macs``,
bytes, trial numbers) are ints, latencies and accuracies floats, ``feasible`` a bool,
integer ``p_*`` parameters ints, an empty cell None, anything else the text.

The **identity** of a run (:data:`IDENTITY`) is what its trials mean: a search launched
again with another space, device, resolution, objectives, budgets, accuracy estimator or
data is refused (:func:`check_existing_run`) instead of mixing with the old trials.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .arch import Arch, load_arch, parse_string, save_arch
from .errors import HwnasError
from .io import atomic_write_json, atomic_write_text, loads_json
from .paths import JOURNAL, runs_dir

if TYPE_CHECKING:
    from .search.settings import SearchSettings
    from .space import SearchSpace

CONFIG_FILE = "config.json"
TRIALS_FILE = "trials.csv"
PARETO_FILE = "pareto.csv"
RETRAIN_FILE = "retrain.csv"
WINNERS_DIR = "winners"

#: what every trial measures (the fields of :class:`hwnas.search.objective.Metrics`); in files
#: "score" is the run's score column (:func:`score_column`)
METRICS = ("score", "latency_ms", "params", "macs", "memory_bytes")
COSTS = METRICS[1:]
#: the column of the search's score in runs written before it was named for its estimator
LEGACY_SCORE = "accuracy"
#: what each accuracy estimator's score is (config.json's ``accuracy``, or the estimator name)
SCORE_COLUMNS = {"zero-cost": "naswot_score", "naswot": "naswot_score", "train": "val_acc",
                 "short-train": "val_acc", "supernet": "supernet_val_acc",
                 "table": "table_acc", "predictor": "predicted_acc"}
#: what ``--accuracy supernet`` scores a subnet by (``--supernet-metric``): validation accuracy,
#: or validation log-likelihood (mean log-probability of the true class = -cross-entropy), which
#: ranks with less noise (ranking benchmark: self-agreement tau 0.62 vs 0.33 on 2,000 images)
SUPERNET_METRICS = ("accuracy", "loglik")
SCORE_NAMES = frozenset({*SCORE_COLUMNS.values(), "supernet_loglik", "score"})
#: trial user attributes that are also columns of trials.csv / pareto.csv
SEED_ATTR = "seed"
WORKER_ATTR = "worker"


def trial_columns(score: str) -> list[str]:
    """The first columns of trials.csv for a run whose score column is ``score``."""
    return ["number", "state", SEED_ATTR, "arch", score, *COSTS, "feasible", "violation_latency",
            "violation_params", "datetime_start", "duration_s", WORKER_ATTR]


def pareto_columns(score: str) -> list[str]:
    """The columns of pareto.csv for a run whose score column is ``score``."""
    return ["trial", "arch", score, *COSTS, SEED_ATTR, "file"]


#: the columns of runs written before the score was named (still read: :func:`load_run`)
TRIAL_COLUMNS = trial_columns(LEGACY_SCORE)
PARETO_COLUMNS = pareto_columns(LEGACY_SCORE)


def score_column(accuracy: str | None, supernet_metric: str | None = None,
                 injected: bool = False) -> str:
    """The column of the search's score for an accuracy estimator ``accuracy`` (``zero-cost``,
    ``train``, ``supernet``, ``table:FILE``, ``predictor:FILE``): what the number is, never
    "accuracy" (only a trained test accuracy is). ``injected``: a caller's function, ``score``."""
    if injected:
        return "score"
    kind = str(accuracy or "zero-cost").split(":", 1)[0]
    if kind == "supernet" and supernet_metric == "loglik":
        return "supernet_loglik"
    return SCORE_COLUMNS.get(kind, "score")


def config_score_column(config: Mapping[str, Any]) -> str:
    """:func:`score_column` of a run's config.json (its ``score_column``, written since)."""
    if isinstance(config.get("score_column"), str) and config["score_column"] in SCORE_NAMES:
        return config["score_column"]
    ident = config.get("identity") or {}
    acc = config.get("accuracy") or ident.get("accuracy")
    metric = config.get("supernet_metric") or ident.get("supernet_metric") or \
        (config.get("accuracy_settings") or {}).get("metric")
    return score_column(acc, metric, bool(config.get("injected_estimators")))


#: settings that define what a run's trials mean: a re-run must not change them
IDENTITY = ("space", "space_sha1", "device", "resolution", "objectives", "latency_budget_ms",
            "max_params", "accuracy", "data", "classes", "precision", "supernet_metric")

__all__ = [
    "CONFIG_FILE", "COSTS", "IDENTITY", "JOURNAL", "LEGACY_SCORE", "METRICS", "PARETO_COLUMNS",
    "PARETO_FILE", "RETRAIN_FILE", "SCORE_COLUMNS", "SEED_ATTR", "TRIALS_FILE", "TRIAL_COLUMNS",
    "WINNERS_DIR", "WORKER_ATTR", "Run", "RunConfig", "check_existing_run", "config_score_column", "csv_text",
    "finite", "identity", "load_retrain", "load_run", "measured_ms", "pareto_columns", "read_config",
    "read_retrain", "read_rows", "retrain_labels", "run_path", "score_column", "space_sha1",
    "trial_columns", "typed", "winner_arch", "write_tables",
]


# ---- the one typed reader ------------------------------------------------------------------------

INT_COLUMNS = frozenset({"number", "trial", "params", "macs", "memory_bytes", "peak_act_bytes",
                         "measured_n", "epochs"})
FLOAT_COLUMNS = frozenset({
    "accuracy", "latency_ms", "violation_latency", "violation_params", "duration_s",
    "predicted_ms", "measured_median_ms", "measured_iqr_ms", "error_pct", "acc_mean", "acc_std",
    *sorted(SCORE_NAMES), "search_score",
    "measured_stat_ms", "search_latency_ms", "train_s",
    # hwnas retrain --int8: the quantized model's accuracy and its latency on the device
    "acc_onnx_fp32", "acc_int8", "acc_int8_delta_pp", "measured_int8_median_ms",
    "measured_int8_iqr_ms", "measured_int8_stat_ms", "predicted_int8_ms", "int8_speedup"})
_INT_TEXT = re.compile(r"-?\d+")


def finite(v: Any) -> float | None:
    """``v`` as a finite float; None for an empty, non-numeric or non-finite value."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def typed(row: dict[str | None, str | None]) -> dict[str, Any]:
    """One CSV row with typed values (the rule in the module docstring); cells beyond the
    header (``csv.DictReader``'s ``None`` key) are dropped."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        if k is None:
            continue
        if v is None or v == "":
            out[k] = None
        elif k in INT_COLUMNS:
            try:
                out[k] = int(float(v))
            except (ValueError, OverflowError):
                raise ValueError(f"column {k}: {_brief(v)} is not an integer") from None
        elif k in FLOAT_COLUMNS:
            try:
                out[k] = float(v)
            except ValueError:
                raise ValueError(f"column {k}: {_brief(v)} is not a number") from None
        elif k == "feasible":
            out[k] = v == "True"
        elif k.startswith("p_") and _INT_TEXT.fullmatch(v):
            out[k] = int(v)
        else:
            out[k] = v
    return out


def read_rows(path: str | Path, required: Sequence[str] = (),
              finite: Sequence[str] = ()) -> list[dict[str, Any]] | None:
    """The typed rows of a run's CSV file (trials, pareto or retrain); None if it does not
    exist; HwnasError (one line naming the line and column) if it cannot be read, a cell does
    not have its column's type, a ``required`` cell is empty or a ``finite`` one is not a
    finite number."""
    p = Path(path)
    if not p.is_file():
        return None
    rows: list[dict[str, Any]] = []
    reader = None
    try:
        with open(p, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            for r in reader:
                t = typed(r)
                for k in required:
                    if t.get(k) is None:
                        raise ValueError(f"column {k}: empty")
                for k in finite:
                    v = t.get(k)
                    if v is not None and not (isinstance(v, (int, float))
                                              and math.isfinite(v)):
                        raise ValueError(f"column {k}: {v!r} is not a finite number")
                rows.append(t)
    except (OSError, csv.Error, ValueError) as e:  # ValueError: also not UTF-8
        msg = (str(e).splitlines() or [type(e).__name__])[0]
        where = f"line {reader.line_num}, " if reader is not None and reader.line_num else ""
        raise HwnasError(f"{p}: unreadable table ({where}{msg})") from None
    return rows


def csv_text(rows: Sequence[dict[str, Any]], columns: Sequence[str], *,
             extra: bool = True) -> str:
    """CSV text of ``rows`` (None -> empty cell): ``columns`` first, then with ``extra`` any
    other keys of the rows, sorted (without ``extra`` they are left out)."""
    cols = list(columns)
    if extra:
        cols += sorted({k for r in rows for k in r} - set(cols))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return buf.getvalue()


def write_tables(run_dir: Path, trials: Sequence[dict[str, Any]],
                 pareto: Sequence[dict[str, Any]], score: str = "score") -> None:
    """Write trials.csv, winners/*.yaml (one per Pareto row's ``file``, stale ones removed)
    and pareto.csv, each atomically; ``score``: the rows' score column."""
    atomic_write_text(run_dir / TRIALS_FILE, csv_text(trials, trial_columns(score)))
    wdir = run_dir / WINNERS_DIR
    wdir.mkdir(parents=True, exist_ok=True)
    keep = set()
    for r in pareto:
        p = run_dir / r["file"]
        keep.add(p.name)
        if not p.is_file():
            save_arch(parse_string(r["arch"]), p)
    for old in wdir.glob("*.yaml"):
        if old.name not in keep:
            old.unlink()
    atomic_write_text(run_dir / PARETO_FILE, csv_text(pareto, pareto_columns(score)))


# ---- config.json ------------------------------------------------------------------------------

def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def _string(v: Any) -> bool:
    return isinstance(v, str)


def _obj(v: Any) -> bool:
    return isinstance(v, dict)


def _item(what: str, ok: Any) -> dict[str, Any]:
    """A :class:`RunConfig` field's metadata: what it must be (for the error line), its check."""
    return {"what": what, "ok": ok}


_STRING = _item("a string", _string)
_OBJECT = _item("an object", _obj)


def _f(meta: dict[str, Any]) -> Any:
    return field(default=None, metadata=meta)


@dataclass
class RunConfig(Mapping):
    """A run's ``config.json``: every setting of the search, its identity (:data:`IDENTITY`),
    versions and the device's provenance. :meth:`write` writes it, :meth:`read` reads it back
    with each field's type checked (also inside ``identity``): a run folder edited by hand or
    damaged is refused with one line naming the field. Every field may be absent (runs written
    before it existed, or nothing to say: no budget, the default storage) and is then None,
    left out of the file; keys this version does not know are kept in
    ``extra`` and written back. It is also a read-only mapping of its JSON keys
    (``config["device"]``, ``config.get("latency_budget_ms")``) for readers of any field."""

    identity: dict[str, Any] | None = _f(_OBJECT)
    settings: dict[str, Any] | None = _f(_OBJECT)
    # the identity, also at the top level
    space: str | None = _f(_STRING)
    space_sha1: str | None = _f(_STRING)
    device: str | None = _f(_STRING)
    resolution: int | None = _f(_item("a positive integer",
                                      lambda v: _is_int(v) and 0 < v <= 1_000_000))
    objectives: list[str] | None = _f(_item(
        "a list of objective names",
        lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)))
    latency_budget_ms: float | None = _f(_item("a positive number",
                                               lambda v: _is_num(v) and v > 0))
    max_params: int | None = _f(_item("a positive integer", lambda v: _is_int(v) and v > 0))
    accuracy: str | None = _f(_STRING)
    data: str | None = _f(_STRING)
    classes: int | None = _f(_item("a positive integer",
                                   lambda v: _is_int(v) and 0 < v <= 10_000_000))
    precision: str | None = _f(_STRING)
    supernet_metric: str | None = _f(_STRING)
    # where the study is, when, with what
    storage: str | None = _f(_STRING)
    storage_resolved: str | None = _f(_STRING)
    study_name: str | None = _f(_STRING)
    population: int | None = _f(_item("a positive integer", lambda v: _is_int(v) and v > 0))
    created: str | None = _f(_STRING)
    updated: str | None = _f(_STRING)
    versions: dict[str, Any] | None = _f(_OBJECT)
    injected_estimators: bool | None = _f(_item("true or false", lambda v: isinstance(v, bool)))
    latency_fn: str | None = _f(_STRING)
    accuracy_fn: str | None = _f(_STRING)
    # what scored and timed the trials (hwnas.search.objective.build_estimators' info)
    accuracy_estimator: str | None = _f(_STRING)
    accuracy_settings: dict[str, Any] | None = _f(_OBJECT)
    device_provenance: dict[str, Any] | None = _f(_OBJECT)
    latency_statistic: str | None = _f(_STRING)
    latency_precision: str | None = _f(_STRING)
    device_config: dict[str, Any] | None = _f(_OBJECT)
    score_column: str | None = _f(_item("a score column name", lambda v: v in SCORE_NAMES))
    #: keys of the file this version does not know (and a caller's ``device_info``)
    extra: dict[str, Any] = field(default_factory=dict)

    # ---- JSON

    def to_json(self) -> dict[str, Any]:
        """The JSON object of config.json: the fields that are not None, then ``extra``."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "extra":
                continue
            v = getattr(self, f.name)
            if v is not None:
                out[f.name] = v
        for k, v in self.extra.items():
            out.setdefault(k, v)
        return out

    @classmethod
    def from_json(cls, d: Any, where: str | Path = CONFIG_FILE) -> RunConfig:
        """A RunConfig from config.json's object ``d``; HwnasError (one line naming ``where``
        and the field) if it is not an object or a field has the wrong type."""
        if not isinstance(d, dict):
            raise HwnasError(f"{where}: not a run's config (a JSON object), got "
                             f"{type(d).__name__}")
        known = {f.name: f for f in fields(cls) if f.name != "extra"}
        for prefix, obj in (("", d), ("identity.", d.get("identity") or {})):
            if not isinstance(obj, dict):
                continue  # reported as the field 'identity' below
            for k, f in known.items():
                v = obj.get(k)
                if v is not None and not f.metadata["ok"](v):
                    raise HwnasError(f"{where}: {prefix}{k}: must be {f.metadata['what']}, "
                                     f"got {_brief(v)}")
        return cls(**{k: v for k, v in d.items() if k in known},
                   extra={k: v for k, v in d.items() if k not in known})

    def with_info(self, info: dict[str, Any]) -> RunConfig:
        """This config with ``info`` (what the estimators say: provenance, statistic, ...)
        added: its known keys as fields, the others in ``extra``."""
        known = {f.name for f in fields(self)} - {"extra"}
        return replace(self, **{k: v for k, v in info.items() if k in known},
                       extra={**self.extra, **{k: v for k, v in info.items() if k not in known}})

    # ---- the file

    @classmethod
    def read(cls, path: str | Path) -> RunConfig:
        """A run's config.json (a file, or a run folder); HwnasError (one line naming the file
        and the field) if it cannot be read, a field has the wrong type or a newer hwnas wrote
        it."""
        p = Path(path)
        if p.is_dir():
            p = p / CONFIG_FILE
        try:
            d = loads_json(p.read_bytes())
        except OSError as e:
            raise HwnasError(f"{p}: unreadable ({e.strerror or e})") from None
        except ValueError as e:  # JSONDecodeError, UnicodeDecodeError (not UTF-8)
            raise HwnasError(f"{p}: not valid JSON ({(str(e).splitlines() or ['?'])[0]})") \
                from None
        cfg = cls.from_json(d, p)
        _check_writer(cfg.versions or {}, p)
        return cfg

    def write(self, run_dir: str | Path) -> Path:
        """Write ``run_dir/config.json`` atomically; returns its path."""
        p = Path(run_dir) / CONFIG_FILE
        atomic_write_json(p, self.to_json())
        return p

    # ---- derived

    @property
    def score(self) -> str:
        """The column of the search's score (:func:`config_score_column`)."""
        return config_score_column(self)

    # ---- a read-only mapping of the JSON keys

    def __getitem__(self, key: str) -> Any:
        return self.to_json()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_json())

    def __len__(self) -> int:
        return len(self.to_json())


def read_config(path: str | Path) -> RunConfig:
    """A run's config.json (:meth:`RunConfig.read`)."""
    return RunConfig.read(path)


def _version_key(v: str) -> tuple[int, ...] | None:
    m = re.fullmatch(r"(\d{1,6})\.(\d{1,6})(?:\.(\d{1,6}))?\S*", str(v))
    return tuple(int(x or 0) for x in m.groups()) if m else None


def _check_writer(versions: dict, p: Path) -> None:
    """HwnasError if the run was written by a newer hwnas than this one (its files may hold
    what this version would misread) or names a version that is not a version at all."""
    import hwnas

    theirs = versions.get("hwnas")
    if theirs is None or theirs == "not installed":
        return
    t, ours = _version_key(theirs), _version_key(hwnas.__version__)
    if t is None:
        raise HwnasError(f"{p}: versions.hwnas {_brief(theirs)} is not a version number")
    if ours is not None and t > ours:
        raise HwnasError(f"{p}: written by hwnas {theirs}, newer than this hwnas "
                         f"{hwnas.__version__}: upgrade hwnas to read it")


def _brief(v: Any, n: int = 60) -> str:
    t = repr(v)
    return t if len(t) <= n else t[: n - 3] + "..."


# ---- a run ---------------------------------------------------------------------------------------

def run_path(name_or_path: str | Path) -> Path:
    """The folder of a run given by name (``runs/NAME``) or by its folder path."""
    p = Path(name_or_path)
    if p.is_dir() and (p / CONFIG_FILE).is_file():
        return p
    return runs_dir() / str(name_or_path)


def winner_arch(run_dir: Path, row: dict[str, Any]) -> Arch:
    """The Arch of a Pareto row: its arch file when present, else its arch string."""
    p = run_dir / str(row.get("file") or "")
    return load_arch(p) if row.get("file") and p.is_file() else parse_string(row["arch"])


@dataclass
class Run:
    """A search run read back from ``runs/RUN/`` (what retrain and the report use)."""

    path: Path
    config: RunConfig
    trials: list[dict[str, Any]]
    pareto: list[dict[str, Any]]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def score(self) -> str:
        """The column of the search's score in trials and pareto rows (:func:`score_column`)."""
        return self.config.score

    @property
    def objectives(self) -> list[str]:
        return list(self.config.objectives or [])

    def winners(self) -> list[tuple[dict[str, Any], Arch]]:
        """(pareto row, Arch) of every winner, read from its arch file (or its string)."""
        return [(r, winner_arch(self.path, r)) for r in self.pareto]

    def retrain(self) -> list[dict[str, Any]] | None:
        """The typed rows of retrain.csv; None if the run was not retrained yet."""
        return read_rows(self.path / RETRAIN_FILE)

    def study(self):
        """The Optuna study (read-only use)."""
        import optuna

        from .trials.storage import open_storage

        storage = open_storage(self.config.storage, self.path)
        return optuna.load_study(study_name=self.config.study_name or self.name,
                                 storage=storage)


def load_run(name_or_path: str | Path) -> Run:
    """A run by name (``runs/NAME``) or by folder path."""
    p = run_path(name_or_path)
    cfg = p / CONFIG_FILE
    if not cfg.is_file():
        raise HwnasError(f"run '{name_or_path}' not found (no {cfg})")
    config = RunConfig.read(cfg)
    score = config.score
    metrics = (score, *COSTS)
    trials = _named(read_rows(p / TRIALS_FILE, ("number", "state"), (LEGACY_SCORE, *metrics)),
                    score)
    for t in trials:
        if t["state"] == "COMPLETE" and any(t.get(k) is None for k in metrics):
            raise HwnasError(f"{p / TRIALS_FILE}: trial {t['number']} is COMPLETE without "
                             f"its metrics ({', '.join(metrics)})")
    pareto = _named(read_rows(p / PARETO_FILE, ("trial", "arch", *COSTS),
                              (LEGACY_SCORE, *metrics)), score)
    for r in pareto:
        if r.get(score) is None:
            raise HwnasError(f"{p / PARETO_FILE}: trial {r['trial']}: no {score}")
    for r in pareto:
        f = r.get("file")
        if f is not None and not _is_winner_file(f):
            raise HwnasError(f"{p / PARETO_FILE}: trial {r['trial']}: file {_brief(f)} is not "
                             f"a file in {WINNERS_DIR}/")
    return Run(p, config, trials, pareto)


def _named(rows: list[dict[str, Any]] | None, score: str) -> list[dict[str, Any]]:
    """``rows`` with an old run's ``accuracy`` column renamed to its score column."""
    out = []
    for r in rows or []:
        if LEGACY_SCORE in r and score != LEGACY_SCORE and score not in r:
            r = {(score if k == LEGACY_SCORE else k): v for k, v in r.items()}
        out.append(r)
    return out


def _is_winner_file(f: str) -> bool:
    parts = Path(f).parts
    return (len(parts) == 2 and parts[0] == WINNERS_DIR and not Path(f).is_absolute()
            and parts[1] not in ("..", ".") and Path(f).suffix in (".yaml", ".yml", ".json"))


def read_retrain(run_dir: str | Path) -> list[dict[str, Any]] | None:
    """The typed rows of ``run_dir/retrain.csv``; None if there is none."""
    return read_rows(Path(run_dir) / RETRAIN_FILE)


def load_retrain(run: str | Path) -> list[dict[str, Any]]:
    """The typed rows of ``runs/RUN/retrain.csv`` (a run name or folder); [] if the run was
    not retrained yet."""
    return read_retrain(run_path(run)) or []


def measured_ms(r: dict) -> float | None:
    """A retrain.csv row's measured latency: the table's statistic (``measured_stat_ms``, min by
    default: what the predictor predicts and errors and speed-ups compare), the median in
    rows written before that column; None when unmeasured."""
    for k in ("measured_stat_ms", "measured_median_ms"):
        v = finite(r.get(k))
        if v is not None:
            return v
    return None


def retrain_labels(rows: Sequence[dict]) -> dict[str, str]:
    """The names the retrain summary, the report and the demo show for retrain.csv rows:
    winners W1, W2, ... by measured latency (:func:`measured_ms`; unmeasured last); baselines
    keep theirs."""

    def measured(r: dict) -> float:
        v = measured_ms(r)
        return math.inf if v is None else v

    ws = sorted((r for r in rows if r.get("kind") == "winner"),
                key=lambda r: (measured(r), str(r.get("name"))))
    lab = {str(r.get("name")): f"W{i}" for i, r in enumerate(ws, 1)}
    for r in rows:
        lab.setdefault(str(r.get("name")), str(r.get("name")))
    return lab


# ---- identity ----------------------------------------------------------------------------------

def space_sha1(space: SearchSpace) -> str:
    """What a space's trials mean: a hash of its parameters and their choices."""
    return hashlib.sha1(json.dumps(space.params(), sort_keys=True).encode()).hexdigest()[:12]


def identity(settings: SearchSettings, space: SearchSpace, resolution: int,
             classes: int) -> dict[str, Any]:
    """The :data:`IDENTITY` values of a search with ``settings``."""
    return {"space": settings.space, "space_sha1": space_sha1(space), "device": settings.device,
            "resolution": resolution, "objectives": list(settings.objectives),
            "latency_budget_ms": settings.latency_budget_ms, "max_params": settings.max_params,
            "accuracy": settings.accuracy, "data": settings.data, "classes": classes,
            "precision": getattr(settings, "precision", "fp32"),
            "supernet_metric": getattr(settings, "supernet_metric", "accuracy")}


def check_existing_run(run_dir: Path, ident: dict, storage: str | None,
                       skip: Sequence[str] = ()) -> RunConfig | None:
    """The existing config of ``run_dir`` (None for a new run); HwnasError if it was made with
    other settings that define the trials (``ident``, but for the keys in ``skip``) or keeps
    its study in another storage than ``storage`` (None: whichever it has)."""
    cfg_path = run_dir / CONFIG_FILE
    if not cfg_path.is_file():
        # only a journal: a first launch stopped (disk full, kill) before config.json was
        # written, which happens before any trial runs: start it again
        if run_dir.exists() and not run_dir.is_dir():
            raise HwnasError(f"{run_dir} exists and is not a folder; choose another --name")
        left = {p.name for p in run_dir.iterdir()} if run_dir.is_dir() else set()
        if left - {JOURNAL, JOURNAL + ".lock"}:
            raise HwnasError(f"{run_dir} exists but is not a search run (no {CONFIG_FILE}); "
                             "choose another --name")
        return None
    cfg = RunConfig.read(cfg_path)
    old = cfg.identity or {}
    for k in IDENTITY:
        if k in old and k not in skip and old[k] != ident[k]:
            what = {"space_sha1": "space definition (its YAML file changed)"}.get(k, k)
            raise HwnasError(f"run '{run_dir.name}' exists with another {what}: "
                             f"{_show(old[k])} (asked: {_show(ident[k])}); use another --name")
    if storage is not None and cfg.storage != storage:
        raise HwnasError(f"run '{run_dir.name}' keeps its study in "
                         f"{cfg.storage or run_dir / JOURNAL} (asked: --storage {storage}); "
                         "leave --storage out to continue it")
    return cfg


def _show(v: Any) -> str:
    return ",".join(map(str, v)) if isinstance(v, list) else str(v)
