"""Device: one named target, its settings and its latency table, read once and passed along.

A step that needs a device takes a :class:`Device` (or a name, which it loads) instead of
re-reading ``latency_tables/<name>/`` every time it needs a piece of it::

    dev = Device.load("pi4")
    dev.config            # device.json: target, threads, python (HwnasError if none)
    dev.table             # the latency table (HwnasError with the profile command if none)
    dev.predictor()       # the latency predictor fitted on that table (built once, cached)

Each file is read the first time it is asked for, then kept: a Device is a snapshot. After
measuring into the table (``hwnas profile``, ``measure --save``), load the device again.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .profiling.hosts import DeviceConfig, device_file, load_device, validate_name
from .profiling.lut import DEFAULT_STATISTIC, LatencyTable, table_dir

if TYPE_CHECKING:
    from .predictor import LatencyPredictor

_UNREAD = object()


class Device:
    """A device by name: :attr:`config`, :attr:`table`, :meth:`predictor`, each read once."""

    def __init__(self, name: str):
        self.name = validate_name(name)
        self._config: Any = _UNREAD
        self._table: Any = _UNREAD
        self._settings: dict[str, Any] | None = None
        self._predictors: dict[tuple[str | None, str], LatencyPredictor] = {}

    @classmethod
    def load(cls, name: str) -> Device:
        """The device called ``name`` (HwnasError for a name that cannot be a device)."""
        return cls(name)

    @classmethod
    def of(cls, device: str | Device) -> Device:
        """``device`` itself, or the device of that name."""
        return device if isinstance(device, Device) else cls(device)

    def __repr__(self) -> str:
        return f"Device({self.name!r})"

    @property
    def dir(self) -> Path:
        """``latency_tables/<name>/``: its device.json, table and predictor settings."""
        return table_dir(self.name)

    # ---- device.json ------------------------------------------------------------------------
    @property
    def has_config(self) -> bool:
        return device_file(self.name).is_file()

    @property
    def config(self) -> DeviceConfig:
        """Its ``device.json``; HwnasError if it has none (``hwnas device add``) or it is bad."""
        if self._config is _UNREAD:
            self._config = load_device(self.name)
        return self._config

    @property
    def config_or_default(self) -> DeviceConfig:
        """:attr:`config`, or the defaults (local, 1 thread) for a device without device.json."""
        return self.config if self.has_config else DeviceConfig(name=self.name)

    # ---- latency table ----------------------------------------------------------------------
    @property
    def has_table(self) -> bool:
        return self._table is not _UNREAD or LatencyTable.exists(self.name)

    @property
    def table(self) -> LatencyTable:
        """Its latency table; HwnasError (with the command that makes one) if it has none."""
        if self._table is _UNREAD:
            self._table = LatencyTable.load(self.name)
        return self._table

    def table_or_new(self, statistic: str | None = None) -> LatencyTable:
        """:attr:`table`, or a new empty one (at ``statistic``) that is not saved yet."""
        if self.has_table:
            return self.table
        return LatencyTable(self.name, statistic or DEFAULT_STATISTIC)

    # ---- predictor ----------------------------------------------------------------------------
    def predictor_settings(self) -> dict[str, Any]:
        """The settings saved in ``predictor.json`` (``hwnas predictor fit``), {} if none."""
        if self._settings is None:
            from .predictor import stored_settings

            self._settings = stored_settings(self.name)
        return dict(self._settings)

    def predictor(self, statistic: str | None = None, precision: str = "fp32") -> LatencyPredictor:
        """The latency predictor fitted on :attr:`table`'s entries of ``precision`` (see
        :meth:`hwnas.predictor.LatencyPredictor.for_device`; one model per precision), fitted
        once per statistic and precision."""
        if (statistic, precision) not in self._predictors:
            from .predictor import LatencyPredictor

            self._predictors[statistic, precision] = LatencyPredictor.for_device(
                self, statistic, precision)
        return self._predictors[statistic, precision]


__all__ = ["Device"]
