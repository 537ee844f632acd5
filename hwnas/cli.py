"""`hwnas ...`: thin subcommands over the library; one place turns known errors into one line.

Each module in :mod:`hwnas.commands` registers its subcommands with ``register(sub)``,
where ``sub`` is the argparse sub-parser collection; handlers take the parsed args and
return an exit status (None = 0). Heavy imports (torch, optuna) happen inside handlers so
that ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import pkgutil
import sys

from . import commands
from .errors import HwnasError

log = logging.getLogger("hwnas")
#: libraries whose loggers stay at WARNING (kaleido/choreographer start Chrome for image export)
THIRD_PARTY = ("kaleido", "choreographer", "urllib3", "asyncio", "matplotlib", "PIL")
_ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


def _version() -> str:
    import hwnas

    return hwnas.__version__


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line naming the fix (``--help``), exit 2: the
    same shape as every other bad-input message of hwnas."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="hwnas",
        description="Hardware-aware NAS for edge devices: profile a board, learn a latency "
        "predictor, search a MobileNet-like space, retrain and re-measure the winners, view.",
    )
    loud = p.add_mutually_exclusive_group()
    loud.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    loud.add_argument("-q", "--quiet", action="store_true", dest="log_quiet",
                      help="warnings and errors only (results still print); before the command "
                      "(after it, some commands' own -q hides their progress bar)")
    p.add_argument("--version", action="version", version=f"hwnas {_version()}")
    p.add_argument("--max-memory-gb", type=float, metavar="GB",
                   help="the memory one model may need (weights + activations at batch 1, "
                   "checked before it is built; default 4, or HWNAS_MAX_MEMORY_GB)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for m in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        mod = importlib.import_module(f"{commands.__name__}.{m.name}")
        if hasattr(mod, "register"):  # options.py holds shared argument types, no command
            mod.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        rc = _main(argv)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's final flush
        return rc
    except BrokenPipeError:
        # the reader went away (`hwnas ... | head`): not an error. Point stdout at devnull so
        # that the interpreter's final flush does not raise again (Python docs, "Note on SIGPIPE")
        import os

        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.log_quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    for name in THIRD_PARTY:  # their INFO lines are not ours to print, even with -v
        logging.getLogger(name).setLevel(logging.WARNING)
    if args.max_memory_gb is not None:
        import math
        import os

        from .arch import MAX_MEMORY_ENV

        if not (math.isfinite(args.max_memory_gb) and args.max_memory_gb > 0):
            print(f"hwnas: error: --max-memory-gb must be a positive number of GB, got "
                  f"{args.max_memory_gb:g}", file=sys.stderr)
            return 2
        os.environ[MAX_MEMORY_ENV] = repr(args.max_memory_gb)  # also for worker processes
    try:
        rc = args.func(args)
    except HwnasError as e:
        print(f"hwnas: error: {' '.join(str(e).split(chr(10)))}", file=sys.stderr)  # one line
        return e.exit_code
    except OSError as e:
        # the machine, not the program: a full disk or quota, a read-only file system (also from
        # a library's own writes, e.g. Optuna appending to the journal); other OSErrors stay
        # tracebacks (they may be bugs)
        if e.errno not in _ENVIRONMENT_ERRNOS:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"hwnas: error: {where}{e.strerror or e} (finished work is kept; make room and run "
              "the same command again)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hwnas: interrupted (finished work is kept; run the same command again to resume)",
              file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
