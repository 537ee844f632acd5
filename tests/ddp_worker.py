"""Started by torchrun in tests/test_supernet_dist.py: trains the tiny supernet with this
process's rank, fails if a rank other than 0 writes into the supernet folder, and (rank 0)
writes the per-step losses to OUT. Usage: ddp_worker.py SPACE.yaml OUT.json EPOCHS"""

import json
import os
import sys

import torch

from hwnas.data import load_dataset
from hwnas.space import load_space
from hwnas.supernet import Store, SupernetRecipe, train_supernet

space, out, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
rank = int(os.environ["RANK"])
if rank != 0:
    def refuse(*a, **k):
        raise AssertionError(f"rank {rank} wrote into the supernet folder")

    Store.write_meta = refuse
    Store.save_checkpoint = refuse
torch.set_num_threads(1)
steps = []
r = train_supernet(load_space(space), load_dataset("digits", 16), "digits", 16,
                   SupernetRecipe(epochs=epochs, subset=256, threads=1, batch_size=64), seed=0,
                   device="cpu", progress=False, on_step=lambda i, a, b: steps.append([i, a, b]))
if rank == 0:
    with open(out, "w") as f:
        json.dump({"steps": steps, "id": r.store.id}, f)
