"""One model of a retraining: what it is (:class:`Model`), its training result file
(``retrain/<recipe id>/<name>/seed<S>.json``, :data:`RESULT_FORMAT`) and its ONNX export.

Shared by the orchestration (:mod:`hwnas.retrain.run`), the work queue
(:mod:`hwnas.retrain.queue`) and the deployment from a supernet (:mod:`hwnas.retrain.deploy`),
which is why it sits below all three of them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..arch import Arch
from ..errors import HwnasError
from ..io import atomic_write_json, file_digest

log = logging.getLogger(__name__)

RESULT_FORMAT = "hwnas-retrain-result/1"

__all__ = ["RESULT_FORMAT", "Model", "ensure_onnx", "export_onnx", "read_result"]


@dataclass
class Model:
    """One network to retrain: a winner (named by its arch file's stem) or a baseline."""

    name: str
    kind: str  # "winner" | "baseline"
    arch: Arch
    search: dict = field(default_factory=dict)  # the winner's Pareto row
    weights: str = "stand-alone"  # or "supernet", "supernet+N" (hwnas.retrain.deploy)
    tag: str = ""  # the deployment's folder tag (hwnas.retrain.deploy.SupernetSource.tag)

    @property
    def folder(self) -> str:
        """Its results' folder under retrain/<recipe id>/."""
        return f"{self.name}@{self.tag}" if self.tag else self.name

    @property
    def onnx_rel(self) -> str:
        return f"models/{self.name}.onnx"


def read_result(path: Path, model: Model, seed: int) -> dict | None:
    """A finished training's result, or None if it is of another arch (retrain then)."""
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise HwnasError(f"{path}: unreadable training result ({str(e).splitlines()[0]}); "
                         "delete it to train that model again") from None
    if not isinstance(d, dict) or d.get("format") != RESULT_FORMAT:
        raise HwnasError(f"{path}: not an hwnas retrain result (format must be "
                         f"'{RESULT_FORMAT}'); delete it to train that model again")
    if d.get("arch") != model.arch.to_string() or d.get("seed") != seed:
        log.warning("%s: holds another arch or seed; training again", path)
        return None
    try:
        float(d["test_acc"])
    except (KeyError, TypeError, ValueError):
        raise HwnasError(f"{path}: training result without a test accuracy; delete it to "
                         "train that model again") from None
    return d


def export_onnx(model: Model, net, run_dir: Path) -> str:
    """Export ``net`` (trained weights of ``model``) to ``run_dir/models/<name>.onnx``; its
    digest."""
    from ..export import export_arch

    path = run_dir / model.onnx_rel
    try:
        export_arch(model.arch, path, module=net)
    except OSError as e:
        raise HwnasError(f"cannot write {path}: {e.strerror or e}") from None
    return file_digest(path)


def ensure_onnx(model: Model, result: dict, ckpt: Path, run_dir: Path, res_path: Path) -> None:
    """Re-export the first seed's trained network if its ONNX file is missing or is not the
    one exported from this result (another recipe's run overwrote it)."""
    path = run_dir / model.onnx_rel
    if path.is_file() and result.get("onnx_sha1") == file_digest(path):
        return
    from ..train import load_trained

    arch, net, _ = load_trained(ckpt)
    if arch.to_string() != model.arch.to_string():
        raise HwnasError(f"{ckpt}: checkpoint is of another arch ({arch.to_string()[:60]}...)")
    result["onnx_sha1"] = export_onnx(model, net, run_dir)
    atomic_write_json(res_path, result)
    log.info("%s: exported %s from %s", model.name, path, ckpt.name)
