"""The report's tables as booktabs LaTeX, ready to ``\\input`` in a paper (``hwnas view RUN
--latex``): the retrained winners and baselines and the Pareto front, written atomically to
``runs/RUN/tables/retrain.tex`` and ``pareto.tex``. Needs ``\\usepackage{booktabs}``.

The cells are the report's numbers with the units in the headers; the long arch strings stay
out (a LaTeX comment names the files that hold them)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import HwnasError
from ..io import atomic_write_text
from ..runs import config_score_column, load_run, retrain_labels
from .data import Measurement, as_retrained, finite, fmt, fmt_bytes, fmt_count
from .int8 import any_int8, marks_precision, point_precision
from .labels import score_label, seed_count

__all__ = ["TABLES_DIR", "booktabs", "pareto_latex", "retrain_latex", "tex_escape", "write_latex"]

TABLES_DIR = "tables"
_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_TEX_RE = re.compile("|".join(re.escape(k) for k in _TEX))


def tex_escape(s: Any) -> str:
    """Text with LaTeX's special characters escaped (``+-`` becomes ``$\\pm$``, ``>=``
    ``$\\geq$``)."""
    out = _TEX_RE.sub(lambda m: _TEX[m.group()], str(s))
    for a, b in (("+-", r"$\pm$"), (">=", r"$\geq$"), ("<=", r"$\leq$"), (">", r"$>$"),
                 ("<", r"$<$")):
        out = out.replace(a, b)
    return out


def booktabs(columns: Sequence[str], rows: Sequence[Sequence[str]], align: str, caption: str,
             label: str, comment: str = "") -> str:
    """A ``table`` float with a booktabs ``tabular`` (toprule, midrule, bottomrule); cells and
    headers are escaped here."""
    if len(align) != len(columns):
        raise ValueError(f"align {align!r} does not match {len(columns)} columns")
    lines = [f"% {line}" for line in comment.splitlines()] if comment else []
    lines += [r"\begin{table}[t]", r"\centering", rf"\caption{{{tex_escape(caption)}}}",
              rf"\label{{{label}}}", rf"\begin{{tabular}}{{{align}}}", r"\toprule",
              " & ".join(tex_escape(c) for c in columns) + r" \\", r"\midrule"]
    lines += [" & ".join(tex_escape(c) for c in row) + r" \\" for row in rows]
    if not rows:
        lines.append(rf"\multicolumn{{{len(columns)}}}{{c}}{{none}} \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def _acc(r: dict[str, Any]) -> str:
    m, s, n = finite(r.get("acc_mean")), finite(r.get("acc_std")), seed_count(r.get("seeds"))
    if m is None:
        return "-"
    if n == 1 or s is None:
        return f"{100 * m:.2f}"
    return f"{100 * m:.2f} +- {100 * s:.2f}"


def retrain_latex(retrain: Sequence[dict[str, Any]], measurement: Measurement | None = None,
                  label: str = "tab:retrain") -> str:
    """The retrained winners (W1... by measured latency) and baselines: test accuracy in %
    (mean +- std over seeds; one seed: the value alone, the caption says so), measured and
    predicted latency, the prediction's error, params and MACs."""
    labels = retrain_labels(retrain)
    rts = [(r, as_retrained(r, labels)) for r in retrain]
    rts.sort(key=lambda x: (x[1].kind != "winner", x[1].measured_ms or math.inf))
    stat = rts[0][1].statistic if rts else "?"
    rows = [[rt.label, rt.kind, _acc(r), fmt(rt.measured_ms, ".3f"), fmt(rt.predicted_ms, ".3f"),
             fmt(rt.error_pct, "+.1f"), fmt_count(r.get("params")), fmt_count(r.get("macs"))]
            for r, rt in rts]
    seeds = sorted({seed_count(r.get("seeds")) or 0 for r, _ in rts})
    if seeds == [1]:
        spread = "one seed per model (no spread)"
    elif 1 in seeds:
        spread = "mean +- std over seeds (a value alone: one seed)"
    else:
        spread = f"mean +- std over {'/'.join(str(s) for s in seeds if s) or '?'} seeds"
    cap = (f"Retrained winners (W1... by measured latency) and baselines, same recipe. Test "
           f"accuracy in %, {spread}. Latency on the device: the {stat} of the samples "
           "(the statistic the predictor predicts); error = (predicted - measured) / measured.")
    if measurement is not None:
        cap += f" Measured on {measurement.text()}."
    cols = ["Model", "Kind", "Accuracy (%)", f"Measured ({stat}, ms)", "Predicted (ms)",
            "Error (%)", "Params", "MACs"]
    if any_int8([rt for _, rt in rts]):  # hwnas retrain --int8: the quantized models beside
        cols[6:6] = ["Int8 acc. (%)", f"Int8 measured ({stat}, ms)", "Int8 speed-up"]
        for row, (_, rt) in zip(rows, rts, strict=True):
            q = rt.int8
            row[6:6] = ["-", "-", "-"] if q is None else [
                fmt(None if q.accuracy is None else 100 * q.accuracy, ".2f"),
                fmt(q.measured_ms, ".3f"), fmt(q.speedup, ".2f", "x")]
        cap += (" Int8: the seed-0 model quantized (static QDQ), its test accuracy with "
                "onnxruntime and its latency measured on the device in the same run; speed-up = "
                "fp32 measured / int8 measured.")
    comment = "needs \\usepackage{booktabs}; arch strings: retrain.csv, column arch"
    return booktabs(cols, rows, "ll" + "r" * (len(cols) - 2), cap, label, comment)


def pareto_latex(pareto: Sequence[dict[str, Any]], config: dict[str, Any],
                 label: str = "tab:pareto") -> str:
    """The Pareto front as the search saw it: one row per arch, the search's score named for
    its estimator (a NASWOT score is not an accuracy)."""
    score, column = score_label(config), config_score_column(config)
    mark = marks_precision(pareto, config)  # --precision int8|search: each row's precision
    rows = [[str(r.get("trial", "")), *([point_precision(r, config)] if mark else []),
             fmt(r.get(column)), fmt(r.get("latency_ms"), ".3f"),
             fmt_count(r.get("params")), fmt_count(r.get("macs")),
             fmt_bytes(r.get("memory_bytes")).replace(" MiB", "")] for r in pareto]
    n = len({r.get("arch") for r in pareto})
    cap = (f"Pareto front of the search ({n} distinct archs; feasible non-dominated over "
           f"{', '.join(config.get('objectives') or []) or '?'}): {score} and latency predicted "
           f"for device {config.get('device', '?')}, space {config.get('space', '?')} at "
           f"{config.get('resolution', '?')} px.")
    comment = "needs \\usepackage{booktabs}; arch files: winners/ (pareto.csv, column file)"
    cols = ["Trial", *(["Precision"] if mark else []), score[0].upper() + score[1:],
            "Latency (predicted, ms)", "Params", "MACs", "Peak act. (MiB)"]
    return booktabs(cols, rows, "r" + ("l" if mark else "") + "rrrrr", cap, label, comment)


def write_latex(run: str | Path, measurement: Measurement | None = None) -> list[Path]:
    """Write ``runs/RUN/tables/retrain.tex`` (when the run was retrained) and ``pareto.tex``
    atomically; returns their paths."""
    r = load_run(run)
    out = r.path / TABLES_DIR
    texts = {}
    retrain = r.retrain()
    if retrain is not None:
        texts["retrain.tex"] = retrain_latex(retrain, measurement)
    texts["pareto.tex"] = pareto_latex(r.pareto, r.config)
    paths = []
    for name, text in texts.items():
        try:
            paths.append(atomic_write_text(out / name, text))
        except OSError as e:
            raise HwnasError(f"cannot write {out / name}: {e.strerror or e}") from None
    return paths
