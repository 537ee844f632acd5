"""The old name of :mod:`hwnas.pieces` (pieces and block keys); kept so old imports work."""

from .costs import BYTES_PER_ELEM, piece_peak_bytes
from .pieces import KINDS, Piece, arch_pieces

__all__ = ["BYTES_PER_ELEM", "KINDS", "Piece", "arch_pieces", "piece_peak_bytes"]
