"""The package's shape: ``import hwnas`` is cheap and lazy, old import paths still work, the
analytical costs agree with torch's counts, and the arch layer knows nothing above it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import ROOT


def _python(code: str) -> subprocess.CompletedProcess:
    """``python -c CODE`` in a fresh interpreter, this checkout first on the path."""
    path = os.pathsep.join(x for x in (str(ROOT), os.environ.get("PYTHONPATH")) if x)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=path), timeout=300)


def test_import_hwnas_is_torch_free_and_lazy():
    r = _python(
        "import hwnas, sys\n"
        "assert 'torch' not in sys.modules\n"
        "assert 'sklearn' not in sys.modules and 'hwnas.predictor' not in sys.modules\n"
        "import hwnas.arch, hwnas.costs, hwnas.context\n"
        "assert 'hwnas.baselines' not in sys.modules  # arch.py does not depend on baselines\n"
        "from hwnas import LatencyPredictor\n"
        "import hwnas.predictor\n"
        "assert LatencyPredictor is hwnas.predictor.LatencyPredictor\n"
        "assert 'torch' not in sys.modules  # the predictor predicts without torch\n"
        "assert isinstance(hwnas.__version__, str) and hwnas.__version__\n"
        "assert set(hwnas.__all__) <= set(dir(hwnas))\n"
        "try:\n"
        "    hwnas.no_such_name\n"
        "except AttributeError as e:\n"
        "    assert 'no_such_name' in str(e)\n"
        "else:\n"
        "    raise SystemExit('no AttributeError')\n")
    assert r.returncode == 0, r.stderr


def test_lazy_names_are_the_library_calls():
    import hwnas
    from hwnas.report import write_report
    from hwnas.retrain.run import run_retrain
    from hwnas.search import load_run, run_search

    assert (hwnas.run_search, hwnas.run_retrain, hwnas.write_report, hwnas.load_run) == (
        run_search, run_retrain, write_report, load_run)


def test_predictor_package_names_give_the_same_objects():
    """(hwnas.keys and hwnas.devices, the old names of pieces and hosts, are gone: issue 23.)"""
    import hwnas.costs
    import hwnas.predictor

    assert hwnas.predictor.piece_costs is hwnas.costs.piece_costs
    for name in hwnas.predictor.__all__:
        assert getattr(hwnas.predictor, name) is not None
    # the function, not its submodule of the same name (hwnas.predictor.evaluate in the README)
    assert hwnas.predictor.evaluate is sys.modules["hwnas.predictor.evaluate"].evaluate


@pytest.mark.parametrize("name", ["mbv2-0.35", "mbv3-small"])
def test_analytical_arch_costs_equal_torch_counts(name):
    from hwnas.baselines import baseline
    from hwnas.costs import arch_costs
    from hwnas.model import arch_costs as torch_costs

    a = baseline(name, 64, 10)
    c = arch_costs(a)
    assert c == torch_costs(a)
    params, macs, peak = c  # a tuple, as the search unpacks it
    assert params > 0 and macs > 0 and peak > 0


# ---- the import graph ----------------------------------------------------------------------

#: import loops that stay, as (importer, imported) edges whose removal leaves hwnas acyclic;
#: each is an import inside a function, for the reason given
ALLOWED_BACK_EDGES = {
    ("hwnas.arch", "hwnas.costs"):
        "an Arch checks its memory when it is validated (check_memory), counted by the one op "
        "counting, which is defined over Arch and its pieces",
    ("hwnas.supernet.store", "hwnas.supernet.net"):
        "load_supernet builds the SuperNet it loads; the net checks a space with the store's "
        "check_space, which training runs before a store folder is made",
    ("hwnas.profiling.quantize", "hwnas.profiling.bundle"):
        "a bundle writes its int8 entries with export_quantized, which chains a network's "
        "pieces with bundle.compose_network",
    ("hwnas.context", "hwnas.predictor"):
        "Device.predictor() fits and caches the device's predictor, whose store reads Devices",
}


def _import_graph() -> dict[str, dict[str, int]]:
    """{module: {imported hwnas module: line}} over hwnas/, imports inside functions included
    and ``if TYPE_CHECKING:`` blocks left out; importing ``hwnas.a.b`` from outside ``hwnas.a``
    also runs (imports) ``hwnas.a``. The root package (lazy names only) is no node."""
    import ast

    pkg = ROOT / "hwnas"
    mods = {}
    for p in pkg.rglob("*.py"):
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if is_pkg else parts)] = (p, is_pkg)
    graph: dict[str, dict[str, int]] = {}
    for mod, (p, is_pkg) in mods.items():
        if mod == "hwnas" or mod.endswith("__main__"):
            continue
        tree = ast.parse(p.read_text())
        typing_only = {id(x) for n in ast.walk(tree)
                       if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)
                       for b in n.body for x in ast.walk(b)}
        out = graph.setdefault(mod, {})
        for n in ast.walk(tree):
            if id(n) in typing_only:
                continue
            if isinstance(n, ast.Import):
                targets = [a.name for a in n.names]
            elif isinstance(n, ast.ImportFrom):
                base = n.module or ""
                if n.level:
                    here = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = ".".join(here[: len(here) - n.level + 1] + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                           for a in n.names]
            else:
                continue
            for t in targets:
                while t not in mods and "." in t:
                    t = t.rsplit(".", 1)[0]
                if t in (mod, "hwnas") or not t.startswith("hwnas."):
                    continue
                out.setdefault(t, n.lineno)
                parent = t.rsplit(".", 1)[0]
                if parent not in ("hwnas", mod) and not mod.startswith(parent + "."):
                    out.setdefault(parent, n.lineno)
    return graph


def _cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One import cycle of ``graph`` (modules in order), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        stack.append(v)
        for w in sorted(graph.get(v, {})):
            if state.get(w) == 1:
                return stack[stack.index(w):] + [w]
            if w not in state and (c := visit(w)):
                return c
        stack.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state and (c := visit(v)):
            return c
    return None


def test_no_import_loops_but_the_listed_ones():
    graph = _import_graph()
    for (a, b), why in ALLOWED_BACK_EDGES.items():
        assert b in graph.get(a, {}), f"allowed loop edge {a} -> {b} is gone: drop it ({why})"
        closes = {k: dict(v) for k, v in graph.items()}
        del closes[a][b]
        # still part of a loop? then it is needed; else the allowance is stale
        reach, todo = set(), [b]
        while todo:
            for w in closes.get(todo.pop(), {}):
                if w not in reach:
                    reach.add(w)
                    todo.append(w)
        assert a in reach, f"{a} -> {b} no longer closes a loop: drop it from the list"
    for a, b in ALLOWED_BACK_EDGES:
        graph[a].pop(b, None)
    c = _cycle(graph)
    assert c is None, "import loop: " + " -> ".join(
        f"{m} (line {graph[m][c[i + 1]]})" if i + 1 < len(c) else m for i, m in enumerate(c))


#: "file: name" of private names still imported from another module, and why
PRIVATE_ALLOWED = {
}


def test_no_private_name_imported_across_modules():
    import ast

    bad = []
    for p in sorted((ROOT / "hwnas").rglob("*.py")):
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, ast.ImportFrom) and (n.level or (n.module or "").startswith("hwnas")):
                bad += [f"{p.relative_to(ROOT)}: {a.name}" for a in n.names
                        if a.name.startswith("_") and not a.name.startswith("__")]
    bad = [b for b in bad if b not in PRIVATE_ALLOWED]
    assert not bad, "private names imported from another module:\n" + "\n".join(bad)



def test_no_module_over_650_lines():
    """Issue 23's rule: a module that grows past 650 lines splits along its seams."""
    long = {str(p.relative_to(ROOT)): n for p in sorted((ROOT / "hwnas").rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > 650}
    assert not long, f"modules over 650 lines: {long}"
