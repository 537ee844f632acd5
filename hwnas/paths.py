"""Where hwnas keeps things: search spaces, latency tables, runs.

``HWNAS_HOME`` (default: the current directory) holds ``latency_tables/`` and ``runs/``.
Search spaces are looked up in ``$HWNAS_HOME/search_spaces`` and then in the spaces
that ship with hwnas (the checkout's ``search_spaces/``).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def home() -> Path:
    return Path(os.environ.get("HWNAS_HOME") or Path.cwd())


def spaces_dirs() -> list[Path]:
    dirs = [home() / "search_spaces", PACKAGE_ROOT / "search_spaces"]
    out: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


def space_files() -> dict[str, Path]:
    """Every space file by name (``<name>.yaml``): ``$HWNAS_HOME/search_spaces`` first, so a
    file there hides a shipped one of the same name; sorted by name."""
    found: dict[str, Path] = {}
    for d in spaces_dirs():
        for f in sorted(d.glob("*.yaml")):
            found.setdefault(f.stem, f)
    return dict(sorted(found.items()))


def tables_dir() -> Path:
    return home() / "latency_tables"


def runs_dir() -> Path:
    return home() / "runs"


JOURNAL = "journal.log"  # a run folder's Optuna journal file (its default study storage)
DEMO_RESOLUTION = 96  # the resolution of the shipped tables and `hwnas demo`
REFERENCE_DEVICE = "x86_64-2core-ref"  # this development machine, shipped in latency_tables/
