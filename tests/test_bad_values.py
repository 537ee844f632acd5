"""Numbers that are not measurements (issue 24, inputs that still broke hwnas): a 0 ms or
1e308 ms table entry, NaN or infinite protocol settings. Each is one line and exit 2, and
nothing is written."""

from __future__ import annotations

import json

import pytest
from conftest import assert_one_line_error

from hwnas.errors import HwnasError
from hwnas.profiling.lut import LatencyTable, Stats

GOOD = {"min_ms": 1.0, "p10_ms": 1.1, "median_ms": 1.2, "iqr_ms": 0.1, "n": 5}


@pytest.mark.parametrize("field,value,msg", [
    ("min_ms", 0.0, "0 ms is not a measurement"),
    ("median_ms", 1e308, r"finite numbers in \[0, 1e\+07\] ms"),
    ("p10_ms", float("inf"), "finite numbers"),
    ("iqr_ms", float("nan"), "finite numbers"),
    ("min_ms", -1.0, "finite numbers"),
])
def test_table_entries_that_are_not_measurements_are_refused(field, value, msg):
    assert Stats.from_dict(GOOD).min_ms == 1.0
    with pytest.raises(HwnasError, match=msg):
        Stats.from_dict({**GOOD, field: value}, "blocks.json: k")


def test_a_table_with_a_zero_entry_is_one_line(cli, home):
    LatencyTable("d", "min", {}, {"k": Stats(1.0, 1.0, 1.0, 0.0, 3)}).save()
    f = home / "latency_tables" / "d" / "blocks.json"
    doc = json.loads(f.read_text())
    doc["entries"]["k"]["min_ms"] = 0.0
    f.write_text(json.dumps(doc))
    before = f.read_bytes()
    assert_one_line_error(cli("lut", "show", "d"), "0 ms is not a measurement")
    assert f.read_bytes() == before


@pytest.mark.parametrize("opt,value", [("--min-time", "nan"), ("--min-time", "inf"),
                                       ("--sample-ms", "-inf"), ("--chunk-mb", "nan"),
                                       ("--min-time", "1e300")])
def test_non_finite_protocol_settings_are_refused(cli, home, opt, value):
    r = cli("profile", "--device", "d", "--space", "mobilenetv2", "-r", "96",
            "--bundle-only", home / "b", f"{opt}={value}")
    assert_one_line_error(r, "measurement protocol", opt.lstrip("-").replace("-", "_")[:8])
    assert not (home / "b").exists() and not (home / "latency_tables").exists()


def test_arch_specs_that_broke_hwnas(cli, home):
    import os

    from hwnas.arch import MAX_FILE_BYTES
    from hwnas.baselines import baseline, resolve_arch

    long = baseline("mbv2-1.0").to_string()
    long = long.replace("_h1280", "_k5e6c320s1_k3e6c320s1" * 6 + "_h1280")  # valid, > 255 chars
    assert len(long) > 255 and resolve_arch(long).to_string().startswith("r224")
    assert_one_line_error(cli("arch", "info", "r224" + "_x" * 200), "r224")
    assert_one_line_error(cli("arch", "info", "mbv2-0.5@١٦٠"), "must be an integer")
    (home / "d.yaml").mkdir()
    assert_one_line_error(cli("arch", "info", home / "d.yaml"), "is a directory")
    os.mkfifo(home / "f.yaml")
    assert_one_line_error(cli("arch", "info", home / "f.yaml"), "not a regular file")
    big = home / "big.yaml"
    big.write_text("blocks:\n" + "  - {kernel: 3, expand: 6, out: 24, stride: 1}\n" * 30000)
    assert big.stat().st_size > MAX_FILE_BYTES
    assert_one_line_error(cli("arch", "info", big), "too large")


@pytest.mark.parametrize("name", ["../../x", "/tmp/x", "a/b", "..", ".hidden", "x" * 101])
def test_a_space_name_that_makes_a_path_outside_its_folder_is_refused(cli, home, name):
    (home / "s.yaml").write_text(f"name: {json.dumps(name)}\nresolutions: [32]\n"
                                 "stem: {out: 8, kernel: 3, stride: 2}\nhead: null\n"
                                 "stages:\n  - {out: 8, stride: 1, depth: 1, kernel: [3], "
                                 "expand: [1]}\n")
    assert_one_line_error(cli("space", "show", home / "s.yaml"), "not a plain name")
    assert sorted(p.name for p in home.iterdir()) == ["s.yaml"]


@pytest.mark.parametrize("value", ["-1", str(2**70), "1.5", "x"])
def test_seeds_out_of_range_are_one_line(cli, home, value):
    """--seed -1 or 2^70 reached scikit-learn and died there with a traceback."""
    for cmd in (("arch", "sample", "mobilenetv2"), ("search", "--space", "mobilenetv2",
                                                    "--device", "d", "--name", "r")):
        r = cli(*cmd, f"--seed={value}")
        assert_one_line_error(r, "--seed", "--help")
    assert not (home / "runs").exists()


def test_huge_onnx_files_are_refused_before_they_are_read_or_copied(cli, home):
    from hwnas.io import MAX_ONNX_BYTES

    big = home / "big.onnx"
    with open(big, "wb") as f:  # sparse: no disk used
        f.truncate(MAX_ONNX_BYTES + 1)
    cli("device", "add", "d", "--target", "local")
    assert_one_line_error(cli("quantize", big, "-o", home / "q.onnx"), "too large")
    assert_one_line_error(cli("measure", big, "--device", "d", "--quick"), "too large")
    assert not (home / "q.onnx").exists()
    assert not (home / "runs").exists() or not list((home / "runs").rglob("*.onnx"))
    assert_one_line_error(cli("quantize", home, "-o", home / "q.onnx"), "is a directory")


def test_files_that_say_two_things_at_once_are_refused(cli, home):
    """A key given twice: YAML and JSON parsers keep the last one silently; hwnas refuses."""
    (home / "a.yaml").write_text("input: {resolution: 32, channels: 3}\n"
                                 "stem: {out: 8, kernel: 3, stride: 2, stride: 1}\n"
                                 "blocks: []\nhead: null\nclasses: 10\n")
    assert_one_line_error(cli("arch", "info", home / "a.yaml"), "given twice")
    (home / "a.json").write_text('{"input": {"resolution": 32, "resolution": 64}, '
                                 '"stem": {"out": 8}, "blocks": [], "head": null}')
    assert_one_line_error(cli("arch", "info", home / "a.json"), "given twice")
    cli("device", "add", "d", "--target", "local")
    LatencyTable("d", "min", {}, {"k": Stats(1.0, 1.0, 1.0, 0.0, 3)}).save()
    f = home / "latency_tables" / "d" / "blocks.json"
    text = f.read_text()
    f.write_text(text.replace('"kind":', '"schema": 1, "kind":', 1))
    before = f.read_bytes()
    assert_one_line_error(cli("lut", "show", "d"), "given twice")
    assert f.read_bytes() == before
    dev = home / "latency_tables" / "d" / "device.json"
    dev.write_text(dev.read_text().replace('"target":', '"threads": 4, "target":', 1))
    assert_one_line_error(cli("device", "check", "d"), "given twice")


@pytest.mark.parametrize("version,msg", [("99.0.0", "newer than this hwnas"),
                                         ("0.1.0x", None), ("not-a-version", "not a version")])
def test_a_run_written_by_a_newer_hwnas_is_refused(tmp_path, version, msg):
    from hwnas.runs import read_config

    f = tmp_path / "config.json"
    f.write_text(json.dumps({"versions": {"hwnas": version}}))
    if msg is None:
        assert read_config(f)["versions"]["hwnas"] == version
    else:
        with pytest.raises(HwnasError, match=msg):
            read_config(f)


def test_an_onnx_file_whose_metadata_disagrees_with_its_graph(cli, home):
    import onnx

    from hwnas.baselines import baseline

    cli("export", "mbv2-0.35@32", "-o", home / "m.onnx")
    r = cli("arch", "info", home / "m.onnx", check=0)
    assert baseline("mbv2-0.35", 32).to_string() in r.stdout
    m = onnx.load(str(home / "m.onnx"))
    for p in m.metadata_props:
        if p.key == "hwnas.arch":
            p.value = baseline("mbv2-0.5", 32).to_string()  # claims a bigger network
    onnx.save(m, str(home / "lie.onnx"))
    assert_one_line_error(cli("arch", "info", home / "lie.onnx"), "disagrees with itself")
