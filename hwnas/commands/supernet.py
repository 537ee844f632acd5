"""hwnas supernet train / list: the weight-sharing supernet behind ``--estimator supernet``."""

from __future__ import annotations

import argparse

from .options import add_data, add_resolution, add_seed, add_threads, add_torch_device

_DESCRIPTION = """\
Train one weight-sharing supernet for every Arch of SPACE (Once-for-All / BigNAS): elastic
kernel (the centre of the largest depthwise kernel), expansion and width (the first
channels) and depth (the first layers of a stage). Each step trains the largest subnet on
the labels and --random-subnets random subnets plus the smallest on the largest's soft
predictions (sandwich rule, in-place distillation), one optimizer step for all.

It trains on the training split minus a held-out validation part (--val-fraction; what
`hwnas score --estimator supernet` scores on); the test split is never seen. The supernet
lives in runs/supernets/<id>/ (meta.json, checkpoint.pt); the id comes from the space's
content, the data, the resolution, the seed and the recipe. A checkpoint is written after
every epoch: the same command resumes after an interruption (even kill -9).

Several processes (torchrun --nproc-per-node N -m hwnas supernet train ..., and --nnodes M
with torchrun's rendezvous) train one supernet together: gloo on the CPU, NCCL on CUDA (one
GPU per process). --batch-size is the GLOBAL batch, split into N disjoint shards; every
process runs the same subnets, the gradients are averaged after all of the step's subnets,
and the learning rate is the one given, for the global batch (not scaled with N): the step
is the 1-process step, except that BatchNorm normalises each process's shard. Rank 0 alone
writes and holds a lock on the supernet; meta.json records world size, backend and batch.
Resume after kill -9 of any process by running the same torchrun command again. On CUDA the
forward passes run in bf16 autocast and the dataset is held on the GPU.
"""

_EPILOG = """\
examples:
  hwnas supernet train --space mobilenetv2 --data digits -r 32 --epochs 10
  hwnas supernet train --space mobilenetv2 --data fashion-mnist -r 32 --subset 10000
  hwnas score mbv2-0.5 --estimator supernet --space mobilenetv2 --data digits -r 32
  torchrun --nproc-per-node 4 -m hwnas supernet train --space mobilenetv2 --data fashion-mnist \
      -r 32 --batch-size 256 --torch-device cuda          # 4 GPUs, 64 images each per step
  hwnas supernet list
"""


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("supernet", help="train and list weight-sharing supernets",
                        description=_DESCRIPTION, epilog=_EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    ssub = sp.add_subparsers(dest="supernet_cmd", metavar="ACTION", required=True)
    tr = ssub.add_parser("train", help="train (or resume) the supernet of a space, dataset and "
                         "resolution", description=_DESCRIPTION, epilog=_EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    tr.add_argument("--space", required=True, metavar="SPACE",
                    help="a space in search_spaces/ (mobilenetv2, mobilenetv3) or a YAML path")
    add_data(tr, required=True)
    add_resolution(tr, "input resolution the supernet trains (and scores) at", required=True)
    tr.add_argument("--epochs", type=int, default=10)
    tr.add_argument("--subset", type=int, metavar="N",
                    help="train on a stratified N images of the training part")
    add_seed(tr, "seed of the weights, data order and subnets")
    tr.add_argument("--random-subnets", type=int, default=2, metavar="N",
                    help="random subnets per step besides the largest and smallest (default 2)")
    tr.add_argument("--lr", type=float, default=0.02, help="SGD learning rate for the global "
                    "batch, whatever the number of processes (default 0.02: the gradients of all "
                    "the step's subnets are summed)")
    tr.add_argument("--batch-size", type=int, default=64,
                    help="global batch per step; under torchrun split evenly over the processes "
                    "(must be a multiple of their number) [64]")
    tr.add_argument("--val-fraction", type=float, default=0.2,
                    help="part of the training split held out for scoring (default 0.2)")
    tr.add_argument("--kernel-transform", action="store_true",
                    help="Once-for-All's kernel transform matrices instead of the plain centre crop")
    add_threads(tr)
    add_torch_device(tr, "auto", what="where to train")
    tr.set_defaults(func=cmd_train)

    ls = ssub.add_parser("list", help="list the supernets in runs/supernets/",
                         description="List the supernets in runs/supernets/: id, space, data, "
                         "resolution, epochs done, wall time, the largest and smallest subnets' "
                         "validation accuracy.")
    ls.set_defaults(func=cmd_list)


def _command(args) -> str:
    import shlex

    parts = ["hwnas", "supernet", "train", "--space", args.space, "--data", args.data,
             "-r", str(args.resolution)]
    defaults = {"epochs": 10, "subset": None, "seed": 0, "random_subnets": 2, "lr": 0.02,
                "batch_size": 64, "val_fraction": 0.2}
    for k, d in defaults.items():
        v = getattr(args, k)
        if v != d:
            parts += [f"--{k.replace('_', '-')}", str(v)]
    if args.kernel_transform:
        parts.append("--kernel-transform")
    return shlex.join(parts)


def cmd_train(args) -> None:
    from ..data import load_dataset
    from ..errors import HwnasError
    from ..space import load_space
    from ..supernet import SupernetRecipe, train_supernet
    from ..train import resolve_torch_device
    from .options import positive

    positive(resolution=args.resolution, epochs=args.epochs, subset=args.subset,
              batch_size=args.batch_size, threads=args.threads)
    if args.random_subnets < 0:
        raise HwnasError(f"--random-subnets: must be >= 0, got {args.random_subnets}")
    device = resolve_torch_device(args.torch_device)  # before loading anything
    space = load_space(args.space)
    recipe = SupernetRecipe(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                            subset=args.subset, threads=args.threads,
                            random_subnets=args.random_subnets,
                            kernel_transform=args.kernel_transform, val_fraction=args.val_fraction)
    data = load_dataset(args.data, args.resolution, args.seed)
    r = train_supernet(space, data, args.data, args.resolution, recipe, seed=args.seed,
                       device=device, command=_command(args))
    if r.rank:  # torchrun: rank 0 reports
        return
    m = r.meta
    v = m["validation"]
    print(f"supernet    {r.store.id}")
    print(f"folder      {r.store.folder}")
    print(f"data        {args.data}: trained on {v['train_images']} images"
          + (f" (subset of {len(data.train_y) - v['val_images']})" if args.subset else "")
          + f", {v['val_images']} held out for scoring, at {args.resolution}x{args.resolution}")
    print(f"epochs      {m['epochs_done']} of {recipe.epochs}"
          + (f" (resumed after epoch {r.resumed_from})" if r.resumed_from else "")
          + f", {m['wall_seconds'] / 60:.1f} min in total on {m['torch_device']}"
          + (f" x {m['distributed']['world_size']} processes ({m['distributed']['backend']}, global "
             f"batch {m['distributed']['global_batch']})"
             if (m.get("distributed") or {}).get("world_size", 1) > 1 else ""))
    print(f"val acc     largest {100 * m['largest_val_acc']:.2f} %, smallest "
          f"{100 * m['smallest_val_acc']:.2f} % (after BatchNorm recalibration)")
    print(f"next: hwnas score ARCH --estimator supernet --space {args.space} --data {args.data} "
          f"-r {args.resolution}")


def cmd_list(args) -> None:
    from ..supernet import list_stores
    from ..supernet.store import supernets_dir

    rows = list_stores()
    if not rows:
        print(f"no supernets in {supernets_dir()} (train one with hwnas supernet train)")
        return
    print(f"{'id':<44} {'space':<14} {'data':<16} {'px':>4} {'epochs':>7} {'min':>6} "
          f"{'largest':>8} {'smallest':>8}  device")
    for store, m, why in rows:
        if m is None:
            print(f"{store.id:<44} unreadable: {why}")
            continue
        acc = (f"{100 * m['largest_val_acc']:7.2f}% {100 * m['smallest_val_acc']:7.2f}%"
               if "largest_val_acc" in m else f"{'-':>8} {'-':>8}")
        print(f"{store.id:<44} {m['space']['name']:<14} {m['data'][:16]:<16} {m['resolution']:>4} "
              f"{m['epochs_done']:>3}/{m['recipe']['epochs']:<3} {m.get('wall_seconds', 0) / 60:6.1f} "
              f"{acc}  {m.get('torch_device') or '-'}")
