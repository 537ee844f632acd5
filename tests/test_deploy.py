"""hwnas retrain --from-supernet: winners deployed with the supernet's weights (extracted as a
plain Net, BatchNorm recalibrated, optionally fine-tuned), measured with the baselines, and
one-line refusals of a supernet that does not fit."""

import csv
import json
import shutil

import pytest
import torch
from conftest import assert_one_line_error
from test_retrain import FAST, _cli

from hwnas.errors import HwnasError


@pytest.fixture(scope="module")
def env(retrain_env):
    """The retrain tests' home (conftest retrain_env: tiny space, device 'ref', run 'tr') plus
    a 1-epoch supernet of the same space on digits at 32 px; (home, environment, supernet id).
    These tests retrain 'tr' itself; test_retrain and test_distributed_retrain only read its
    search results (they retrain copies)."""
    home, e = retrain_env
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HWNAS_HOME", str(home))
        from hwnas.data import load_dataset
        from hwnas.space import load_space
        from hwnas.supernet import SupernetRecipe, train_supernet

        r = train_supernet(load_space("tiny"), load_dataset("digits", 32), "digits", 32,
                           SupernetRecipe(epochs=1, subset=320, threads=1), seed=0,
                           progress=False)
    return home, e, r.store.id


def _rows(home, run="tr"):
    with open(home / "runs" / run / "retrain.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_extracted_net_computes_what_the_supernet_subnet_computes(env, monkeypatch):
    """The deployed model is a plain hwnas Net whose outputs equal the supernet's subnet
    forward (eval mode, same recalibrated BatchNorm statistics) to 1e-5."""
    home, _, sid = env
    monkeypatch.setenv("HWNAS_HOME", str(home))
    from hwnas.data import load_dataset
    from hwnas.model import Net
    from hwnas.retrain.deploy import BN_IMAGES, extract_subnet, open_source
    from hwnas.runs import load_run
    from hwnas.train import recalibrate_bn

    data = load_dataset("digits", 32)
    src = open_source(sid, load_run("tr").config, "digits", 32, data)
    x = data.minibatch(64, resolution=32).contiguous(memory_format=torch.channels_last)
    rng = torch.Generator().manual_seed(3)
    for arch in [src.net.largest(32), src.net.smallest(32), *(src.net.sample(rng, 32)
                                                               for _ in range(3))]:
        net = extract_subnet(src, arch, data, seed=0)
        assert type(net) is Net and not net.training
        src.net.set_active(arch)
        recalibrate_bn(src.net, data, BN_IMAGES, 32, 0)
        with torch.no_grad():
            want, got = src.net.eval()(x), net(x)
        assert torch.allclose(got, want, atol=1e-5, rtol=1e-5), (got - want).abs().max()


@pytest.mark.slow
def test_winners_deployed_from_the_supernet_are_measured_with_the_baselines(env):
    home, e, sid = env
    r = _cli((home, e), "tr", *FAST, "--from-supernet", sid, check=0)
    rows = {x["name"]: x for x in _rows(home)}
    assert {x["weights"] for x in rows.values() if x["kind"] == "winner"} == {"supernet"}
    assert rows["mbv2-0.35"]["weights"] == "stand-alone"
    for x in rows.values():
        assert float(x["train_s"]) > 0 and float(x["measured_median_ms"]) > 0
        assert (home / "runs" / "tr" / x["onnx"]).is_file()
        assert int(x["epochs"]) == (0 if x["kind"] == "winner" else 1)
    meta = json.loads((home / "runs" / "tr" / "retrain.json").read_text())
    assert meta["supernet"]["id"] == sid and meta["supernet"]["chosen"] == "given"
    assert "supernet" in r.stdout  # the printed table's weights column
    # the accuracy line says each side's epochs (it said the first row's for all)
    assert "1 epoch stand-alone, 0 fine-tune epochs from the supernet, one recipe" in r.stdout
    # the stand-alone results are untouched by a deployment of the same winner (own folders)
    folders = {p.name for p in (home / "runs" / "tr" / "retrain").glob("*/*") if p.is_dir()}
    assert any("@sn-" in f for f in folders)


@pytest.mark.slow
def test_finetune_with_distillation_and_baselines_from_supernet(env):
    home, e, sid = env
    r = _cli((home, e), "tr", *FAST, "--from-supernet", sid, "--finetune-epochs", "1",
             "--distill", "--baselines-from-supernet", check=0)
    rows = _rows(home)
    assert {x["weights"] for x in rows if x["kind"] == "winner"} == {"supernet+1"}
    assert [x["weights"] for x in rows if x["kind"] == "baseline"] == ["stand-alone"]
    assert "baseline mbv2-0.35 is not held by supernet" in r.stderr
    res = [json.loads(p.read_text()) for p in
           (home / "runs" / "tr" / "retrain").glob("*/*@sn-*-ft1-kd/seed0.json")]
    assert res and all(x["distill"] and x["finetune_epochs"] == 1 for x in res)


def test_bad_supernets_are_refused_in_one_line_before_training(env, tmp_path):
    home, e, sid = env
    sn = home / "runs" / "supernets"
    r = _cli((home, e), "tr", *FAST, "--from-supernet", "nope")
    assert_one_line_error(r, "no supernet 'nope'")
    # another resolution: a copy whose meta says 16 px
    other = sn / "tiny-digits-r16-copy"
    shutil.copytree(sn / sid, other)
    m = json.loads((other / "meta.json").read_text())
    m.update(id=other.name, resolution=16)
    (other / "meta.json").write_text(json.dumps(m))
    r = _cli((home, e), "tr", *FAST, "--from-supernet", other.name)
    assert_one_line_error(r, "resolution 16 (not 32)")
    # a truncated checkpoint
    bad = sn / "tiny-digits-r32-truncated"
    shutil.copytree(sn / sid, bad)
    m = json.loads((bad / "meta.json").read_text())
    m["id"] = bad.name
    (bad / "meta.json").write_text(json.dumps(m))
    ck = bad / "checkpoint.pt"
    ck.write_bytes(ck.read_bytes()[: ck.stat().st_size // 2])
    before = sorted(p.name for p in (home / "runs" / "tr").rglob("*"))
    r = _cli((home, e), "tr", *FAST, "--from-supernet", bad.name)
    assert_one_line_error(r, "checkpoint.pt")
    assert sorted(p.name for p in (home / "runs" / "tr").rglob("*")) == before  # nothing touched
    shutil.rmtree(other)
    shutil.rmtree(bad)
    r = _cli((home, e), "tr", *FAST, "--distill")
    assert_one_line_error(r, "go with --from-supernet")


def test_a_winner_outside_the_supernet_is_refused_naming_it(env, monkeypatch):
    from dataclasses import replace

    home, _, sid = env
    monkeypatch.setenv("HWNAS_HOME", str(home))
    from hwnas.data import load_dataset
    from hwnas.retrain.deploy import assign, open_source
    from hwnas.retrain.run import Model
    from hwnas.runs import load_run

    src = open_source(sid, load_run("tr").config, "digits", 32, load_dataset("digits", 32))
    a = src.net.largest(32)
    wide = replace(a, blocks=[*a.blocks[:-1], replace(a.blocks[-1], out=24)])
    with pytest.raises(HwnasError, match="winner w1 is not a subnet of supernet .*out 24"):
        assign(src, [Model("w1", "winner", wide)], False)
