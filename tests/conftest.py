import os
import subprocess
import sys
from pathlib import Path

import pytest

# pg_url / pg_db: a private PostgreSQL server (tests/pg.py); ssh_server: a real OpenSSH
# server (tests/sshd.py)
pytest_plugins = ["pg", "sshd"]

ROOT = Path(__file__).resolve().parent.parent
SPACES = Path(__file__).resolve().parent / "spaces"


def space_yaml(kind: str = "tiny", name: str | None = None) -> str:
    """The YAML of the test space tests/spaces/KIND.yaml (its leading comment dropped), named
    ``name`` (default: the file's own name)."""
    lines = (SPACES / f"{kind}.yaml").read_text().splitlines(keepends=True)
    while lines[0].startswith("#"):
        lines.pop(0)
    assert lines[0].startswith("name: "), kind
    if name is not None:
        lines[0] = f"name: {name}\n"
    return "".join(lines)


def tiny_space(name: str = "tiny") -> str:
    """The tiny space (tests/spaces/tiny.yaml: 12 distinct blocks at 32 px, 12 networks,
    profiled in seconds), as YAML named ``name``."""
    return space_yaml("tiny", name)


def put_space(home: Path, kind: str = "tiny", name: str = "tiny") -> Path:
    """Write tests/spaces/KIND.yaml as ``home``/search_spaces/NAME.yaml (what ``--space NAME``
    finds in HWNAS_HOME); returns its path."""
    d = home / "search_spaces"
    d.mkdir(parents=True, exist_ok=True)
    p = d / f"{name}.yaml"
    p.write_text(space_yaml(kind, name))
    return p


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty HWNAS_HOME (latency_tables/, runs/) for one test."""
    monkeypatch.setenv("HWNAS_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def tiny_in_home(home):
    """The tiny space (:func:`tiny_space`) written to HWNAS_HOME/search_spaces and loaded."""
    put_space(home)
    from hwnas.space import load_space

    return load_space("tiny")


@pytest.fixture
def ref_device(tiny_in_home):
    """A local device 'ref' (1 thread) beside the tiny space: the device.json that
    ``hwnas device add ref --target local --threads 1`` writes, without a process for it."""
    from hwnas.profiling.hosts import DeviceConfig, save_device

    save_device(DeviceConfig(name="ref", target="local", threads=1).validate())
    return "ref"


@pytest.fixture(scope="module")
def one_thread():
    """torch on one thread for a module (``pytestmark = pytest.mark.usefixtures("one_thread")``):
    small tensors on a shared 2-core machine run 10x faster on one thread than on two."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def retrain_env(tmp_path_factory):
    """(home, env) of tests/test_retrain.py's make_env: the tiny space, device 'ref' profiled,
    search run 'tr'; made once for test_deploy (which retrains 'tr' itself), test_retrain and
    test_distributed_retrain (whose tests copy the search results of 'tr' to runs of their
    own)."""
    from test_retrain import make_env

    return make_env(tmp_path_factory, "retrain_home")


def run_cli(*args, env=None, cwd=None, timeout=600, check=None):
    """Run ``python -m hwnas ARGS`` in a fresh process; returns CompletedProcess."""
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run([sys.executable, "-m", "hwnas", *map(str, args)], capture_output=True,
                       text=True, env=e, cwd=cwd, timeout=timeout)
    if check is not None:
        assert r.returncode == check, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


@pytest.fixture
def cli(home):
    def _run(*args, **kw):
        kw.setdefault("env", {"HWNAS_HOME": str(home)})
        kw.setdefault("cwd", home)
        return run_cli(*args, **kw)

    return _run


def assert_one_line_error(r, *fragments):
    """Bad input: exit 2, one line on stderr that says what is wrong, no traceback."""
    assert r.returncode == 2, f"exit {r.returncode}: {r.stderr}"
    lines = [x for x in r.stderr.strip().splitlines() if x.strip()]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])


def default_sigint() -> None:
    """``preexec_fn`` for a child a test stops with SIGINT (as Ctrl-C): a shell that runs the
    suite in the background (``cmd &``, nohup, some CI runners) starts it with SIGINT
    ignored, which children inherit and Python then never turns into KeyboardInterrupt."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def synthetic_table(space_name: str, device: str, resolution: int = 32) -> str:
    """Save a synthetic latency table for ``device``: every piece of the space at
    ``resolution`` (ms from its MACs and ops) and 30 sampled whole networks (1.1 x their
    pieces' sum + 0.3 ms), enough for LatencyPredictor.for_device; returns the device name.
    The caller sets HWNAS_HOME (the ``home``/``env`` fixtures)."""
    import random

    from hwnas.pieces import arch_pieces
    from hwnas.predictor import piece_costs
    from hwnas.profiling.lut import LatencyTable, Stats
    from hwnas.space import load_space

    def ms(p):
        c = piece_costs(p)
        return 0.004 + 2e-6 * c.macs + 0.002 * c.ops

    sp = load_space(space_name)
    rng, nets = random.Random(0), {}
    while len(nets) < 30:
        a = sp.arch_from_params(sp.sample_params(rng), resolution)
        nets[a.to_string()] = 1.1 * sum(ms(p) for p in arch_pieces(a)) + 0.3

    def st(v):
        return Stats(v, v * 1.01, v * 1.02, v * 0.01, 20)

    prov = {"onnxruntime": "0.0.1", "threads": 1, "cpu_model": "synthetic", "machine": "x86_64"}
    LatencyTable(device, "min", prov, {p.key: st(ms(p)) for p in sp.pieces(resolution)},
                 {k: st(v) for k, v in nets.items()}).save()
    return device
