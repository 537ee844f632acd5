"""hwnas compare: the Pareto fronts of several runs on one offline page."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)

_DESCRIPTION = """\
Draw the Pareto fronts of several runs on one self-contained HTML page (plotly's JavaScript
inside; it opens without network): e.g. fp32 vs int8, zero-cost vs supernet, two devices.

The fronts share one latency axis (each run's latency predicted for its own device). The
scores of different accuracy estimators are different quantities, so each estimator gets
its own panel; runs with retrain results also appear in a last panel at their trained test
accuracy and measured latency, which compare across runs. A table lists each run's device,
space, estimator (its score column: naswot_score, val_acc, supernet_val_acc, ...), data,
precision, sampler, seed, budget (latency budget, max params), trials asked for, complete
trials, distinct archs and front; the same lines are printed. Runs searched over
different objectives are refused (their fronts answer different questions).
"""

_EPILOG = """\
examples:
  hwnas compare naswot supernet            # runs/compare/naswot--supernet.html
  hwnas compare pi5-run x86-run -o fronts.html --open
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="the Pareto fronts of several runs on one offline page",
                       description=_DESCRIPTION, epilog=_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN", help="run names (runs/RUN) or run folders")
    p.add_argument("-o", "--output", metavar="FILE.html",
                   help="write the page here [runs/compare/RUN1--RUN2.html]")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args) -> int:
    from ..report.compare import write_compare

    path, d = write_compare(args.runs, args.output)
    for n in d.notes:
        log.warning("%s", n)
    for c in d.runs:
        su = c.setup
        print(f"  {c.name}: {c.aspects['score']} ({c.column}), sampler {su.get('sampler')}, "
              f"seed {su.get('seed')}, budget {su.get('budget')}, {su.get('trials')} trials asked, "
              f"{c.n_complete} complete, front {len(c.front_x)}")
    print(f"{path}  ({len(d.runs)} runs: "
          + ", ".join(f"{c.name} front {len(c.front_x)}" for c in d.runs)
          + f"; {path.stat().st_size / 2**20:.1f} MiB)")
    if args.open:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())
    return 0
