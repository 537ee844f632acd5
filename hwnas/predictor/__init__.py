"""Learned latency predictor on top of a device's latency table.

Two scikit-learn estimators, and what joins them:

* :class:`BlockModel` (:mod:`.models`) -- latency of one piece (block key) from its shape:
  a non-negative linear model over analytical op costs, corrected in log space by a
  gradient-boosted model on shape features (:class:`PieceFeatures`, :mod:`.features`).
  It answers for keys the table lacks and says when a key lies far outside what was measured.
* :class:`NetworkModel` (:mod:`.models`) -- measured whole-network latency from
  :class:`ArchFeatures` (sum of block latencies -- measured where the table has the key,
  the block model elsewhere --, per-stage sums, piece count, MACs, params, activation
  traffic, counts by op type): a weighted ridge regression that learns the per-inference
  overhead and the effects between blocks that a plain sum misses.
* :class:`LatencyPredictor` (:mod:`.latency`) -- the two fitted on one device's
  measurements, with a fast batch ``predict`` for the search (per-piece values cached by
  key, no torch), ``explain`` for one Arch, and persistence as data (:mod:`.store`:
  training measurements + settings as JSON, refitted deterministically on load; no pickle).

:func:`evaluate` (:mod:`.evaluate`) scores it and three simpler predictors on held-out
networks (``hwnas.predictor.evaluate`` is that function; its module is
``sys.modules["hwnas.predictor.evaluate"]``). Costs are counted analytically by
:mod:`hwnas.costs` (:func:`piece_costs`).
"""

from ..costs import PieceCosts, piece_costs, piece_peak_bytes
from .evaluate import (
    METRICS,
    PREDICTOR_NAMES,
    PREDICTORS,
    Evaluation,
    evaluate,
    latency_metrics,
    network_groups,
)
from .features import (
    ARCH_FEATURES,
    CHANNEL_BLOCK,
    COST_FEATURES,
    LEVELS,
    SHAPE_FEATURES,
    ArchFeatures,
    PieceFeatures,
    UncoveredError,
    as_pieces,
    operator_of,
    padded_piece,
    piece_of,
)
from .latency import LatencyPredictor, parse_archs
from .models import DEFAULT_NETWORK_FEATURES, MIN_NETWORKS, BlockModel, NetworkModel
from .store import (
    MAX_ITER,
    PREDICTOR_FILE,
    PREDICTOR_SCHEMA,
    StoredPredictor,
    check_settings,
    device_now,
    stored_settings,
)

__all__ = [
    "ARCH_FEATURES", "CHANNEL_BLOCK", "COST_FEATURES", "DEFAULT_NETWORK_FEATURES", "LEVELS",
    "METRICS", "MIN_NETWORKS", "PREDICTORS", "PREDICTOR_FILE", "PREDICTOR_NAMES",
    "PREDICTOR_SCHEMA", "SHAPE_FEATURES", "ArchFeatures", "BlockModel", "Evaluation",
    "LatencyPredictor", "MAX_ITER", "NetworkModel", "PieceCosts", "PieceFeatures", "StoredPredictor",
    "UncoveredError", "as_pieces", "check_settings", "device_now", "evaluate", "latency_metrics", "network_groups", "operator_of",
    "padded_piece", "parse_archs", "piece_costs", "piece_of", "piece_peak_bytes",
    "stored_settings",
]
