"""A predictor as data: settings and training measurements saved as JSON, refitted on load
(deterministic; no pickle: pickles of scikit-learn models break across versions), and the
check that the device still measures as when the predictor was fitted."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..context import Device
from ..errors import HwnasError
from ..io import MAX_JSON_BYTES, atomic_write_json, input_file, loads_json
from ..profiling.lut import table_dir
from .models import MIN_NETWORKS, BlockModel, NetworkModel

log = logging.getLogger(__name__)

PREDICTOR_SCHEMA = 1
_P = TypeVar("_P", bound="StoredPredictor")

#: the ranges of stored predictor settings (predictor.json, predictor files): a type or a value
#: out of range is refused with one line naming the file and the field; iteration counts are
#: capped so that no file can make a fit run for hours
MAX_ITER = 10_000
_INT, _NUM, _BOOL = "an integer", "a number", "true or false"
_BLOCK_SETTINGS: dict[str, tuple[str, float, float]] = {
    "correction": (_BOOL, 0, 1),
    "max_iter": (_INT, 1, MAX_ITER),
    "learning_rate": (_NUM, 1e-6, 1.0),
    "max_leaf_nodes": (_INT, 2, 4096),
    "min_samples_leaf": (_INT, 1, 100_000),
    "random_state": (_INT, 0, 2**32 - 1),
    "extrapolation_factor": (_NUM, 1.0, 1e6),
}


def _check_value(v: Any, kind: str, lo: float, hi: float, where: str) -> None:
    if kind == _BOOL:
        ok = isinstance(v, bool)
    elif kind == _INT:
        ok = isinstance(v, int) and not isinstance(v, bool)
    else:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if not ok:
        raise HwnasError(f"{where}: must be {kind}, got {v!r}")
    if kind != _BOOL and not lo <= v <= hi:
        raise HwnasError(f"{where}: {v!r} is outside {lo:g}..{hi:g}")


def _check_keys(d: Any, allowed: Sequence[str], where: str) -> dict:
    if not isinstance(d, dict):
        raise HwnasError(f"{where}: must be an object, got {type(d).__name__}")
    for k in d:
        if k not in allowed:
            raise HwnasError(f"{where}: unknown setting {k!r} (known: {', '.join(allowed)})")
    return d


def check_settings(settings: Any, where: str = "predictor settings") -> dict[str, Any]:
    """``settings`` (the ``settings`` object of a predictor file) if every field has its type
    and lies in its range, else HwnasError naming ``where`` and the field."""
    from ..onboard.bench import STATISTICS
    from .features import ARCH_FEATURES

    if settings is None:
        return {}
    d = _check_keys(settings, ("statistic", "min_networks", "block_model", "network_model"),
                    f"{where}: settings")
    if "statistic" in d and d["statistic"] not in STATISTICS:
        raise HwnasError(f"{where}: settings.statistic: must be one of {', '.join(STATISTICS)}, "
                         f"got {d['statistic']!r}")
    if "min_networks" in d:
        _check_value(d["min_networks"], _INT, 2, 1_000_000, f"{where}: settings.min_networks")
    bm = _check_keys(d.get("block_model") or {}, tuple(_BLOCK_SETTINGS),
                     f"{where}: settings.block_model")
    for k, v in bm.items():
        _check_value(v, *_BLOCK_SETTINGS[k], f"{where}: settings.block_model.{k}")
    nm = _check_keys(d.get("network_model") or {}, ("features", "alphas", "clip"),
                     f"{where}: settings.network_model")
    w = f"{where}: settings.network_model"
    if "clip" in nm:
        _check_value(nm["clip"], _BOOL, 0, 1, f"{w}.clip")
    if "features" in nm:
        f = nm["features"]
        if not isinstance(f, (list, tuple)) or not f or len(f) > len(ARCH_FEATURES) or \
                any(x not in ARCH_FEATURES for x in f):
            raise HwnasError(f"{w}.features: must be a non-empty list of "
                             f"{', '.join(ARCH_FEATURES)}; got {f!r}")
    if "alphas" in nm:
        a = nm["alphas"]
        if not isinstance(a, (list, tuple)) or not 1 <= len(a) <= 100:
            raise HwnasError(f"{w}.alphas: must be a list of 1 to 100 numbers, got {a!r}")
        for x in a:
            _check_value(x, _NUM, 1e-12, 1e12, f"{w}.alphas")
    return dict(d)


class StoredPredictor:
    """Persistence and device checks of :class:`~hwnas.predictor.LatencyPredictor` (a mixin:
    it reads the estimator's parameters and fitted attributes)."""

    def settings(self) -> dict[str, Any]:
        """The estimators' parameters, as JSON-able data."""
        bm = self.block_model or BlockModel()
        nm = self.network_model or NetworkModel()
        net = nm.get_params()
        net = {k: list(v) if isinstance(v, tuple) else v for k, v in net.items()}
        return {"statistic": self.statistic, "min_networks": self.min_networks,
                "block_model": bm.get_params(), "network_model": net}

    @classmethod
    def from_settings(cls: type[_P], settings: Mapping[str, Any],
                      where: str = "predictor settings") -> _P:
        settings = check_settings(dict(settings), where)
        try:
            net = dict(settings.get("network_model") or {})
            for k in ("features", "alphas"):
                if k in net:
                    net[k] = tuple(net[k])
            return cls(statistic=settings.get("statistic", "min"),
                       block_model=BlockModel(**(settings.get("block_model") or {})),
                       network_model=NetworkModel(**net),
                       min_networks=int(settings.get("min_networks", MIN_NETWORKS)))
        except (TypeError, ValueError, AttributeError) as e:
            raise HwnasError(f"predictor settings: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        check_is_fitted(self, "network_model_")
        import sklearn

        return {"schema": PREDICTOR_SCHEMA, "kind": "hwnas-predictor", "device": self.device_,
                "settings": self.settings(), "provenance": self.provenance_,
                "versions": {"scikit-learn": sklearn.__version__, "numpy": np.__version__},
                "training": {"blocks": self.blocks_, "networks": self.networks_}}

    def save(self, path: str | Path) -> Path:
        """Write the predictor as data (settings + training measurements), atomically."""
        try:
            return atomic_write_json(path, self.to_dict())
        except OSError as e:
            raise HwnasError(f"{path}: cannot write the predictor: {e.strerror or e}") from None

    @classmethod
    def from_dict(cls: type[_P], d: Any, where: str = "predictor") -> _P:
        if not isinstance(d, dict) or d.get("kind") != "hwnas-predictor":
            raise HwnasError(f"{where}: not an hwnas predictor file (kind must be 'hwnas-predictor')")
        if d.get("schema") != PREDICTOR_SCHEMA:
            raise HwnasError(f"{where}: schema {d.get('schema')!r} is not supported "
                             f"(expected {PREDICTOR_SCHEMA})")
        tr = d.get("training")
        if not isinstance(tr, dict) or not isinstance(tr.get("blocks"), dict) \
                or not isinstance(tr.get("networks"), dict):
            raise HwnasError(f"{where}: training must hold 'blocks' and 'networks' objects")
        pred = cls.from_settings(d.get("settings") or {}, where)
        try:
            blocks = {str(k): float(v) for k, v in tr["blocks"].items()}
            nets = {str(k): float(v) for k, v in tr["networks"].items()}
        except (TypeError, ValueError):
            raise HwnasError(f"{where}: training latencies must be numbers") from None
        return pred.fit(blocks, nets, device=d.get("device"), provenance=d.get("provenance"))

    @classmethod
    def load(cls: type[_P], path: str | Path, check_device: bool = True) -> _P:
        """Read a saved predictor and refit it (deterministic); warns when its measurements
        were made with another onnxruntime version or thread count than its device now has."""
        p = Path(path)
        try:
            d = loads_json(input_file(p, "a predictor file", MAX_JSON_BYTES).read_bytes())
        except FileNotFoundError:
            raise HwnasError(f"{p}: no such predictor file") from None
        except (OSError, ValueError) as e:
            raise HwnasError(f"{p}: not a readable predictor file ({str(e).splitlines()[0]})") from None
        pred = cls.from_dict(d, str(p))
        if check_device and pred.device_:
            pred.check_device(pred.device_)
        return pred

    @classmethod
    def for_device(cls: type[_P], device: str | Device, statistic: str | None = None,
                   precision: str = "fp32") -> _P:
        """Fit on the table of ``device`` (a :class:`~hwnas.context.Device` or its name:
        blocks + whole networks; its entries of ``precision``, see
        :meth:`hwnas.profiling.lut.LatencyTable.view`) with the settings of ``latency_tables/<device>/predictor.json``
        if present (``hwnas predictor fit``). ``Device.predictor()`` keeps the result.

        HwnasError if the device has no table or too few whole-network measurements."""
        dev = Device.of(device)
        table = dev.table.view(precision)
        settings = dev.predictor_settings()
        stat = statistic or settings.get("statistic") or table.statistic
        settings["statistic"] = stat
        pred = cls.from_settings(settings)
        blocks, nets = table.latencies(stat)
        prov = table.provenance if precision == "fp32" else dict(table.provenance, precision=precision)
        pred.fit(blocks, nets, device=dev.name, provenance=prov)
        pred.check_device(dev)
        return pred

    def check_device(self, device: str | Device) -> list[str]:
        """Warn (and return why) if the measurements this predictor was fitted on used another
        onnxruntime version or thread count than ``device`` now has (its device.json, its
        current table, and for a local device the installed onnxruntime)."""
        check_is_fitted(self, "provenance_")
        name = device.name if isinstance(device, Device) else device
        now = device_now(device)
        issues = []
        for k in ("onnxruntime", "threads"):
            old, new = self.provenance_.get(k), now.get(k)
            if old is not None and new is not None and str(old) != str(new):
                issues.append(f"{k} {old} (device '{name}' now: {new} per {now[k + '_from']})")
        for msg in issues:
            log.warning("latency predictor fitted on measurements with %s; re-profile the device "
                        "for predictions that hold", msg)
        return issues


PREDICTOR_FILE = "predictor.json"


def stored_settings(device: str) -> dict[str, Any]:
    """The settings saved in ``latency_tables/<device>/predictor.json`` ({} if none)."""
    p = table_dir(device) / PREDICTOR_FILE
    if not p.is_file():
        return {}
    try:
        d = loads_json(p.read_bytes())
    except (OSError, ValueError) as e:  # also not UTF-8
        raise HwnasError(f"{p}: not a readable predictor file "
                         f"({(str(e).splitlines() or [type(e).__name__])[0]})") from None
    if not isinstance(d, dict):
        raise HwnasError(f"{p}: not an hwnas predictor file (a JSON object)")
    return check_settings(d.get("settings"), str(p))


def device_now(device: str | Device) -> dict[str, Any]:
    """What ``device`` has now: threads (device.json, else its table), onnxruntime version
    (its table's provenance; for a local device the installed package); each with where it
    comes from (``threads_from``, ``onnxruntime_from``). {} for a name no device can have."""
    now: dict[str, Any] = {}
    try:
        dev = Device.of(device)
    except HwnasError:
        return now
    try:
        if dev.has_table:
            prov = dev.table.provenance
            for k in ("onnxruntime", "threads"):
                if prov.get(k) is not None:
                    now[k], now[k + "_from"] = prov[k], "its latency table"
    except HwnasError:
        pass
    try:
        cfg = dev.config
        now["threads"], now["threads_from"] = cfg.threads, "device.json"
        if cfg.is_local:
            from importlib.metadata import PackageNotFoundError, version

            try:
                now["onnxruntime"] = version("onnxruntime")
                now["onnxruntime_from"] = "this machine"
            except PackageNotFoundError:
                pass
    except HwnasError:
        pass
    return now


__all__ = ["MAX_ITER", "PREDICTOR_FILE", "PREDICTOR_SCHEMA", "StoredPredictor", "check_settings",
           "device_now", "stored_settings"]
