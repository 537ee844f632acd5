"""ONNX export of a whole network or of one piece (block) with the input shape it has
inside the network. Uses torch's TorchScript-based exporter (``dynamo=False``): it is
~20x faster per model than the dynamo exporter here (17 ms vs 0.4 s for a block), which
matters when a space has hundreds of blocks, and it writes opset 17 directly.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .arch import Arch
from .io import atomic_write_bytes
from .keys import Piece
from .model import build, build_piece, input_tensor, piece_input

OPSET = 17


def export_module(module: nn.Module, x: torch.Tensor, path: str | Path | None = None) -> bytes:
    """Export ``module`` (eval mode, batch 1) to ONNX bytes; write them atomically to ``path``."""
    module.eval()
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), buf, dynamo=False, opset_version=OPSET,
                          input_names=["input"], output_names=["output"], do_constant_folding=True)
    data = buf.getvalue()
    if path is not None:
        atomic_write_bytes(path, data)
    return data


def export_arch(arch: Arch, path: str | Path | None = None, seed: int = 0,
                module: nn.Module | None = None) -> bytes:
    """Export a whole network. ``module`` (e.g. trained weights) defaults to a fresh build."""
    torch.manual_seed(seed)
    net = module if module is not None else build(arch)
    return export_module(net, input_tensor(arch), path)


def export_piece(piece: Piece, path: str | Path | None = None, seed: int = 0) -> bytes:
    torch.manual_seed(seed)
    return export_module(build_piece(piece), piece_input(piece), path)


def check_onnx(data: bytes | str | os.PathLike) -> None:
    import onnx

    model = onnx.load_from_string(data) if isinstance(data, bytes) else onnx.load(str(data))
    onnx.checker.check_model(model)
