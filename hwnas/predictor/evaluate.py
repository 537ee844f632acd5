"""Held-out evaluation: how well four latency predictors do on networks they never saw.

MACs-linear, the LUT sum, the block-model sum and the full :class:`LatencyPredictor`, with
RMSE, MAPE, the share within +-5 % / +-10 % and Kendall's tau per group of networks
(``hwnas predictor eval``, the report's parity figure).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..arch import parse_string
from ..costs import arch_costs
from ..errors import HwnasError
from ..pieces import arch_pieces
from .latency import LatencyPredictor, parse_archs

log = logging.getLogger(__name__)

PREDICTORS = ("macs_linear", "lut_sum", "block_sum", "full")
PREDICTOR_NAMES = {"macs_linear": "MACs-linear", "lut_sum": "LUT sum",
                   "block_sum": "block-model sum", "full": "full predictor"}
OUT_OF_SPACE = ("baselines", "other")  # the groups of networks outside every space
METRICS = ("n", "rmse_ms", "mape_pct", "within5_pct", "within10_pct", "kendall_tau")


def latency_metrics(y_true: Sequence[float], y_pred: Sequence[float]) -> dict[str, float]:
    """RMSE (ms), MAPE (%), share within +-5 % and +-10 % (%), Kendall tau; pairs where the
    prediction is missing (NaN) are left out (``n`` says how many remain)."""
    from scipy.stats import kendalltau
    from sklearn.metrics import mean_absolute_percentage_error, root_mean_squared_error

    t, p = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    ok = np.isfinite(p) & np.isfinite(t)
    t, p = t[ok], p[ok]
    if not len(t):
        return {"n": 0, **{m: float("nan") for m in METRICS[1:]}}
    rel = np.abs(p / t - 1)
    tau = float(kendalltau(t, p).statistic) if len(t) > 1 else float("nan")
    return {"n": int(len(t)), "rmse_ms": float(root_mean_squared_error(t, p)),
            "mape_pct": 100 * float(mean_absolute_percentage_error(t, p)),
            "within5_pct": 100 * float(np.mean(rel <= 0.05)),
            "within10_pct": 100 * float(np.mean(rel <= 0.10)), "kendall_tau": tau}


def network_groups(arch_strings: Iterable[str], spaces: Sequence[Any] = ()) -> dict[str, str]:
    """Group of each measured network: ``"baselines"`` (a baseline at any resolution),
    ``"<space>@<resolution>"`` (an Arch of a space: its pieces are the space's at that
    resolution, with the space's stem, head and classes), else ``"other"``."""
    from ..baselines import BASELINES, baseline

    piece_sets: dict[tuple[str, int], set[str]] = {}
    out = {}
    for s in arch_strings:
        a = parse_string(s)
        names = {baseline(n, a.resolution, a.classes).to_string() for n in BASELINES
                 if a.resolution >= 32}
        if s in names:
            out[s] = "baselines"
            continue
        out[s] = "other"
        for sp in spaces:
            if a.resolution not in sp.resolutions or (sp.stem, sp.head, sp.classes, sp.channels) \
                    != (a.stem, a.head, a.classes, a.channels):
                continue
            keys = piece_sets.get((sp.name, a.resolution))
            if keys is None:
                keys = piece_sets[(sp.name, a.resolution)] = {p.key for p in sp.pieces(a.resolution)}
            if all(p.key in keys for p in arch_pieces(a)):
                out[s] = f"{sp.name}@{a.resolution}"
                break
    return out


@dataclass
class Evaluation:
    """Held-out predictions of the four predictors and their metrics per group."""

    rows: list[dict[str, Any]]  # group, predictor, n + METRICS
    predictions: dict[str, dict[str, float]]  # arch -> measured, group, each predictor
    folds: int
    n_train: dict[str, int]  # group -> networks the full predictor was trained on (per fold)
    #: out-of-space networks (baselines, others) that could not be predicted at all: their
    #: arch -> why (an operator or a resolution the table never measured)
    unpredictable: dict[str, str] = field(default_factory=dict)
    out_of_space: tuple[str, ...] = OUT_OF_SPACE

    def coverage(self) -> str:
        """One line on the out-of-space networks: how many, how many predicted at all, and
        how to measure the baselines when the table has none."""
        out = [s for s, r in self.predictions.items() if r["group"] in self.out_of_space]
        base = sum(self.predictions[s]["group"] == "baselines" for s in out)
        n = len(out) + len(self.unpredictable)
        line = (f"out-of-space networks (predicted by models fitted on space networks only): "
                f"{n}, of them {len(out)} predictable ({base} baselines)")
        if self.unpredictable:
            s, why = next(iter(self.unpredictable.items()))
            line += f"; not predictable: {len(self.unpredictable)} (e.g. {s[:40]}...: {why})"
        if not base:
            line += ("; no baseline network is in the table: hwnas profile --device NAME "
                     "--archs baselines measures them (MobileNetV2 widths, MobileNetV3-small at "
                     "the table's resolutions)")
        return line

    def table(self) -> str:
        lines = [f"{'group':<22} {'predictor':<16} {'n':>4} {'RMSE ms':>9} {'MAPE %':>7} "
                 f"{'±5 %':>6} {'±10 %':>6} {'Kendall τ':>9}"]
        last = None
        for r in self.rows:
            g = r["group"] if r["group"] != last else ""
            last = r["group"]
            if not r["n"]:
                lines.append(f"{g:<22} {PREDICTOR_NAMES[r['predictor']]:<16} {0:>4}   "
                             "n/a (blocks missing from the table)")
                continue
            lines.append(f"{g:<22} {PREDICTOR_NAMES[r['predictor']]:<16} {r['n']:>4} "
                         f"{r['rmse_ms']:>9.4f} {r['mape_pct']:>7.2f} {r['within5_pct']:>6.1f} "
                         f"{r['within10_pct']:>6.1f} {r['kendall_tau']:>9.3f}")
        return "\n".join([*lines, self.coverage()])

    def worse_than_macs(self) -> tuple[str, float, float] | None:
        """(group, full MAPE %, MACs-linear MAPE %) of the group of held-out networks where the
        full predictor loses most clearly to the MACs-linear baseline; None where it never does."""
        by = {(r["group"], r["predictor"]): r for r in self.rows if r["n"]}
        worst = None
        for (g, p), r in by.items():
            lin = by.get((g, "macs_linear"))
            if p != "full" or lin is None:
                continue
            f, m = float(r["mape_pct"]), float(lin["mape_pct"])
            if np.isfinite(f) and np.isfinite(m) and f > m and (worst is None or f - m > worst[1] - worst[2]):
                worst = (g, f, m)
        return worst

    def warning(self, device: str = "NAME") -> str | None:
        """One line when the full predictor is worse than MACs-linear on held-out networks,
        with what to do about it; None otherwise."""
        w = self.worse_than_macs()
        if w is None:
            return None
        g, f, m = w
        return (f"the full predictor is worse than MACs-linear on held-out networks ({g}: "
                f"{f:.1f} % vs {m:.1f} % MAPE): profile more networks (hwnas profile --device "
                f"{device} --networks N) or use --refine (hwnas profile --device {device} "
                "--refine 50)")

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` answer: folds, the metrics rows, coverage and the warning, if any."""
        return {"folds": self.folds, "rows": [dict(r) for r in self.rows],
                "n_train": dict(self.n_train), "coverage": self.coverage(),
                "unpredictable": dict(self.unpredictable),
                "worse_than_macs_linear": self.worse_than_macs() is not None}

    def predictions_csv(self) -> str:
        """One row per held-out network: arch, group, measured and each predictor (ms)."""
        return _csv(["arch", "group", "measured_ms", *(f"{p}_ms" for p in PREDICTORS)],
                    ([s, r["group"], f"{r['measured']:.6g}",
                      *(f"{r[p]:.6g}" if np.isfinite(r[p]) else "" for p in PREDICTORS)]
                     for s, r in self.predictions.items()))

    def to_csv(self) -> str:
        """One row per group and predictor: n and the metrics."""
        return _csv(["group", "predictor", *METRICS],
                    ([r["group"], r["predictor"], r["n"], *(f"{r[m]:.6g}" for m in METRICS[1:])]
                     for r in self.rows))


def _csv(header: list[str], rows: Iterable[list[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def evaluate(blocks: Mapping[str, float], networks: Mapping[str, float],
             groups: Mapping[str, str], test_groups: Sequence[str] | None = None,
             holdout_groups: Sequence[str] = ("baselines", "other"), folds: int = 5,
             random_state: int = 0, settings: Mapping[str, Any] | None = None) -> Evaluation:
    """Held-out accuracy of MACs-linear, LUT sum, block-model sum and the full predictor.

    Networks of ``holdout_groups`` are predicted by models trained on all other networks
    (they are never in training). The rest are split into ``folds`` (KFold, shuffled with
    ``random_state``); each fold is predicted by models trained on the other folds plus the
    holdout networks. Metrics are reported per group in ``test_groups`` (default: every
    group), and for all space networks together when there are several space groups.

    * MACs-linear: a least-squares line latency = a * MACs + b on the training networks;
    * LUT sum: the table's block latencies added up (n/a when a block is missing);
    * block-model sum: the block model's predictions added up (no table values);
    * full: :class:`LatencyPredictor` (block values + network model).
    """
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import KFold

    nets = {s: float(v) for s, v in networks.items()}
    archs = parse_archs(nets)
    # the block model on every block (blocks never involve the test networks)
    full_all = LatencyPredictor.from_settings(settings or {})._fit_blocks(blocks)
    bm = full_all.block_model_
    # networks the block model cannot cover (operators never measured) are not evaluated
    lo, hi = full_all.resolutions_[0], full_all.resolutions_[-1]
    covered = [s for s in nets if lo <= archs[s].resolution <= hi
               and not any(bm.uncovered(p) for p in arch_pieces(archs[s]))]
    if len(covered) < len(nets):
        log.info("%d network(s) need operators or resolutions the table never measured; "
                 "not evaluated", len(nets) - len(covered))
    unpredictable = {}
    for s in nets:
        if s not in covered and groups.get(s, "other") in OUT_OF_SPACE:
            a = archs[s]
            unpredictable[s] = (f"resolution {a.resolution} outside {lo}..{hi}"
                                if not lo <= a.resolution <= hi else next(
                                    w for p in arch_pieces(a) if (w := bm.uncovered(p))))
    grp = {s: groups.get(s, "other") for s in covered}
    hold = [s for s in covered if grp[s] in holdout_groups]
    cv = [s for s in covered if grp[s] not in holdout_groups]
    if len(cv) < max(folds, 2):
        raise HwnasError(f"too few networks for {folds}-fold evaluation: {len(cv)} "
                         f"(need at least {max(folds, 2)})")
    macs = {s: arch_costs(archs[s]).macs for s in covered}
    lut = {s: full_all.lut_sum(archs[s]) for s in covered}
    bsum = dict(zip(covered, full_all.block_sum([archs[s] for s in covered]), strict=True))
    pred: dict[str, dict[str, Any]] = {
        s: {"measured": nets[s], "group": grp[s], "lut_sum": np.nan if lut[s] is None else lut[s],
            "block_sum": float(bsum[s])} for s in covered}

    splits: list[tuple[list[str], list[str]]] = []
    kf = KFold(n_splits=folds, shuffle=True, random_state=random_state)
    for tr, te in kf.split(cv):
        splits.append(([cv[i] for i in tr] + hold, [cv[i] for i in te]))
    if hold:
        splits.append((cv, hold))
    n_train: dict[str, int] = {}
    for train, test in splits:
        model = LatencyPredictor.from_settings(settings or {})
        model.fit(blocks, {s: nets[s] for s in train})
        full = model.predict([archs[s] for s in test])
        lin = LinearRegression().fit(np.array([[macs[s]] for s in train], dtype=float),
                                     np.array([nets[s] for s in train]))
        ml = lin.predict(np.array([[macs[s]] for s in test], dtype=float))
        for s, f, m in zip(test, full, ml, strict=True):
            pred[s]["full"], pred[s]["macs_linear"] = float(f), float(m)
            n_train.setdefault(grp[s], len(model.networks_))

    names = sorted({grp[s] for s in covered}, key=lambda g: (g in holdout_groups, g))
    if test_groups is not None:
        names = [g for g in names if g in test_groups or g in holdout_groups]
    report: list[tuple[str, list[str]]] = [(g, [s for s in covered if grp[s] == g]) for g in names]
    space_groups = [g for g in names if g not in holdout_groups]
    if len(space_groups) > 1:
        report.insert(len(space_groups), ("all space networks",
                                          [s for s in covered if grp[s] in space_groups]))
    outside = [g for g in names if g in holdout_groups]
    if len(outside) > 1:  # the in-space and the out-of-space figure, side by side
        report.append(("all out-of-space", [s for s in covered if grp[s] in outside]))
    rows = []
    for g, members in report:
        yt = [pred[s]["measured"] for s in members]
        for name in PREDICTORS:
            rows.append({"group": g, "predictor": name,
                         **latency_metrics(yt, [pred[s][name] for s in members])})
    return Evaluation(rows, pred, folds, n_train, unpredictable, tuple(holdout_groups))


__all__ = ["METRICS", "OUT_OF_SPACE", "PREDICTORS", "PREDICTOR_NAMES", "Evaluation", "evaluate",
           "latency_metrics", "network_groups"]
