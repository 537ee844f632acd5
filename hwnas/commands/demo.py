"""hwnas demo: the whole pipeline on an embedded default, on this machine."""

from __future__ import annotations

import argparse

from .options import add_data

_DESCRIPTION = """\
Run the whole pipeline on this machine with built-in settings and write an HTML report:

  1. device   this machine as a local device: the shipped reference table
              (latency_tables/x86_64-2core-ref) if it was measured on a machine like this
              one and its sentinel networks, timed here, run within +-8 % of it (drift);
              else a fresh device named for this machine (<arch>-<cores>core-<cpu hash>)
  2. profile  the demo space's blocks and sampled networks with onnxruntime (1 thread;
              only what the device's table lacks)
  3. fit      the latency predictor (its held-out error is printed)
  4. search   NSGA-II, zero-cost accuracy proxy (NASWOT) on the bundled digits dataset,
              latency budget = the space's median predicted latency
  5. retrain  the top winners and a MobileNetV2 x0.35 baseline on digits, re-measured on
              this machine
  6. report   runs/demo/report.html (see hwnas view)

Default: space mobilenetv2 at 96 px with the dataset's 10 classes, 60 profiled networks,
300 trials, 3 winners + 1 baseline, 2 epochs x 2 seeds (about 6 minutes on 2 cores with the
reference table; 2-3 more when this machine's blocks must be profiled); run 'demo'.
--quick: a small built-in space (written to search_spaces/demo-quick.yaml) at 32 px, quick
measurement protocol, 30 networks, 100 trials, 2 winners + 1 baseline, 1 epoch (about a
minute); run 'demo-quick'. Running the same command again resumes and finishes what is missing.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole pipeline on this machine, one command",
                       description=_DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="small space, 32 px, quick protocol, 100 trials, 1 epoch (~1 minute)")
    p.add_argument("--open", action="store_true", help="open the report in the default browser")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    add_data(p, "dataset: digits (default, bundled), fashion-mnist (apt-get install "
             "dataset-fashion-mnist), ... (see 'hwnas train --help'); other than digits, the run "
             "is demo-<data> and retrains on 5,000 training images", default="digits")
    from .profile import drift_args

    drift_args(p, sentinels=False)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> None:
    from ..demo import run_demo
    from .profile import drift_settings

    res = run_demo(quick=args.quick, progress=not args.quiet, drift=drift_settings(args),
                   data=args.data)
    print(res.summary())
    if args.open:
        import webbrowser

        webbrowser.open(res.report.resolve().as_uri())
