"""Weight sharing: one supernet per space, dataset and resolution (Once-for-All, BigNAS).

* :mod:`.elastic` -- ops that hold the largest weights and slice the active ones;
* :mod:`.net` -- :class:`SuperNet` (``set_active(arch)``, ``extract(arch) -> Net``) and the
  mapping of an Arch's blocks onto the space's stages;
* :mod:`.train` -- the sandwich rule with in-place distillation, checkpointed every epoch;
* :mod:`.store` -- ``runs/supernets/<id>/``: id, meta.json, checkpoint.pt.

The ``supernet`` accuracy estimator (:class:`hwnas.accuracy.SupernetEstimator`) scores an
Arch as a subnet after BatchNorm recalibration.
"""

from .net import SuperNet, assign_blocks
from .store import Store, find_supernet, list_stores, load_supernet, open_store, supernet_id
from .train import SupernetRecipe, SupernetResult, subnet_accuracy, train_supernet

__all__ = ["Store", "SuperNet", "SupernetRecipe", "SupernetResult", "assign_blocks", "find_supernet",
           "list_stores", "load_supernet", "open_store", "subnet_accuracy", "supernet_id",
           "train_supernet"]
