"""The latency predictor: a block model and a network model fitted on one device's
measurements, with a fast batch ``predict`` for the search (per-piece values cached by key,
no torch) and ``explain`` for one Arch."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ..arch import Arch, parse_string
from ..errors import HwnasError
from ..pieces import arch_pieces
from ..profiling.lut import check_statistic, lut_sum
from .features import ArchFeatures, UncoveredError, piece_of
from .models import MIN_NETWORKS, BlockModel, NetworkModel
from .store import StoredPredictor

log = logging.getLogger(__name__)


def parse_archs(strings: Iterable[str]) -> dict[str, Arch]:
    """Canonical arch strings -> Archs; HwnasError names a bad network measurement."""
    out = {}
    for s in strings:
        try:
            out[s] = parse_string(s)
        except HwnasError as e:
            raise HwnasError(f"network measurement {s[:60]!r}: {e}") from None
    return out


class LatencyPredictor(StoredPredictor, BaseEstimator):
    """Predicted on-device latency (ms) of Archs, from one device's measurements.

    ``fit(blocks, networks)`` takes plain data: block key -> ms (the LUT) and canonical arch
    string -> ms (whole networks). A :class:`BlockModel` is fitted on the blocks, and a
    :class:`NetworkModel` on :class:`ArchFeatures` of the networks. Networks whose blocks
    need an operator the table never measured are left out of the fit.

    ``block_model`` / ``network_model`` are unfitted templates (defaults when None);
    ``statistic`` records which of the table's statistics the latencies are.

    Fitting on a device's table (:meth:`for_device`), saving and loading as data, and the
    check that a device still measures as it did come from
    :class:`~hwnas.predictor.store.StoredPredictor`.
    """

    def __init__(self, statistic: str = "min", block_model: BlockModel | None = None,
                 network_model: NetworkModel | None = None, min_networks: int = MIN_NETWORKS):
        self.statistic = statistic
        self.block_model = block_model
        self.network_model = network_model
        self.min_networks = min_networks

    # -- fitting
    def fit(self, blocks: Mapping[str, float], networks: Mapping[str, float],
            device: str | None = None, provenance: Mapping[str, Any] | None = None
            ) -> LatencyPredictor:
        from sklearn.base import clone

        where = f" of device '{device}'" if device else ""
        self._fit_blocks(blocks, device)
        archs = parse_archs(networks)
        usable, skipped = [], []
        for s, a in archs.items():
            why = next((w for p in arch_pieces(a) if (w := self.block_model_.uncovered(p))), None)
            (skipped if why else usable).append(s)
        if skipped:
            log.info("leaving out %d network(s) with operators the table never measured",
                     len(skipped))
        if len(usable) < self.min_networks:
            raise HwnasError(
                f"too few whole-network measurements{where} to fit the latency predictor: "
                f"{len(usable)}, need at least {self.min_networks} (hwnas profile --device "
                f"{device or 'NAME'} --space SPACE --resolution R measures 150; or hwnas measure "
                f"ARCH... --device {device or 'NAME'} --save)")
        self.networks_ = {s: float(networks[s]) for s in usable}
        F = self.features_.transform([archs[s] for s in usable])
        yn = np.array([self.networks_[s] for s in usable])
        self.network_model_ = clone(self.network_model or NetworkModel()).fit(F, yn)
        self.device_ = device
        self.provenance_ = dict(provenance or {})
        return self

    def _fit_blocks(self, blocks: Mapping[str, float], device: str | None = None
                    ) -> LatencyPredictor:
        """The block model and the per-piece cache (no network model yet)."""
        from sklearn.base import clone

        check_statistic(self.statistic)
        if not blocks:
            where = f" of device '{device}'" if device else ""
            raise HwnasError(f"the latency table{where} has no block measurements: run hwnas "
                             f"profile --device {device or 'NAME'} --space SPACE --resolution R")
        keys = list(blocks)
        for k in keys:
            piece_of(k)  # HwnasError names a bad key
        y = [float(blocks[k]) for k in keys]
        self.block_model_ = clone(self.block_model or BlockModel()).fit(keys, y)
        self.blocks_ = {k: float(blocks[k]) for k in keys}
        self.features_ = ArchFeatures(self.block_model_, self.blocks_).fit()
        stems = [piece_of(k).h for k in keys if k.startswith("stem_")]
        self.resolutions_ = sorted(set(stems))
        self.device_ = device
        return self

    def check_resolutions(self, archs: Iterable[Arch]) -> None:
        """HwnasError unless every Arch's resolution lies within the measured resolutions
        (the block model interpolates between them, e.g. 160 from 96 and 224)."""
        check_is_fitted(self, "resolutions_")
        archs = list(archs)
        res = self.resolutions_
        bad = sorted({a.resolution for a in archs} - set(res))
        if not bad:
            return
        lo, hi = (res[0], res[-1]) if res else (None, None)
        out = [r for r in bad if lo is None or r < lo or r > hi]
        if out:
            import shlex

            dev = self.device_ or "NAME"
            a = next(a for a in archs if a.resolution == out[0])
            raise HwnasError(
                f"device '{dev}' has no latency table at resolution {out[0]} (measured: "
                f"{', '.join(map(str, res)) or 'none'}; predictions interpolate between "
                f"measured resolutions only): run hwnas profile --device {dev} --space SPACE "
                f"--resolution {out[0]}, or for this network alone hwnas profile --device "
                f"{dev} --archs {shlex.quote(a.to_string())}")

    # -- predicting
    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        """Predicted latency (ms) of every Arch; HwnasError if an Arch needs an operator the
        table never measured. Cached per piece: >10,000 Archs/s once blocks repeat."""
        check_is_fitted(self, "network_model_")
        archs = list(archs)
        if not archs:
            return np.zeros(0)
        self.check_resolutions(archs)
        try:
            F = self.features_.transform(archs)
        except UncoveredError as e:
            raise HwnasError(self.how_to_cover(e, archs)) from None
        return self.network_model_.predict(F)

    def predict_each(self, archs: Sequence[Arch]) -> tuple[list[float | None], str | None]:
        """Per Arch its predicted ms, None for one the table cannot predict (e.g. a baseline
        with pieces it never measured) instead of failing them all; and the first refusal's
        message (None if every Arch was predicted)."""
        import math

        out, why = [], None
        for a in archs:
            try:
                v = float(self.predict([a])[0])
            except HwnasError as e:
                out.append(None)
                why = why or str(e).splitlines()[0]
                continue
            out.append(v if math.isfinite(v) else None)
        return out, why

    def missing(self, arch: Arch) -> tuple[list[str], bool]:
        """(the distinct piece keys of ``arch`` the table lacks, whether the network itself
        is missing from the measurements it was fitted on)."""
        check_is_fitted(self, "blocks_")
        keys = list(dict.fromkeys(p.key for p in arch_pieces(arch)))
        return ([k for k in keys if k not in self.blocks_],
                arch.to_string() not in getattr(self, "networks_", {}))

    def how_to_cover(self, err: UncoveredError, archs: Sequence[Arch]) -> str:
        """``err``'s message and the command that measures what the first Arch needing the
        piece lacks (only its missing pieces and the network, merged into the table)."""
        import shlex

        a = next((a for a in archs if err.piece in arch_pieces(a)), archs[0])
        keys, net = self.missing(a)
        what = f"{len(keys)} piece(s)" + (" and the network" if net else "")
        return (f"{err}; to measure it run: hwnas profile --device {self.device_ or 'NAME'} "
                f"--archs {shlex.quote(a.to_string())}  (measures only the {what} the table "
                "lacks; an arch file or a baseline name works as well)")

    def explain(self, arch: Arch) -> list[tuple[str, float, bool]]:
        """(piece key, latency in ms, in the table) for every piece of ``arch``, in order:
        the table's value where it has the key, else the block model's prediction."""
        check_is_fitted(self, "network_model_")
        self.check_resolutions([arch])
        try:
            ids, _, _ = self.features_.piece_ids([arch])
        except UncoveredError as e:
            raise HwnasError(self.how_to_cover(e, [arch])) from None
        f = self.features_
        return [(f.pieces_[i].key, float(f.rows_[i, 0]), bool(f.in_table_[i])) for i in ids]

    def extrapolations(self, arch: Arch) -> list[tuple[str, str]]:
        """(piece key, why) for the pieces of ``arch`` that are not in the table and lie far
        outside what was measured (the block model extrapolates there)."""
        check_is_fitted(self, "network_model_")
        ids, _, _ = self.features_.piece_ids([arch])
        f = self.features_
        seen, out = set(), []
        for i in ids:
            if f.notes_[i] and i not in seen:
                seen.add(i)
                out.append((f.pieces_[i].key, f.notes_[i]))
        return out

    def lut_sum(self, arch: Arch) -> float | None:
        """:func:`hwnas.profiling.lut.lut_sum` of the blocks it was fitted on: None if a key is missing."""
        check_is_fitted(self, "blocks_")
        return lut_sum(self.blocks_, arch)

    def block_sum(self, archs: Sequence[Arch]) -> np.ndarray:
        """Sum of the block model's predictions over the pieces (no table values)."""
        check_is_fitted(self, "block_model_")
        archs = list(archs)
        f = ArchFeatures(self.block_model_, {}).fit()
        return f.transform(archs)[:, 0] if archs else np.zeros(0)


__all__ = ["LatencyPredictor", "parse_archs"]
