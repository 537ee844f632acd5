"""The loop's ``--oracle train``: each round's chosen Archs trained with the retrain recipe
through the retrain queue (:mod:`hwnas.retrain.queue`), so that many processes on many
machines share a round.

Every (Arch, seed) of a round is one work item of the queue ``retrain-<recipe id>-loop-<run>``
in the loop's storage (``--storage URL``, else the journal file ``runs/RUN/loop-queue.log``):
the loop enqueues the round's items, claims and trains them like any worker
(:func:`hwnas.retrain.queue.train_queue`), waits for the ones other processes hold, then
reads every item's result file (:func:`hwnas.retrain.queue.collect_results`) and refits.
Results are written as ``hwnas retrain`` writes them, in the loop's run folder:
``runs/RUN/retrain/<recipe id>/<arch file stem>/seed<S>.json`` (+ the per-epoch checkpoint
``seed<S>.pt``); no ONNX export. Other processes join with ``hwnas retrain RUN --train-only``
(:func:`work_loop_queue`: claims what is waiting, then stops). A killed process's item goes
back to the queue by the queue's rules and resumes from its checkpoint.

What the number is: the recipe (:class:`hwnas.train.Recipe`, ``--train-epochs`` epochs on a
stratified seeded ``--train-subset`` of the training images) trains on the training split
minus a held-out :data:`VAL_FRACTION` and scores on that held-out part: the **validation**
accuracy (``val_acc``); the dataset's test split is never touched by the loop. Each result
file's ``test_acc`` is that number: its ``data`` (``digits[val0.2,seed0]``) is the dataset whose
evaluation split is the held-out part. :func:`oracle_info` writes this into loop.json.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import HwnasError

log = logging.getLogger(__name__)

VAL_FRACTION = 0.2  # of the training split, held out to score each training
QUEUE_FILE = "loop-queue.log"  # the default storage: a journal file in the run folder
STATE_FILE = "loop.json"

__all__ = ["QUEUE_FILE", "VAL_FRACTION", "QueueOracle", "is_loop_run", "work_loop_queue"]


def data_spec(data: str, seed: int) -> str:
    """The dataset the loop trains on, as recorded in each result (and hashed in the recipe
    id): ``data`` with the held-out validation part as its evaluation split."""
    return f"{data}[val{VAL_FRACTION:g},seed{seed}]"


def queue_storage(storage: str | None, run_dir: Path) -> str:
    """The queue's storage URL: ``storage`` (relative SQLite paths in the run folder), else the
    journal file :data:`QUEUE_FILE` in the run folder."""
    from ..trials.storage import resolve_storage_url

    if storage is None or not str(storage).strip() or str(storage).strip().lower() == "none":
        return str((run_dir / QUEUE_FILE).absolute())
    return resolve_storage_url(storage, run_dir) or storage


@dataclass
class QueueOracle:
    """``train``: :meth:`score` trains Archs as work items of the loop's retrain queue."""

    run: str
    run_dir: Path
    data_name: str  # the --data spec
    resolution: int
    epochs: int
    subset: int | None
    seed: int
    url: str
    progress: bool = True
    torch_device: Any = "cpu"
    threads: int | None = None
    name = "train"

    def __post_init__(self) -> None:
        from ..data import load_dataset
        from ..retrain.queue import RetrainQueue, queue_name
        from ..retrain.run import recipe_id
        from ..train import Recipe

        full = load_dataset(self.data_name, self.resolution, 0)
        self.data = full.split_validation(VAL_FRACTION, self.seed)
        self.spec = data_spec(self.data_name, self.seed)
        self.recipe = Recipe(epochs=self.epochs, subset=self.subset, threads=self.threads)
        self.rid = recipe_id(self.recipe, self.spec, self.resolution)
        self.seeds = (self.seed,)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.queue = RetrainQueue.open(self.url, queue_name(self.rid, f"loop-{self.run}"),
                                       self.run_dir)

    def info(self) -> dict[str, Any]:
        """What a training is, for loop.json: recipe, data, split, queue."""
        r = self.recipe.to_dict()
        r.pop("threads", None)
        return {"kind": "train", "column": "val_acc", "recipe": r, "recipe_id": self.rid,
                "data": self.data_name, "data_spec": self.spec,
                "split": f"validation: a stratified {VAL_FRACTION:g} of the training split "
                f"(seed {self.seed}) held out; the model trains on the rest "
                f"({'a ' + str(self.subset) + '-image subset' if self.subset else 'all of it'})"
                "; the test split is not used",
                "val_fraction": VAL_FRACTION, "seeds": list(self.seeds),
                "queue": {"storage": self.url, "study": self.queue.name},
                "results": f"retrain/{self.rid}/<arch file stem>/seed<S>.json (test_acc: "
                "the accuracy on the held-out validation part)"}

    def models(self, archs) -> list:
        from ..retrain.run import Model
        from ..train import adapt_arch

        out = []
        for a in archs:
            a = adapt_arch(a, self.data)
            out.append(Model(a.file_stem(), "loop", a))
        return out

    def score(self, archs) -> list[float]:
        """Each Arch's validation accuracy (mean over the seeds): its items enqueued, trained
        here or by other workers, their result files read."""
        from ..retrain import queue as rq

        models = self.models(archs)
        n = rq.train_queue(self.queue, models, self.seeds, self.data, self.spec, self.recipe,
                           self.run_dir, self.rid, self.progress, self.torch_device, wait=True,
                           onnx=False)
        res = rq.collect_results(models, self.seeds, self.run_dir, self.rid, self.queue,
                                 what=f"loop run {self.run}", onnx=False)
        log.info("%d of %d trainings of this round made here", n, len(models) * len(self.seeds))
        return [sum(float(r["test_acc"]) for r in res[m.name]) / len(res[m.name])
                for m in models]


def is_loop_run(run: str | Path) -> bool:
    """Whether ``run`` (a name or a folder) is a train-predict-search loop run."""
    from ..runs import run_path

    p = Path(run)
    return ((p / STATE_FILE).is_file() if p.is_dir() else False) or \
        (run_path(run) / STATE_FILE).is_file()


def loop_folder(run: str | Path) -> Path:
    from ..runs import run_path

    p = Path(run)
    return p if p.is_dir() and (p / STATE_FILE).is_file() else run_path(run)


def work_loop_queue(run: str | Path, storage: str | None = None, progress: bool = True,
                    torch_device: Any = "cpu", threads: int | None = None) -> tuple[int, int]:
    """``hwnas retrain RUN --train-only`` on a loop run: claim and train the waiting items of
    its queue with the loop's recipe (from loop.json), then stop; (trained here, still
    waiting or running)."""
    from ..retrain import queue as rq

    run_dir = loop_folder(run)
    try:
        state = json.loads((run_dir / STATE_FILE).read_text())
    except (OSError, ValueError) as e:
        raise HwnasError(f"{run_dir / STATE_FILE}: unreadable ({e})") from None
    s, o = state.get("settings") or {}, state.get("oracle") or {}
    if o.get("kind") != "train":
        raise HwnasError(f"loop run '{run_dir.name}' has the oracle {s.get('oracle')!r}: "
                         "nothing to train (only --oracle train has a queue)")
    url = queue_storage(storage, run_dir) if storage else (o.get("queue") or {}).get("storage")
    oracle = QueueOracle(s["run"], run_dir, s["data"], int(s["resolution"]), int(s["epochs"]),
                         s.get("subset"), int(s["seed"]), url, progress, torch_device, threads)
    if oracle.rid != o.get("recipe_id"):
        raise HwnasError(f"{run_dir / STATE_FILE}: recipe id {o.get('recipe_id')} but its "
                         f"settings give {oracle.rid} (another hwnas version?)")
    known: dict[str, Any] = {}
    for t in oracle.queue.study.get_trials(deepcopy=False):
        it = rq.Item.from_attrs(t.user_attrs)
        if it is not None:
            known.setdefault(it.key, it)
    models = [it.model() for it in known.values()]
    n = rq.train_queue(oracle.queue, models, oracle.seeds, oracle.data, oracle.spec,
                       oracle.recipe, run_dir, oracle.rid, progress, torch_device, wait=False,
                       onnx=False)
    left = oracle.queue.pending(list(known.values()))
    return n, len(left)
