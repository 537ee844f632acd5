"""Where a search starts: the fixed resolution, the seed configurations, the cheapest archs.

Every trial samples the same parameters (the space's :meth:`~hwnas.space.SearchSpace.params`;
``resolution`` is fixed, :func:`default_resolution`). A new study is seeded by
``enqueue_trial`` (:func:`seed_study`) with the space's MobileNetV2-like configurations (all
layers present, kernel/expansion nearest k3e6, no SE, one per width multiplier) and its
cheapest one (:func:`seed_params`). A trial whose parameters are all fixed by
``enqueue_trial`` never calls the sampler, and NSGA-II/III give a trial a generation only from
``sample_relative``: such trials would be in no generation and never be parents. The objective
(:class:`hwnas.search.objective.Objective`) therefore reads ``trial.relative_params`` for seed
trials when the sampler is a ``BaseGASampler``, which places them in generation 0
(``tests/test_search.py`` checks this).
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any

from ..arch import Arch, make_divisible, num_str
from ..context import Device
from ..errors import HwnasError
from ..paths import DEMO_RESOLUTION
from ..runs import SEED_ATTR
from ..space import ID, SKIP, SearchSpace

log = logging.getLogger(__name__)

__all__ = ["cheapest_archs", "cheapest_params", "default_resolution", "seed_params", "seed_study"]


def _layer_choice(choices: list[str], kernel: float, expand: float) -> str:
    real = [c for c in choices if c not in (SKIP, ID)]
    if not real:  # only skip blocks
        return ID
    return min(real, key=lambda c: (abs(int(c[1:].split("e")[0]) - kernel),
                                    abs(float(c.split("e")[1]) - expand)))


def cheapest_params(space: SearchSpace, act: str | None = None) -> dict[str, Any]:
    """The configuration with the smallest widths, minimum depths, smallest kernel and
    expansion, no SE (or the smallest), and activation ``act`` where a stage has a choice."""
    p: dict[str, Any] = {}
    for name, choices in space.params():
        if name == "resolution":
            continue
        if name.endswith("_out"):
            p[name] = min(choices)
        elif name.endswith("_se"):
            p[name] = min(choices, key=float)
        elif name.endswith("_act"):
            p[name] = act if act in choices else choices[0]
        else:
            p[name] = next((c for c in (SKIP, ID) if c in choices), None) or \
                _layer_choice(choices, 0, 0)
    return p


def seed_params(space: SearchSpace) -> list[tuple[str, dict[str, Any]]]:
    """(label, params) of the seed configurations: MobileNetV2-like at each width, cheapest."""
    widths = sorted({w for st in space.stages for w in st.width})
    out: list[tuple[str, dict[str, Any]]] = []
    names = dict(space.params())
    for w in widths:
        p: dict[str, Any] = {}
        for j, st in enumerate(space.stages, 1):
            if f"s{j}_out" in names:
                want = make_divisible(st.out * w, 8) if w in st.width else max(st.outs)
                p[f"s{j}_out"] = min(names[f"s{j}_out"], key=lambda c, want=want: abs(c - want))
            if f"s{j}_se" in names:
                p[f"s{j}_se"] = min(names[f"s{j}_se"], key=float)
            if f"s{j}_act" in names:
                p[f"s{j}_act"] = names[f"s{j}_act"][0]
            for layer in range(st.depth[1]):
                if f"s{j}_l{layer}" in names:
                    p[f"s{j}_l{layer}"] = _layer_choice(names[f"s{j}_l{layer}"], 3, 6)
        out.append((f"mbv2-like-w{num_str(w)}", p))
    out.append(("cheapest", cheapest_params(space)))
    seen, unique = set(), []
    for label, p in out:
        k = json.dumps(p, sort_keys=True)
        if k not in seen:
            seen.add(k)
            unique.append((label, p))
    return unique


def cheapest_archs(space: SearchSpace, resolution: int, classes: int) -> list[Arch]:
    acts = sorted({a for st in space.stages for a in st.act})
    return [replace(space.arch_from_params(cheapest_params(space, a), resolution), classes=classes)
            for a in acts]


def default_resolution(space: SearchSpace, device: str | Device | None = None) -> int:
    """The resolution of ``space`` the device's table covers best (the one it was profiled
    at; the demo resolution on a tie), else the demo resolution (or the space's nearest)."""
    if device:
        try:
            table = Device.of(device).table
        except HwnasError as e:  # no table (yet), or none that reads: fall back
            log.debug("default resolution from the table of %s: %s", device, e)
        else:
            cover = {}
            for r in space.resolutions:
                have, total = table.coverage(space, r)
                cover[r] = have / total if total else 0.0
            best = max(cover.values(), default=0.0)
            if best > 0:
                return min((r for r, c in cover.items() if c == best),
                           key=lambda r: (r != DEMO_RESOLUTION, r))
    if DEMO_RESOLUTION in space.resolutions:
        return DEMO_RESOLUTION
    return min(space.resolutions, key=lambda r: (abs(r - DEMO_RESOLUTION), r))


def seed_study(study, space: SearchSpace) -> list[str]:
    """Enqueue the seed configurations (:func:`seed_params`); returns the labels enqueued.

    A study without trials of its own (new, or holding only seed trials) gets every seed that
    is not in it yet. A seed whose trials all ended FAIL (an error, or a worker killed during
    it: :func:`hwnas.trials.workers.fail_dead_trials` runs first) is enqueued again, once per
    launch, until it has a COMPLETE trial; a seed with a COMPLETE, WAITING, RUNNING or PRUNED
    trial is left alone, so no seed is ever evaluated twice. A study whose search started
    without seeds (``--no-seed``) gets none later.

    Processes that share a study call it under :func:`hwnas.trials.storage.seed_lock`, which
    makes "look, then enqueue" one step: N processes started at once enqueue each seed once."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    states: dict[str, set] = {}
    for t in trials:
        label = t.user_attrs.get(SEED_ATTR)
        if label:
            states.setdefault(str(label), set()).add(t.state)
    fresh = not any(t.user_attrs.get(SEED_ATTR) is None for t in trials)
    out = []
    for label, p in seed_params(space):
        have = states.get(label)
        if have is None and not fresh:
            continue
        if have and have - {TrialState.FAIL}:
            continue
        if have:
            log.info("seed %s: its trial failed or was interrupted; evaluating it again", label)
        study.enqueue_trial(p, user_attrs={SEED_ATTR: label})
        out.append(label)
    return out
