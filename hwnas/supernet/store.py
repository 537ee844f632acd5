"""Where a supernet lives: ``runs/supernets/<id>/`` with ``meta.json`` and ``checkpoint.pt``.

The id is ``<space name>-<data kind>-r<resolution>-<hash>``; the hash covers the space's
*content* (stem, stages with every choice, head, input channels: a renamed copy of a space is
the same space, an edited one is not), the data spec, the resolution, the seed and the
training recipe (all but the thread count). So one command always names one folder, and
running it again resumes there.

``meta.json`` (format ``hwnas-supernet/1``) records the space (its definition, which
rebuilds it), data, resolution, classes, recipe, seed, the validation carve, torch device,
package versions, wall time, epochs done and, when complete, the largest and smallest
subnets' validation accuracy. ``checkpoint.pt`` holds state dicts and plain values only
(model, optimizer, scheduler, both RNG states, epoch, history) and is read with
``torch.load(weights_only=True)``. A folder whose meta or checkpoint cannot be read, or
belongs to another supernet, is refused with one line and never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import HwnasError
from ..io import atomic_write_json
from ..paths import PACKAGE_ROOT, home, runs_dir
from ..space import SearchSpace, space_from_dict

META_FORMAT = "hwnas-supernet/1"
CHECKPOINT_FORMAT = "hwnas-supernet-checkpoint/1"
META, CHECKPOINT = "meta.json", "checkpoint.pt"


def supernets_dir() -> Path:
    return runs_dir() / "supernets"


def check_space(space: SearchSpace) -> None:
    """HwnasError (one line) if the supernet cannot hold ``space``: a skip-block layer choice
    (``id``: identity or a 1x1 projection) has no elastic counterpart here."""
    for j, st in enumerate(space.stages, 1):
        if st.has_id:
            raise HwnasError(f"{space.name}: stage {j} has skip-block layers ('id', e.g. "
                             "NAS-Bench-Macro), which the supernet cannot share weights with; "
                             "use another accuracy estimator for this space")


def space_definition(space: SearchSpace) -> dict[str, Any]:
    """The space as the YAML mapping :func:`hwnas.space.space_from_dict` reads back."""
    def stage(st) -> dict[str, Any]:
        d = asdict(st)
        # explicit layer choices replace kernel x expand; none: as before layers existed
        drop = ("kernel", "expand") if st.layers else ("layers",)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items() if k not in drop}

    return {"name": space.name, "resolutions": list(space.resolutions), "channels": space.channels,
            "classes": space.classes, "stem": asdict(space.stem),
            "head": asdict(space.head) if space.head else None,
            "stages": [stage(s) for s in space.stages]}


def space_content(space: SearchSpace) -> dict[str, Any]:
    """What the supernet's weights depend on: everything but the name, resolutions and classes."""
    d = space_definition(space)
    return {k: d[k] for k in ("channels", "stem", "head", "stages")}


def space_from_meta(meta: dict[str, Any], source: str) -> SearchSpace:
    return space_from_dict(meta["space"]["definition"], f"{source} (space)")


def _kind(data_spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", data_spec.partition(":")[0].strip().lower()) or "data"


def supernet_id(space: SearchSpace, data_spec: str, resolution: int, recipe: dict[str, Any],
                seed: int) -> str:
    rec = {k: v for k, v in recipe.items() if k != "threads"}
    text = json.dumps({"space": space_content(space), "data": data_spec.strip(),
                       "resolution": resolution, "recipe": rec, "seed": seed}, sort_keys=True)
    name = re.sub(r"[^A-Za-z0-9.-]+", "-", space.name)[:40]
    return f"{name}-{_kind(data_spec)}-r{resolution}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def space_arg(space: SearchSpace) -> str:
    """How to name ``space`` on the command line: its name if it is found by name, else its file."""
    src = Path(space.source) if space.source else None
    for d in (home() / "search_spaces", PACKAGE_ROOT / "search_spaces"):
        if src is not None and src.resolve() == (d / f"{space.name}.yaml").resolve():
            return space.name
    return space.source or space.name


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for pkg in ("hwnas", "torch", "numpy", "scikit-learn"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


@dataclass
class Store:
    """One supernet folder."""

    folder: Path

    @property
    def id(self) -> str:
        return self.folder.name

    @property
    def meta_path(self) -> Path:
        return self.folder / META

    @property
    def checkpoint_path(self) -> Path:
        return self.folder / CHECKPOINT

    def read_meta(self) -> dict[str, Any]:
        p = self.meta_path
        if not p.is_file():
            raise HwnasError(f"{self.folder}: not a supernet folder (no {META})")
        try:
            d = json.loads(p.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise HwnasError(f"{p}: not a readable supernet meta file ({type(e).__name__}); "
                             "move the folder away to train afresh") from None
        need = {"id", "space", "data", "resolution", "recipe", "seed", "epochs_done", "classes"}
        if not isinstance(d, dict) or d.get("format") != META_FORMAT or not need <= set(d):
            raise HwnasError(f"{p}: not an hwnas supernet (expected format '{META_FORMAT}'); "
                             "move the folder away or pass another supernet")
        if d["id"] != self.id:
            raise HwnasError(f"{p}: belongs to supernet {d['id']}, not to this folder ({self.id}); "
                             "move it away")
        return d

    def write_meta(self, meta: dict[str, Any]) -> None:
        meta["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        atomic_write_json(self.meta_path, meta)

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        from ..train import save_checkpoint

        save_checkpoint(self.checkpoint_path, {"format": CHECKPOINT_FORMAT, "id": self.id, **state})

    def load_checkpoint(self) -> dict[str, Any]:
        """The checkpoint dict (``torch.load(weights_only=True)``); HwnasError if missing,
        corrupt, unsafe or of another supernet."""
        import pickle
        import zipfile

        import torch

        p = self.checkpoint_path
        if not p.is_file():
            raise HwnasError(f"{p}: no such checkpoint (supernet {self.id} has not finished an epoch)")
        if not zipfile.is_zipfile(p):
            raise HwnasError(f"{p}: not a torch checkpoint (corrupt, truncated or another kind of "
                             "file); move it away to train afresh")
        try:
            ck = torch.load(p, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise HwnasError(f"{p}: refused: holds Python objects that torch.load(weights_only=True) "
                             "does not load (supernet checkpoints hold only state dicts)") from None
        except Exception as e:  # corrupt zip members, truncated tensors...
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise HwnasError(f"{p}: not a readable checkpoint ({first[:160]}); move it away to "
                             "train afresh") from None
        need = {"format", "id", "model", "epoch"}
        if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT or not need <= set(ck):
            raise HwnasError(f"{p}: not an hwnas supernet checkpoint (expected format "
                             f"'{CHECKPOINT_FORMAT}'); move it away")
        if ck["id"] != self.id:
            raise HwnasError(f"{p}: checkpoint of supernet {ck['id']}, not {self.id}; move it away")
        return ck


def open_store(ref: str | Path) -> Store:
    """A supernet by id (in runs/supernets/) or by folder path."""
    p = Path(ref)
    if not p.is_dir():
        p = supernets_dir() / str(ref)
    if not p.is_dir():
        raise HwnasError(f"no supernet '{ref}' (not a folder, nor an id in {supernets_dir()}; "
                         "see hwnas supernet list)")
    return Store(p)


def list_stores() -> list[tuple[Store, dict[str, Any] | None, str]]:
    """Every folder under runs/supernets/: (store, meta or None, why it is unreadable)."""
    d = supernets_dir()
    out = []
    for f in sorted(d.iterdir()) if d.is_dir() else []:
        if not f.is_dir() or f.name.startswith("."):
            continue
        s = Store(f)
        try:
            out.append((s, s.read_meta(), ""))
        except HwnasError as e:
            out.append((s, None, str(e)))
    return out


def complete(meta: dict[str, Any]) -> bool:
    return int(meta.get("epochs_done", 0)) >= int(meta["recipe"].get("epochs", 0))


def matches(meta: dict[str, Any], space: SearchSpace, data_spec: str, resolution: int) -> str:
    """'' if ``meta`` is a supernet of ``space`` on ``data_spec`` at ``resolution``, else what differs."""
    diffs = []
    if meta["space"].get("content") != json.loads(json.dumps(space_content(space))):
        diffs.append(f"space {meta['space'].get('name')} (another content than {space.name})")
    if meta["data"] != data_spec.strip():
        diffs.append(f"data {meta['data']} (not {data_spec})")
    if meta["resolution"] != resolution:
        diffs.append(f"resolution {meta['resolution']} (not {resolution})")
    return "; ".join(diffs)


def train_command(space: SearchSpace, data_spec: str, resolution: int) -> str:
    import shlex

    return (f"hwnas supernet train --space {shlex.quote(space_arg(space))} --data "
            f"{shlex.quote(data_spec.strip())} -r {resolution}")


def find_supernet(space: SearchSpace, data_spec: str, resolution: int,
                  ref: str | Path | None = None) -> Store:
    """The supernet to score with: ``ref`` (id or folder), checked to be of ``space`` on
    ``data_spec`` at ``resolution`` and complete; else the newest complete such supernet.
    HwnasError (one line, with the command to run) when there is none."""
    check_space(space)
    where = f"space {space.name} on {data_spec} at {resolution} px"
    if ref is not None:
        store = open_store(ref)
        meta = store.read_meta()
        diff = matches(meta, space, data_spec, resolution)
        if diff:
            raise HwnasError(f"supernet {store.id} is of {diff}; this run scores {where}")
        candidates = [(store, meta)]
    else:
        candidates = [(s, m) for s, m, _ in list_stores()
                      if m is not None and not matches(m, space, data_spec, resolution)]
    done = [(s, m) for s, m in candidates if complete(m)]
    if done:
        return max(done, key=lambda sm: (sm[1].get("updated", ""), sm[0].id))[0]
    if candidates:
        s, m = candidates[-1]
        cmd = m.get("command") or train_command(space, data_spec, resolution)
        raise HwnasError(f"supernet {s.id} has trained {m['epochs_done']} of "
                         f"{m['recipe'].get('epochs')} epochs; finish it with: {cmd}")
    raise HwnasError(f"no trained supernet for {where} in {supernets_dir()}; train one with: "
                     f"{train_command(space, data_spec, resolution)}")


def load_supernet(store: Store, device: Any = "cpu") -> tuple[Any, dict[str, Any]]:
    """(SuperNet with the checkpoint's weights on ``device`` in eval mode, meta)."""
    import torch

    from .net import SuperNet

    meta = store.read_meta()
    ck = store.load_checkpoint()
    try:
        space = space_from_meta(meta, str(store.meta_path))
        net = SuperNet(space, int(meta["classes"]), int(meta.get("channels", 3)),
                       bool(meta["recipe"].get("kernel_transform", False)))
        net.load_state_dict(ck["model"])
    except (HwnasError, RuntimeError, KeyError, TypeError, ValueError) as e:
        raise HwnasError(f"{store.checkpoint_path}: does not fit the supernet its meta describes "
                         f"({str(e).splitlines()[0][:160]})") from None
    if int(ck["epoch"]) != int(meta["epochs_done"]):
        meta = {**meta, "epochs_done": int(ck["epoch"])}  # killed between the two writes
    return net.to(torch.device(device), memory_format=torch.channels_last).eval(), meta


__all__ = ["CHECKPOINT", "CHECKPOINT_FORMAT", "META", "META_FORMAT", "Store", "check_space",
           "complete", "list_stores", "matches", "open_store", "space_arg", "space_content", "space_definition",
           "space_from_meta", "find_supernet", "load_supernet", "supernet_id", "supernets_dir",
           "train_command", "versions"]
