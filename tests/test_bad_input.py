"""Bad input, as a hostile user would try it, through the command line in a subprocess.

Every case (issue 16's table, and what already held) asserts three things: exit 2; exactly
one line on stderr, no traceback; and every file that existed in HWNAS_HOME before is
byte-identical afterwards. The cases fail before torch is imported (a second or two each).
The crash cases (kill -9 or an error in a seed trial, disk full during a search, a runner
that loses its host) are in test_search_crashes.py and test_devices.py: each checks that
nothing is lost and nothing repeated after the rerun.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import assert_one_line_error, tiny_space

from hwnas.runs import PARETO_COLUMNS, TRIAL_COLUMNS, csv_text

ARCH = "r32c3_s8k3s2r6_k3e1c8s1_k3e3c16s2_h32hs_n10"
SMALL = {"input": {"resolution": 32}, "stem": {"out": 8},
         "blocks": [{"kernel": 3, "expand": 1, "out": 8}]}


# ---- what the cases find in HWNAS_HOME -----------------------------------------------------

def write(home: Path, rel: str, data: str | bytes) -> Path:
    p = home / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return p


def arch_file(**patch) -> str:
    d = json.loads(json.dumps(SMALL))
    for k, v in patch.items():
        d[k] = {**d[k], **v} if isinstance(v, dict) else v
    return json.dumps(d)


def run_folder(home: Path, trials: dict | None = None, pareto: dict | None = None,
               config: str | bytes | None = None) -> None:
    """runs/r: a search run of the tiny space with one complete trial, made by hand."""
    metrics = {"accuracy": 0.5, "latency_ms": 1.25, "params": 2226, "macs": 210752,
               "memory_bytes": 32768}
    t = {"number": 0, "state": "COMPLETE", "seed": "", "arch": ARCH, **metrics, "feasible": True}
    p = {"trial": 0, "arch": ARCH, **metrics, "seed": "", "file": f"winners/{ARCH}.yaml"}
    cfg = {"identity": {}, "space": "tiny", "device": "stub", "resolution": 32, "classes": 10,
           "objectives": ["accuracy", "latency"], "study_name": "r", "storage": None}
    write(home, "search_spaces/tiny.yaml", tiny_space())
    write(home, "runs/r/config.json", json.dumps(cfg) if config is None else config)
    write(home, "runs/r/trials.csv", csv_text([{**t, **(trials or {})}], TRIAL_COLUMNS))
    write(home, "runs/r/pareto.csv", csv_text([{**p, **(pareto or {})}], PARETO_COLUMNS))


def device_table(home: Path, predictor: str | bytes | None = None,
                 says: dict[str, str] | None = None) -> None:
    """Device 'd': an (empty) latency table, and a predictor.json if given; ``says``: the
    device field of a file, if not 'd' (``{"blocks.json": "pi"}``: copied from pi's folder)."""
    head = {"schema": 1, "kind": "hwnas-lut", "device": "d", "statistic": "min",
            "provenance": {}, "entries": {}}
    for f in ("blocks.json", "networks.json"):
        write(home, f"latency_tables/d/{f}", json.dumps({**head, "device": (says or {}).get(f, "d")}))
    if predictor is not None:
        write(home, "latency_tables/d/predictor.json", predictor)


def predictor_json(**block_model) -> str:
    return json.dumps({"schema": 1, "kind": "hwnas-predictor", "device": "d",
                       "settings": {"block_model": block_model}})


def device_json(home: Path, data: str | bytes) -> None:
    write(home, "latency_tables/d/device.json", data)


# ---- the cases ------------------------------------------------------------------------------



def _search(*extra: str, name: str = "r", resolution: str = "32") -> tuple[str, ...]:
    return ("search", "--space", "tiny", "--device", "stub", "--name", name, "--resolution",
            resolution, *extra)


def _space(home: Path) -> None:
    write(home, "search_spaces/tiny.yaml", tiny_space())


def _journal(home: Path) -> None:
    _space(home)
    write(home, "runs/r/config.json", json.dumps({"study_name": "r"}))
    write(home, "runs/r/journal.log", bytes(range(256)) * 20 + b"\n{\"op_c")


Setup = Callable[[Path], None] | None
CASES: list[tuple[str, Setup, tuple[str, ...], tuple[str, ...]]] = [
    # -- issue 16's table
    ("arch out 100000000", lambda h: write(h, "a.json", arch_file(stem={"out": 100_000_000})),
     ("arch", "info", "a.json"), ("stem.out", "above the limit")),
    ("arch resolution 10000", lambda h: write(h, "a.json", arch_file(input={"resolution": 10_000})),
     ("arch", "info", "a.json"), ("input.resolution", "above the limit")),
    ("export resolution 10000",
     lambda h: write(h, "a.json", arch_file(input={"resolution": 10_000})),
     ("export", "a.json", "-o", "a.onnx"), ("above the limit",)),
    ("baseline at 10000 px", None, ("arch", "info", "mbv2-0.5@10000"), ("above the limit",)),
    ("model memory above the limit",
     lambda h: write(h, "a.json", arch_file(input={"resolution": 3000}, stem={"out": 256})),
     ("arch", "info", "a.json"), ("needs about", "--max-memory-gb")),
    ("a string of 10^8 blocks", None,
     ("arch", "info", "r64c3_s16k3s2r6_k3e1c16s1x100000000_h0_n10"), ("more than 256 blocks",)),
    ("predictor.json max_iter 1e9", lambda h: device_table(h, predictor_json(max_iter=10**9)),
     ("predict", "mbv2-0.35@32", "--device", "d"), ("predictor.json", "block_model.max_iter")),
    ("predictor.json learning_rate fast",
     lambda h: device_table(h, predictor_json(learning_rate="fast")),
     ("predict", "mbv2-0.35@32", "--device", "d"), ("predictor.json", "learning_rate")),
    ("predictor.json unknown setting", lambda h: device_table(h, predictor_json(trees=3)),
     ("predict", "mbv2-0.35@32", "--device", "d"), ("predictor.json", "'trees'")),
    ("predictor.json not UTF-8", lambda h: device_table(h, b"\xff\xfe{\x00"),
     ("predict", "mbv2-0.35@32", "--device", "d"), ("predictor.json",)),
    ("--predictor file binary", lambda h: write(h, "p.json", bytes(range(256))),
     ("predict", "mbv2-0.35@32", "--device", "d", "--predictor", "p.json"), ("p.json",)),
    ("another device's blocks.json, then predict",
     lambda h: device_table(h, says={"blocks.json": "pi"}),
     ("predict", "mbv2-0.35@32", "--device", "d"), ("blocks.json", "device 'pi'", "device 'd'")),
    ("another device's networks.json, then predict",
     lambda h: device_table(h, says={"networks.json": "pi"}),
     ("predict", "mbv2-0.35@32", "--device", "d"), ("networks.json", "device 'pi'", "'d'")),
    ("another device's blocks.json, then profile",
     lambda h: (_space(h), device_table(h, says={"blocks.json": "pi"}),
                device_json(h, '{"target": "local", "threads": 1}')),
     ("profile", "--device", "d", "--space", "tiny", "--resolution", "32", "--quick"),
     ("blocks.json", "device 'pi'", "--replace")),
    ("binary arch file", lambda h: write(h, "a.yaml", bytes(range(256)) * 4),
     ("arch", "info", "a.yaml"), ("a.yaml", "not a text file")),
    ("arch file nested 10^5 deep", lambda h: write(h, "a.yaml", "[" * 100_000),
     ("arch", "info", "a.yaml"), ("a.yaml", "not valid YAML")),
    ("trials.csv garbage number", lambda h: run_folder(h, trials={"number": "zero"}),
     ("view", "r"), ("trials.csv", "line 2", "number")),
    ("trials.csv infinite latency", lambda h: run_folder(h, trials={"latency_ms": "inf"}),
     ("view", "r"), ("trials.csv", "latency_ms", "finite")),
    ("trials.csv complete without metrics", lambda h: run_folder(h, trials={"accuracy": ""}),
     ("view", "r"), ("trials.csv", "without its metrics")),
    ("pareto.csv non-numeric", lambda h: run_folder(h, pareto={"latency_ms": "fast"}),
     ("view", "r"), ("pareto.csv", "latency_ms")),
    ("pareto.csv params 1e400", lambda h: run_folder(h, pareto={"params": "1e400"}),
     ("retrain", "r"), ("pareto.csv", "params")),
    ("pareto.csv file outside winners/", lambda h: run_folder(h, pareto={"file": "/etc/passwd"}),
     ("retrain", "r"), ("pareto.csv", "winners/")),
    ("trials.csv not UTF-8", lambda h: (run_folder(h), write(h, "runs/r/trials.csv", b"\xff\xfe")),
     ("view", "r"), ("trials.csv",)),
    ("config.json not UTF-8", lambda h: run_folder(h, config=b'{"space": "\xff"}'),
     ("view", "r"), ("config.json",)),
    ("config.json [1]", lambda h: run_folder(h, config="[1]"), ("view", "r"), ("config.json",)),
    ("config.json resolution text", lambda h: run_folder(h, config='{"resolution": "32"}'),
     ("view", "r"), ("config.json", "resolution")),
    ("config.json [1] before search", lambda h: run_folder(h, config="[1]"), _search(),
     ("config.json",)),
    ("garbage journal.log before search", _journal, _search(), ("journal.log", "not an Optuna")),
    ("run name with a newline", _space, _search(name="nl\n"), ("run name",)),
    ("run name with a slash", _space, _search(name="../x"), ("run name",)),
    ("device name with a newline", None, ("device", "add", "nl\n", "--target", "local"),
     ("bad device name",)),
    ("device target with a newline", None, ("device", "add", "x", "--target", "ssh://h\n"),
     ("bad device target",)),
    ("search --resolution 0", _space, _search(resolution="0"), ("--resolution", "positive")),
    ("search --resolution -32", _space, _search(resolution="-32"), ("--resolution",)),
    ("search --resolution outside the space", _space, _search(resolution="4096"),
     ("--resolution 4096", "outside")),
    ("device.json threads 10^9", lambda h: device_json(h, '{"target": "local", "threads": 1e9}'),
     ("device", "check", "d"), ("device.json", "threads")),
    ("device.json threads huge int",
     lambda h: device_json(h, '{"target": "local", "threads": 1000000000}'),
     ("device", "check", "d"), ("device.json", "threads")),
    ("device.json binary", lambda h: device_json(h, b"\x00\xff" * 64),
     ("device", "check", "d"), ("device.json",)),
    ("device.json [1]", lambda h: device_json(h, "[1]"), ("device", "check", "d"),
     ("device.json", "not a device file")),
    ("--max-memory-gb -1", None, ("--max-memory-gb", "-1", "arch", "info", "mbv2-0.5"),
     ("--max-memory-gb",)),
    # -- what already held
    ("missing arch file", None, ("arch", "info", "nope.yaml"), ("no such arch file",)),
    ("bad arch string", None, ("arch", "info", "r32c3_garbage_x_h0_n10"), ("canonical",)),
    ("unknown space", None, ("space", "show", "nospace"), ("unknown space 'nospace'",)),
    ("malformed space YAML", lambda h: write(h, "s.yaml", "name: [unclosed\n"),
     ("space", "show", "s.yaml"), ("s.yaml", "not valid YAML")),
    ("space beyond the limits", lambda h: write(h, "s.yaml", tiny_space().replace(
        "out: 16, stride: 2", "out: 100000000, stride: 2")), ("space", "show", "s.yaml"),
     ("s.yaml", "above the limit")),
    ("bad device name", None, ("device", "add", "../up", "--target", "local"),
     ("bad device name",)),
    ("bad device port", None, ("device", "add", "x", "--target", "ssh://pi@h:70000"), ("port",)),
    ("unknown device", None, ("device", "check", "ghost"), ("unknown device 'ghost'",)),
    ("predict without a table", None, ("predict", "mbv2-0.35@32", "--device", "nod"),
     ("no latency table",)),
    ("view of no run", None, ("view", "nope"), ("run 'nope' not found",)),
    ("unknown objective", _space, _search("--objectives", "accuracy,speed"),
     ("unknown objective 'speed'",)),
    ("a million search workers", _space, _search("--workers", "1000000"), ("--workers",)),
    ("a billion sampled archs", None, ("arch", "sample", "mobilenetv2", "-n", "1000000000"),
     ("-n",)),
]


def snapshot(home: Path) -> dict[str, str]:
    return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(home.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("setup, args, fragments", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_changes_no_file(cli, home, setup, args, fragments):
    if setup:
        setup(home)
    before = snapshot(home)
    r = cli(*args, timeout=120)
    assert_one_line_error(r, *fragments)
    after = snapshot(home)
    assert {k: after.get(k) for k in before} == before  # every existing file byte-identical


def test_profile_replace_moves_another_devices_table_aside(cli, home):
    """The way out the refusal names: --replace profiles afresh and keeps the copied-in file."""
    _space(home)
    device_table(home, says={"blocks.json": "pi"})
    device_json(home, '{"target": "local", "threads": 1}')
    d = home / "latency_tables" / "d"
    copied = (d / "blocks.json").read_bytes()
    cli("profile", "--device", "d", "--space", "tiny", "--resolution", "32", "--networks", "1",
        "--quick", "--replace", check=0)
    assert json.loads((d / "blocks.json").read_text())["device"] == "d"
    assert [p.read_bytes() for p in d.glob("blocks.json.bak-*")] == [copied]
    assert "blocks:" in cli("lut", "show", "d", check=0).stdout


def test_the_memory_limit_is_raised_or_lowered_with_the_flag_or_the_variable(cli, home):
    """A space whose largest Arch needs ~5 GB (counted, never allocated: space show builds
    nothing): refused at the default 4 GB, shown with --max-memory-gb 8 or the variable."""
    write(home, "s.yaml", tiny_space().replace("resolutions: [32]", "resolutions: [3000]")
          .replace("stem: {out: 8,", "stem: {out: 256,"))
    assert_one_line_error(cli("space", "show", "s.yaml"), "needs about", "--max-memory-gb")
    assert "distinct blocks" in cli("--max-memory-gb", "8", "space", "show", "s.yaml",
                                    check=0).stdout
    env = {"HWNAS_HOME": str(home), "HWNAS_MAX_MEMORY_GB": "8"}
    assert "distinct blocks" in cli("space", "show", "s.yaml", env=env, check=0).stdout
    env["HWNAS_MAX_MEMORY_GB"] = "abc"
    assert_one_line_error(cli("space", "show", "s.yaml", env=env), "HWNAS_MAX_MEMORY_GB")
    # lowered: MobileNetV2-0.35 at 32 px needs more than 1 MB
    assert_one_line_error(cli("--max-memory-gb", "0.001", "arch", "info", "mbv2-0.35@32"),
                          "needs about", "0.001 GB")


DISK_FULL = """
import errno, os, sys
def full(*a, **k):
    raise OSError(errno.{err}, os.strerror(errno.{err}){filename})
{patch} = full
from hwnas.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _patched(home: Path, patch: str, err: str, *args: str, filename: str = ""):
    code = DISK_FULL.format(err=err, patch=patch, filename=f", {filename!r}" if filename else "")
    return subprocess.run([sys.executable, "-c", code, *args], cwd=home, capture_output=True,
                          text=True, timeout=120, env={**__import__("os").environ,
                                                       "HWNAS_HOME": str(home)})


def test_disk_full_from_our_writer_or_a_library_is_one_line_other_errors_stay_visible(cli, home):
    cli("device", "add", "x", "--target", "local", check=0)
    before = snapshot(home)
    # our atomic writer (device add): the old device.json stays whole
    r = _patched(home, "os.fsync", "ENOSPC", "device", "add", "x", "--target", "local",
                 "--threads", "2")
    assert_one_line_error(r, "device.json", "No space left on device")
    # an OSError from a library's own write (as Optuna appending to a journal)
    r = _patched(home, "import hwnas.profiling.hosts; hwnas.profiling.hosts.save_device", "EDQUOT", "device", "add",
                 "y", "--target", "local", filename="somewhere/journal.log")
    assert_one_line_error(r, "somewhere/journal.log", "quota")
    assert snapshot(home) == before
    # any other OSError may be a bug: it is not hidden
    r = _patched(home, "import hwnas.profiling.hosts; hwnas.profiling.hosts.save_device", "EIO", "device", "add",
                 "y", "--target", "local")
    assert r.returncode == 1 and "Traceback" in r.stderr
