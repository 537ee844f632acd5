"""A predictor as data: settings and training measurements saved as JSON, refitted on load
(deterministic; no pickle: pickles of scikit-learn models break across versions), and the
check that the device still measures as when the predictor was fitted."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..context import Device
from ..errors import HwnasError
from ..io import atomic_write_json
from ..lut import table_dir
from .models import MIN_NETWORKS, BlockModel, NetworkModel

log = logging.getLogger(__name__)

PREDICTOR_SCHEMA = 1
_P = TypeVar("_P", bound="StoredPredictor")


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
    def from_settings(cls: type[_P], settings: Mapping[str, Any]) -> _P:
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
        pred = cls.from_settings(d.get("settings") or {})
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
            d = json.loads(p.read_text())
        except FileNotFoundError:
            raise HwnasError(f"{p}: no such predictor file") from None
        except (OSError, ValueError) as e:
            raise HwnasError(f"{p}: not a readable predictor file ({str(e).splitlines()[0]})") from None
        pred = cls.from_dict(d, str(p))
        if check_device and pred.device_:
            pred.check_device(pred.device_)
        return pred

    @classmethod
    def for_device(cls: type[_P], device: str | Device, statistic: str | None = None) -> _P:
        """Fit on the table of ``device`` (a :class:`~hwnas.context.Device` or its name:
        blocks + whole networks) with the settings of ``latency_tables/<device>/predictor.json``
        if present (``hwnas predictor fit``). ``Device.predictor()`` keeps the result.

        HwnasError if the device has no table or too few whole-network measurements."""
        dev = Device.of(device)
        table = dev.table
        settings = dev.predictor_settings()
        stat = statistic or settings.get("statistic") or table.statistic
        settings["statistic"] = stat
        pred = cls.from_settings(settings)
        blocks, nets = table.latencies(stat)
        pred.fit(blocks, nets, device=dev.name, provenance=table.provenance)
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
        d = json.loads(p.read_text())
        return dict(d.get("settings") or {})
    except (OSError, ValueError, AttributeError, TypeError) as e:
        raise HwnasError(f"{p}: not a readable predictor file ({e})") from None


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


__all__ = ["PREDICTOR_FILE", "PREDICTOR_SCHEMA", "StoredPredictor", "device_now",
           "stored_settings"]
