"""hwnas profile --precision fp32,int8 on a tiny space: int8 entries in the same table,
keyed by precision, calibration in the provenance; an fp32 table still loads unchanged."""

import json

import onnx
import pytest
from conftest import assert_one_line_error

from hwnas.arch import Arch
from hwnas.errors import HwnasError
from hwnas.profiling.lut import LatencyTable, Stats


@pytest.fixture
def dev(ref_device):
    return ref_device


def test_fp32_table_loads_unchanged_and_int8_queries_say_how(home):
    t = LatencyTable("d")
    s = Stats(1.0, 1.0, 1.0, 0.0, 3)
    t.add_blocks({"cls_h1_i8_o10": s})
    t.save()
    doc = json.loads((home / "latency_tables" / "d" / "blocks.json").read_text())
    assert list(doc["entries"]) == ["cls_h1_i8_o10"] and "precision" not in doc["entries"]["cls_h1_i8_o10"]
    t = LatencyTable.load("d")
    assert t.blocks == {"cls_h1_i8_o10": s} and not t.has_precision("int8")
    with pytest.raises(HwnasError, match="--precision fp32,int8"):
        t.view("int8")
    t.add_blocks({"cls_h1_i8_o10@int8": Stats(0.5, 0.5, 0.5, 0.0, 3)})
    t.save()
    t = LatencyTable.load("d")
    assert t.blocks == {"cls_h1_i8_o10": s}  # fp32 untouched
    v = t.view("int8")
    assert v.block_ms("cls_h1_i8_o10") == 0.5 and t.has("cls_h1_i8_o10@int8", "block")
    assert not t.has("cls_h1_i8_o11@int8", "block")


def test_profile_int8(cli, home, tiny_in_home, dev):
    r = cli("profile", "--device", dev, "--space", "tiny", "-r", "32", "--networks", "2",
            "--precision", "fp32,int8", "--quick", check=0)
    assert "added" in r.stdout
    t = LatencyTable.load(dev)
    keys = {p.key for p in tiny_in_home.pieces(32)}
    v = t.view("int8")
    assert set(t.blocks) == set(v.blocks) == keys
    assert set(t.networks) == set(v.networks) and len(v.networks) == 2
    for a in v.networks:
        assert v.lut_sum(Arch.from_string(a)) > 0
    doc = json.loads((home / "latency_tables" / dev / "blocks.json").read_text())
    int8 = {k: e for k, e in doc["entries"].items() if k.endswith("@int8")}
    assert len(int8) == len(keys) and all(e["precision"] == "int8" for e in int8.values())
    q = doc["provenance"]["quantization"]
    assert q["format"] == "QDQ" and q["networks"]["source"] == "random"
    assert "int8: blocks" in cli("lut", "show", dev, check=0).stdout
    # again: nothing to measure; another calibration source is refused before measuring
    r = cli("profile", "--device", dev, "--space", "tiny", "-r", "32", "--networks", "2",
            "--precision", "int8", "--quick", check=0)
    assert "added 0 blocks and 0 networks" in r.stdout
    r = cli("profile", "--device", dev, "--space", "tiny", "-r", "32", "--networks", "3",
            "--precision", "int8", "--data", "digits", "--quick")
    assert_one_line_error(r, "calibration", "random")
    assert LatencyTable.load(dev).view("int8").networks == v.networks


def test_int8_bundle_models_are_qdq(cli, home, tiny_in_home, tmp_path):
    out = tmp_path / "b"
    cli("profile", "--device", "x", "--space", "tiny", "-r", "32", "--networks", "1",
        "--precision", "int8", "--bundle-only", out, check=0)
    man = json.loads((out / "manifest.json").read_text())
    ents = man["entries"]
    assert ents and all(e["id"].endswith("@int8") and e["weights"] == "included" for e in ents)
    for e in ents[:3]:
        m = onnx.load(str(out / e["file"]))
        assert any(n.op_type == "QuantizeLinear" for n in m.graph.node)


def test_dot_product_flags_and_device_check(cli):
    from hwnas.onboard.bench import dot_product_flags

    pi5 = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes crc32 atomics fphp asimdhp asimdrdm lrcpc dcpop asimddp\n"
    pi4 = "processor\t: 0\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
    x86 = "flags\t\t: fpu sse avx2 avx512f avx512_vnni\n"
    assert dot_product_flags(pi5) == ["asimddp"] and dot_product_flags(pi4) == []
    assert dot_product_flags(x86) == ["avx512_vnni"]
    cli("device", "add", "loc", "--target", "local", check=0)
    out = cli("device", "check", "loc", check=0).stdout
    line = next(x for x in out.splitlines() if x.startswith("int8 dot product"))
    assert ("yes" in line) == bool(dot_product_flags())
