"""Deployment from the supernet: ``hwnas retrain RUN --from-supernet [ID]``.

Instead of training a winner from scratch, each winner (and with ``--baselines-from-supernet``
each baseline the space holds) takes its weights from a trained supernet
(:mod:`hwnas.supernet`):

1. **which supernet**: the ID given, else the one that scored the search (the run's
   ``config.json`` records it under ``accuracy_settings.supernet``), else the newest complete
   supernet of the run's space, data and resolution. A supernet of another space, data or
   resolution, an unknown ID, an unreadable or truncated checkpoint, or a winner outside the
   supernet's choices is refused in one line before anything is trained;
2. **extract** the subnet as a plain :class:`hwnas.model.Net` (:meth:`SuperNet.extract`), so
   export, measurement and quantization treat it like any trained network;
3. **recalibrate** its BatchNorm statistics exactly as the supernet estimator does
   (:func:`hwnas.train.recalibrate_bn`: reset, cumulative average over ``BN_IMAGES``
   un-augmented training images chosen by the seed);
4. optionally **fine-tune** it ``finetune_epochs`` epochs with the retrain recipe
   (:func:`hwnas.train.train_arch` from the inherited weights; ``distill``: from the soft
   predictions of the supernet's largest subnet, as the supernet's students learned);
5. evaluate on the test split, write the same result file as a stand-alone training (plus
   ``weights``, ``supernet``, ``seconds`` = its wall time) and a training checkpoint of the
   final weights, so that the ONNX export and the interleaved measurement of
   :mod:`hwnas.retrain.run` are unchanged.

Results live next to the stand-alone ones, in ``retrain/<recipe id>/<name>@<tag>/`` where the
tag names the supernet, the fine-tune epochs and distillation: a stand-alone training and a
deployment of the same winner never overwrite each other.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import HwnasError
from ..io import atomic_write_json

log = logging.getLogger(__name__)

STANDALONE = "stand-alone"
#: images the BatchNorm statistics are re-estimated on (the supernet estimator's default)
BN_IMAGES = 2000

__all__ = ["BN_IMAGES", "STANDALONE", "SupernetSource", "assign", "deploy_models", "deploy_one",
           "extract_subnet", "open_source", "weights_label"]


def weights_label(finetune_epochs: int) -> str:
    """retrain.csv's ``weights``: ``supernet``, or ``supernet+N`` after N fine-tune epochs."""
    return "supernet" if not finetune_epochs else f"supernet+{finetune_epochs}"


@dataclass
class SupernetSource:
    """The supernet the models are deployed from, and how."""

    store: Any  # hwnas.supernet.Store
    net: Any  # hwnas.supernet.SuperNet, on the CPU
    meta: dict
    finetune_epochs: int = 0
    distill: bool = False
    how: str = ""  # how it was chosen: "given", "the search's", "newest matching"

    @property
    def tag(self) -> str:
        h = hashlib.sha1(self.store.id.encode()).hexdigest()[:8]
        return f"sn-{h}-ft{self.finetune_epochs}" + ("-kd" if self.distill else "")

    @property
    def weights(self) -> str:
        return weights_label(self.finetune_epochs)

    def describe(self) -> dict[str, Any]:
        """What retrain.json records about the supernet."""
        return {"id": self.store.id, "chosen": self.how, "finetune_epochs": self.finetune_epochs,
                "distill": self.distill, "bn_images": BN_IMAGES, "weights": self.weights,
                "supernet_epochs": self.meta.get("epochs_done"),
                "supernet_wall_seconds": self.meta.get("wall_seconds")}

    def holds(self, arch) -> str:
        """'' if ``arch`` is a subnet of the supernet, else why not (one line)."""
        try:
            self.net.check_arch(arch)
        except HwnasError as e:
            return str(e)
        return ""


def open_source(ref: str | None, config: dict, data_spec: str, resolution: int, data,
                finetune_epochs: int = 0, distill: bool = False) -> SupernetSource:
    """The supernet to deploy from (see the module docstring, step 1), loaded on the CPU."""
    from ..space import load_space
    from ..supernet import find_supernet, load_supernet, open_store
    from ..supernet.store import matches

    if ref:
        how = "given"
    elif config.get("accuracy") == "supernet" and (config.get("accuracy_settings") or {}).get("supernet"):
        ref, how = config["accuracy_settings"]["supernet"], "the search's"
    else:
        how = "newest matching"
    try:
        space = load_space(config["space"])
    except (HwnasError, KeyError) as e:
        raise HwnasError(f"--from-supernet: cannot load the run's space ({e})") from None
    where = f"space {space.name} on {data_spec} at {resolution} px"
    if ref:
        store = open_store(ref)
        diff = matches(store.read_meta(), space, data_spec, resolution)
        if diff:
            raise HwnasError(f"--from-supernet: supernet {store.id} is of {diff}; this run "
                             f"deploys {where}")
    store = find_supernet(space, data_spec, resolution, ref)
    net, meta = load_supernet(store, "cpu")
    if int(meta.get("seed", 0)) != 0:  # digits' test split depends on the seed
        from ..data import load_dataset

        other = load_dataset(data_spec, resolution, int(meta["seed"]))
        if len(other.test_y) != len(data.test_y) or not bool((other.test_y == data.test_y).all()
                                                             and (other.test_x == data.test_x).all()):
            raise HwnasError(f"--from-supernet: supernet {store.id} was trained on the seed-"
                             f"{meta['seed']} split of {data_spec}, whose training images include "
                             "retrain's test images (seed 0's split); train one with --seed 0")
    return SupernetSource(store, net, meta, finetune_epochs, distill, how)


def assign(src: SupernetSource, models: list, baselines: bool) -> None:
    """Mark the winners (and, ``baselines``, each baseline the supernet holds) as deployed
    from ``src``; a winner outside the supernet's choices is one HwnasError line, a baseline
    outside them one warning line (it trains stand-alone)."""
    for m in models:
        why = src.holds(m.arch) if m.kind == "winner" or baselines else "-"
        if m.kind == "winner" and why:
            raise HwnasError(f"--from-supernet: winner {m.name} is not a subnet of supernet "
                             f"{src.store.id}: {why}")
        if m.kind == "baseline" and baselines and why:
            log.warning("baseline %s is not held by supernet %s (%s); it trains stand-alone",
                        m.name, src.store.id, why.removeprefix("arch is outside the supernet's "
                                                               "choices: "))
        if not why:
            m.weights, m.tag = src.weights, src.tag
    log.info("deploying %d model(s) from supernet %s (%s)%s", sum(bool(m.tag) for m in models),
             src.store.id, src.how, f", fine-tuned {src.finetune_epochs} epoch(s)"
             + (" from the largest subnet" if src.distill else "") if src.finetune_epochs else "")


def extract_subnet(src: SupernetSource, arch, data, seed: int, progress: bool = False):
    """The plain Net of ``arch`` with the supernet's weights, BN recalibrated (``progress``:
    with a progress bar), eval mode."""
    from ..train import recalibrate_bn

    net = src.net.extract(arch)
    recalibrate_bn(net, data, BN_IMAGES, arch.resolution, seed, progress=progress)
    return net


def deploy_one(src: SupernetSource, m, s: int, export: bool, data, data_spec: str, recipe,
               run_dir: Path, root: Path, progress: bool, torch_device: Any = "cpu") -> dict:
    """Deploy model ``m`` (seed ``s``: the BN images, the fine-tune's shuffling) and write
    its result file and checkpoint under ``root/<m.folder>``; returns the result."""
    import torch

    from ..train import CHECKPOINT_FORMAT, evaluate, save_checkpoint, train_arch
    from ..trials.workers import worker_id
    from .result import RESULT_FORMAT, export_onnx

    t0 = time.perf_counter()
    folder = root / m.folder
    folder.mkdir(parents=True, exist_ok=True)
    ck = folder / f"seed{s}.pt"
    net = extract_subnet(src, m.arch, data, s, progress)
    epochs, resumed = src.finetune_epochs, 0
    if epochs:
        teacher = None
        if src.distill:
            dev = torch.device(torch_device)
            largest = src.net.largest(m.arch.resolution)
            teacher = extract_subnet(src, replace(largest, resolution=m.arch.resolution), data, s)
            teacher = teacher.to(dev, memory_format=torch.channels_last).eval()
        res = train_arch(m.arch, data, replace(recipe, epochs=epochs), seed=s, checkpoint=ck,
                         progress=progress, device=torch_device, init=net.state_dict(),
                         teacher=teacher)
        net, acc, loss, resumed = res.model, res.test_acc, res.train_loss, res.resumed_from
    else:
        net = net.to(torch.device(torch_device), memory_format=torch.channels_last)
        acc, loss = evaluate(net, data, progress=progress), float("nan")
        save_checkpoint(ck, {"format": CHECKPOINT_FORMAT, "arch": m.arch.to_string(),
                             "data": data.name, "seed": s, "recipe": replace(recipe, epochs=0).to_dict(),
                             "epoch": 0, "train_loss": loss, "history": [],
                             "model": net.cpu().state_dict(), "supernet": src.store.id})
    seconds = time.perf_counter() - t0
    r = {"format": RESULT_FORMAT, "name": m.name, "kind": m.kind, "arch": m.arch.to_string(),
         "seed": s, "data": data_spec, "resolution": m.arch.resolution,
         "recipe": replace(recipe, epochs=epochs).to_dict(), "epochs": epochs,
         "test_acc": float(acc), "train_loss": None if loss != loss else float(loss),
         "seconds": round(seconds, 2), "weights": src.weights, "supernet": src.store.id,
         "finetune_epochs": epochs, "distill": src.distill, "bn_images": BN_IMAGES,
         "torch_device": str(torch_device), "worker": worker_id(), "resumed_from": resumed,
         "checkpoint": ck.name, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if export:
        r["onnx"] = m.onnx_rel
        r["onnx_sha1"] = export_onnx(m, net.cpu().eval(), run_dir)
    atomic_write_json(folder / f"seed{s}.json", r)
    log.info("%s seed %d: %s weights, test accuracy %.4f (%.1f s)", m.name, s, src.weights,
             r["test_acc"], seconds)
    return r


def deploy_models(src: SupernetSource, models: list, seeds, data, data_spec: str, recipe,
                  run_dir: Path, rid: str, progress: bool, torch_device: Any = "cpu") -> int:
    """Deploy every (model, seed) of ``models`` (those with supernet weights) not done yet;
    the number deployed."""
    from .queue import read_done

    root = run_dir / "retrain" / rid
    n = 0
    for m in models:
        for s in seeds:
            if read_done(m, s, root) is None:
                deploy_one(src, m, s, s == seeds[0], data, data_spec, recipe, run_dir, root,
                           progress, torch_device)
                n += 1
    return n
