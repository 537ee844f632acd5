"""hwnas view: the offline HTML report of a run."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)

_DESCRIPTION = """\
Write runs/RUN/report.html: one self-contained page (plotly's JavaScript is inside the file;
it opens without network) with

  - the trials in objective space (predicted latency x estimated accuracy): the Pareto front
    highlighted, infeasible trials grey, the latency budget as a line, and the retrained
    winners and baselines with an arrow from predicted to measured latency;
  - the latency predictor's parity plot (predicted vs measured, +-10 % band) over the
    device's whole-network measurements and the re-measured winners;
  - the latency predictor ablation of the device (MACs-linear, LUT sum, block-model sum,
    full predictor: held-out MAPE and Kendall tau; predictor_eval.csv of `hwnas predictor
    eval` when current, else computed);
  - the hypervolume history (normalised objectives, reference point 1.1);
  - tables of the retrained winners and baselines and of the Pareto front.

The search's score is named for its estimator (a NASWOT score is not an accuracy). --latex
also writes the two tables as booktabs LaTeX into runs/RUN/tables/.

A train-predict-search loop run (hwnas search --accuracy predictor --train-budget K) gets a
page of tables: its rounds (how each chose its archs, how many it trained, the
cross-validated Kendall tau of the predictor that chose them), the front of the trained
archs (their val_acc or table_acc x predicted latency) and the predictor's front over every
candidate.

Every caption says how latency was measured (device, CPU, threads, onnxruntime version,
statistic, protocol). Whatever the run does not have yet (trials, retrain results, a
device table) is named in one line and left out; the report shows what exists.
"""

_EPILOG = """\
examples:
  hwnas view first                      # runs/first/report.html
  hwnas view first --open               # ... and open it in the default browser
  hwnas view first --serve 8000         # serve runs/first/ at http://127.0.0.1:8000/report.html
  hwnas view first --images pdf,png     # also runs/first/figures/*.pdf|png (needs kaleido)
  hwnas view first --latex              # also runs/first/tables/retrain.tex, pareto.tex
  hwnas compare fp32 int8               # the fronts of several runs on one page
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("view", help="write the run's offline HTML report (Pareto front viewer)",
                       description=_DESCRIPTION, epilog=_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", metavar="RUN", help="run name (runs/RUN) or a run folder")
    p.add_argument("-o", "--output", metavar="FILE.html",
                   help="write the report here instead of runs/RUN/report.html")
    p.add_argument("--open", action="store_true", help="open the report in the default browser")
    p.add_argument("--serve", type=int, metavar="PORT",
                   help="serve the run folder on http://127.0.0.1:PORT/ until Ctrl-C "
                   "(0: any free port; the URL is printed)")
    p.add_argument("--images", default="", metavar="FORMATS",
                   help="also export the figures as png, svg and/or pdf into runs/RUN/figures/ "
                   "(comma list; PNG at scale 2, twice the pixels, for papers; needs the optional kaleido package and a Chrome/Chromium, "
                   "skipped with one line saying what to install)")
    p.add_argument("--latex", action="store_true",
                   help="also write the retrain and Pareto-front tables as booktabs LaTeX: "
                   "runs/RUN/tables/retrain.tex, pareto.tex (\\usepackage{booktabs})")
    p.add_argument("--no-predictor", dest="predictor", action="store_false",
                   help="do not load the device's latency predictor (parity plot from the "
                   "retrained models only; faster)")
    p.set_defaults(func=cmd_view)


def _formats(text: str) -> list[str]:
    from ..errors import HwnasError
    from ..report import IMAGE_FORMATS

    fmts = list(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    for f in fmts:
        if f not in IMAGE_FORMATS:
            raise HwnasError(f"--images '{text}': formats are {', '.join(IMAGE_FORMATS)}")
    return fmts


def cmd_view(args) -> int:
    from ..report import write_report

    fmts = _formats(args.images)
    if args.serve is not None and not 0 <= args.serve < 65536:
        from ..errors import HwnasError

        raise HwnasError(f"--serve {args.serve}: a port is 1-65535 (0: any free port)")
    loop = _loop_folder(args.run)
    if loop is not None:
        return _view_loop(args, loop)
    res = write_report(args.run, args.output, images=fmts, predictor=args.predictor)
    for n in res.data.notes:
        log.warning("%s", n)
    d = res.data
    print(f"{res.path}  ({d.n_complete} complete trials, Pareto front {d.n_front}, "
          f"{len(d.objective.retrained)} retrained models; {res.path.stat().st_size / 2**20:.1f} MiB)")
    for p in res.images:
        print(p)
    if args.latex:
        from ..report import write_latex

        for p in write_latex(res.data.run_dir, res.data.measurement):
            print(p)
        if not res.data.has_retrain:
            log.warning("no retrain results: wrote only the Pareto-front table")
    if args.serve is not None:
        return serve(res.path, args.serve, args.open, extra=res.images)
    if args.open:
        import webbrowser

        webbrowser.open(res.path.resolve().as_uri())
    return 0


def _loop_folder(run):
    """The folder of a train-predict-search loop run (loop.json, no config.json), or None."""
    from pathlib import Path

    from ..report.loop import is_loop_folder
    from ..runs import runs_dir

    for p in (Path(run), runs_dir() / str(run)):
        if is_loop_folder(p):
            return p
    return None


def _view_loop(args, folder) -> int:
    from ..report.loop import WHAT, write_loop_report

    res = write_loop_report(folder, args.output)
    for n in res.notes:
        log.warning("%s", n)
    if args.images or args.latex:
        log.warning("--images/--latex: not written for a loop run (its page has tables only)")
    print(f"{res.path}  ({WHAT}: {res.rounds} rounds, {res.trained} trained, front {res.front})")
    if args.serve is not None:
        return serve(res.path, args.serve, args.open)
    if args.open:
        import webbrowser

        webbrowser.open(res.path.resolve().as_uri())
    return 0


def report_handler(report, extra=()):
    """A request handler that serves the report and the files written beside it (images)
    and nothing else: no directory listing, no config.json or journal.log, no file whose
    real path leaves the run folder (a symlink out of it)."""
    import functools
    import http.server
    from pathlib import Path
    from urllib.parse import unquote, urlsplit

    root = Path(report).parent.resolve()
    allowed = {}
    for f in (report, *extra):
        real = Path(f).resolve()
        if real.is_file() and real.parent == root:
            allowed["/" + real.name] = real

    class Handler(http.server.SimpleHTTPRequestHandler):
        def send_head(self):
            path = unquote(urlsplit(self.path).path)
            if path == "/":
                self.send_response(302)
                self.send_header("Location", "/" + Path(report).name)
                self.end_headers()
                return None
            real = allowed.get(path)
            # checked again now: a file swapped for a symlink after the start is refused
            if real is None or Path(root / path.lstrip("/")).resolve() != real:
                self.send_error(404, "not part of the report")
                return None
            return super().send_head()

        def list_directory(self, path):
            self.send_error(404, "no listing")
            return None

        def log_message(self, fmt, *args):  # quiet: one line per request is noise here
            pass

    return functools.partial(Handler, directory=str(root))


def serve(report, port: int, open_browser: bool = False, extra=()) -> int:
    """Serve the report (and the images beside it) on 127.0.0.1:``port`` until Ctrl-C."""
    import http.server

    from ..errors import HwnasError

    handler = report_handler(report, extra)
    try:
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as e:
        raise HwnasError(f"cannot serve on 127.0.0.1:{port}: {e.strerror or e}") from None
    url = f"http://127.0.0.1:{httpd.server_address[1]}/{report.name}"
    print(f"serving {report.parent} at {url}  (Ctrl-C stops)", flush=True)
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0
