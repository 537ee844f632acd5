"""The weight-sharing supernet: slicing equals a stand-alone Net, arch mapping, training and
resume, the 'supernet' estimator, torch devices, and one-line refusals of bad input."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch
from conftest import assert_one_line_error, tiny_space

from hwnas.accuracy import make_estimator
from hwnas.arch import parse_string
from hwnas.data import load_dataset
from hwnas.errors import HwnasError
from hwnas.model import Net
from hwnas.space import load_space
from hwnas.supernet import (
    SuperNet,
    SupernetRecipe,
    assign_blocks,
    open_store,
    subnet_accuracy,
    supernet_id,
    train_supernet,
)
from hwnas.train import resolve_torch_device

FAST = SupernetRecipe(epochs=1, subset=320, threads=1)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    """A copy of the tiny space's YAML outside HWNAS_HOME (for --space PATH / space=PATH)."""
    p = tmp_path_factory.mktemp("space") / "tiny.yaml"
    p.write_text(tiny_space())
    return p


@pytest.fixture(scope="module")
def tiny_loaded(tiny_path):
    """The tiny space loaded from tiny_path, once for the module."""
    return load_space(tiny_path)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", 32)


@pytest.fixture(scope="module")
def trained(tiny_loaded, digits, tmp_path_factory):
    """(home, result) of a 1-epoch tiny supernet on digits at 32 px."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HWNAS_HOME", str(home))
        r = train_supernet(tiny_loaded, digits, "digits", 32, FAST, seed=0, progress=False)
    return home, r


def _randomise(net):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        for name, b in net.named_buffers():
            if name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
            elif name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.2)
    return net.eval()


def _sliced_net(sn: SuperNet, arch) -> Net:
    """A Net of ``arch`` given the supernet's weights by plain indexing (independent of the
    supernet's own slicing code): first channels, centre of the kernel."""
    sd, net = sn.state_dict(), Net(arch).eval()
    out = {}
    for k in net.stem.state_dict():
        out[f"stem.{k}"] = sd[f"stem.{k}"]

    def bn(dst, src, c):
        for f in ("weight", "bias", "running_mean", "running_var"):
            out[f"{dst}.{f}"] = sd[f"{src}.bn.{f}"][:c]
        out[f"{dst}.num_batches_tracked"] = sd[f"{src}.bn.num_batches_tracked"]

    for i, ((_, _, cin, b), (j, layer)) in enumerate(zip(arch.stages(), assign_blocks(sn.space, arch),
                                                         strict=True)):
        p, q = f"stages.{j}.{layer}.", f"blocks.{i}."
        hidden, sq = b.hidden(cin), b.se_channels(cin)
        if b.expand != 1:
            out[q + "expand.0.weight"] = sd[p + "expand.conv.weight"][:hidden, :cin]
            bn(q + "expand.1", p + "expand_bn", hidden)
        w = sd[p + "dw.conv.weight"]
        c = (w.shape[-1] - b.kernel) // 2
        out[q + "dw.0.weight"] = w[:hidden, :, c:c + b.kernel, c:c + b.kernel]
        bn(q + "dw.1", p + "dw_bn", hidden)
        if sq:
            out[q + "se.reduce.weight"] = sd[p + "se.reduce.weight"][:sq, :hidden]
            out[q + "se.reduce.bias"] = sd[p + "se.reduce.bias"][:sq]
            out[q + "se.expand.weight"] = sd[p + "se.expand.weight"][:hidden, :sq]
            out[q + "se.expand.bias"] = sd[p + "se.expand.bias"][:hidden]
        out[q + "project.0.weight"] = sd[p + "project.conv.weight"][:b.out, :hidden]
        bn(q + "project.1", p + "project_bn", b.out)
    _, c = arch.final_size()
    if arch.head is not None:
        out["head.0.weight"] = sd["head.conv.weight"][:, :c]
        for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            out[f"head.1.{k}"] = sd[f"head_bn.{k}"]
        c = arch.head.out
    out["classifier.fc.weight"] = sd["classifier.linear.weight"][:, :c]
    out["classifier.fc.bias"] = sd["classifier.linear.bias"]
    net.load_state_dict({k: v.clone() for k, v in out.items()}, strict=True)
    return net


# ---- the subnet is a Net ---------------------------------------------------------------------------

@pytest.mark.parametrize("space_name", ["tiny", "mobilenetv3", "mobilenetv3-cifar"])
def test_a_subnet_computes_exactly_what_a_standalone_net_with_the_sliced_weights_computes(
        space_name, tiny_loaded):
    """Also the MobileNetV3 spaces' SE (hard-sigmoid gate) and hswish choices per stage, at
    ImageNet-like and small-input (stride-1 stem) layouts."""
    space = tiny_loaded if space_name == "tiny" else load_space(space_name)
    torch.manual_seed(0)
    sn = _randomise(SuperNet(space, 10, 3))
    x = torch.randn(3, 3, 32, 32)
    rng = random.Random(0)
    archs = [sn.largest(32), sn.smallest(32)] + [sn.sample(rng, 32) for _ in range(6)]
    assert len({a.to_string() for a in archs}) >= 4
    for a in archs:
        sn.set_active(a)
        with torch.no_grad():
            y = sn(x)
            y_net = _sliced_net(sn, a)(x)
            y_ext = sn.extract(a)(x)
        assert y.shape == (3, 10)
        assert torch.allclose(y, y_net, rtol=1e-5, atol=1e-5 * y.abs().max().item()), a.to_string()
        assert torch.equal(y_ext, y_net)
    # the subnets really differ (the weights are shared, the outputs are not)
    sn.set_active(archs[0])
    y0 = sn(x)
    sn.set_active(archs[1])
    assert not torch.allclose(y0, sn(x))


def test_elastic_kernel_is_the_centre_or_ofa_transform(tiny_loaded):
    a = tiny_loaded.arch_from_params({"s2_l0": "k3e3", "s2_l1": "k5e3"}, 32)
    a = replace(a, classes=10)
    sn = _randomise(SuperNet(tiny_loaded, 10))
    net = sn.extract(a)
    big = sn.stages[1][0].dw.conv.weight
    hidden = a.blocks[1].hidden(a.blocks[0].out)
    assert torch.equal(net.blocks[1].dw[0].weight, big[:hidden, :, 1:4, 1:4])
    # Once-for-All's transform: identity at the start (= the crop), a learned map after
    st = _randomise(SuperNet(tiny_loaded, 10, kernel_transform=True))
    m = st.stages[1][0].dw.transform_5to3
    with torch.no_grad():
        m.copy_(torch.eye(9))
        crop = st.extract(a).blocks[1].dw[0].weight.clone()
        c = st.stages[1][0].dw.conv.weight[:hidden, :, 1:4, 1:4]
        assert torch.equal(crop, c)
        m.copy_(torch.randn(9, 9))
        x = torch.randn(2, 3, 32, 32)
        st.set_active(a)
        y = st(x)
        net_t = st.extract(a)
        assert not torch.equal(net_t.blocks[1].dw[0].weight, crop)
        assert torch.allclose(y, net_t(x), rtol=1e-5, atol=1e-5 * y.abs().max().item())


def test_bn_recalibration_reaches_only_the_active_channels(tiny_loaded, digits):
    sn = _randomise(SuperNet(tiny_loaded, 10))
    small = sn.smallest(32)
    before = sn.stages[1][0].dw_bn.bn.running_mean.clone()
    val = digits.split_validation(0.2, 0)
    subnet_accuracy(sn, small, val, 200, 0, 32)
    after = sn.stages[1][0].dw_bn.bn.running_mean
    h = small.blocks[1].hidden(small.blocks[0].out)
    assert not torch.equal(before[:h], after[:h]) and torch.equal(before[h:], after[h:])
    # an exact average over the images: the same as a stand-alone Net recalibrated alike
    from hwnas.train import recalibrate_bn

    net = sn.extract(small)
    sn2 = _randomise(SuperNet(tiny_loaded, 10))
    net2 = sn2.extract(small)
    recalibrate_bn(net2, val, 200, 32, 0)
    assert torch.allclose(net.blocks[1].dw[1].running_var, net2.blocks[1].dw[1].running_var,
                          rtol=1e-4)


# ---- mapping an Arch onto the supernet ---------------------------------------------------------

def test_every_sampled_arch_maps_and_outside_archs_are_refused_naming_the_block(tiny_loaded):
    mbv2 = load_space("mobilenetv2")
    for space in (tiny_loaded, mbv2):
        sn = SuperNet(space, 10)
        for a in [sn.largest(), sn.smallest()] + [sn.sample(random.Random(s)) for s in range(40)]:
            sn.set_active(a)
            assert sum(sn._depth) == len(a.blocks)
            assert all(lo <= d <= hi for d, (lo, hi) in
                       zip(sn._depth, [s.depth for s in space.stages], strict=True))
    sn = SuperNet(tiny_loaded, 10)
    base = sn.largest(32)
    sn.set_active(base.with_resolution(16))  # the resolution is free
    wider = replace(base, blocks=base.blocks[:1] + tuple(replace(b, out=24) for b in base.blocks[1:]))
    deeper = replace(base, blocks=base.blocks + (base.blocks[-1],))
    kernel = replace(base, blocks=base.blocks[:2] + (replace(base.blocks[2], kernel=7),))
    expand = replace(base, blocks=base.blocks[:1] + (replace(base.blocks[1], expand=6),) + base.blocks[2:])
    stem = replace(base, stem=replace(base.stem, out=16))
    head = replace(base, head=None)
    for arch, frags in [(wider, ["blocks[1]", "out 24", "out 16"]), (deeper, ["blocks[3]", "deeper"]),
                        (kernel, ["blocks[2]", "kernel 7", "kernel 3,5"]),
                        (expand, ["blocks[1]", "expand 6", "expand 3"]),
                        (stem, ["stem", "out 16", "out 8"]), (head, ["head", "none", "out 32"])]:
        with pytest.raises(HwnasError, match="outside the supernet") as e:
            sn.set_active(arch)
        assert "\n" not in str(e.value)
        for f in frags:
            assert f in str(e.value), (f, str(e.value))
    shallow = replace(base, blocks=base.blocks[:1])
    with pytest.raises(HwnasError, match="ends after 1 blocks, in stage 2"):
        sn.set_active(shallow)


def test_an_ambiguous_arch_always_maps_the_same_way():
    # stage 4 (stride 2) and stage 5 (stride 1) of mobilenetv2 share the width 48: five blocks
    # of 48 after the stride could be 2+3 or 3+2 layers; earlier stages take as many as they can
    mbv2 = load_space("mobilenetv2")
    p = {"s4_out": 48, "s5_out": 48, "s4_l2": "skip", "s4_l3": "skip"}
    a = mbv2.arch_from_params(p, 32)
    got = assign_blocks(mbv2, a)
    assert [j for j, _ in got].count(3) == 3 and [j for j, _ in got].count(4) == 2
    assert assign_blocks(mbv2, a) == got


# ---- training, resume, storage ------------------------------------------------------------------------

def test_training_stops_after_an_epoch_and_resumes_bit_for_bit(tiny_loaded, digits, tmp_path, monkeypatch):
    recipe = replace(FAST, epochs=2)
    monkeypatch.setenv("HWNAS_HOME", str(tmp_path / "a"))
    whole = train_supernet(tiny_loaded, digits, "digits", 32, recipe, seed=3, progress=False)

    class Stop(Exception):
        pass

    def stop(epoch, loss):
        if epoch == 1:
            raise Stop

    monkeypatch.setenv("HWNAS_HOME", str(tmp_path / "b"))
    with pytest.raises(Stop):
        train_supernet(tiny_loaded, digits, "digits", 32, recipe, seed=3, progress=False, on_epoch=stop)
    cut = open_store(whole.store.id)
    assert cut.read_meta()["epochs_done"] == 1 and "largest_val_acc" not in cut.read_meta()
    resumed = train_supernet(tiny_loaded, digits, "digits", 32, recipe, seed=3, progress=False)
    assert resumed.resumed_from == 1 and resumed.store.id == whole.store.id
    a, b = whole.store.load_checkpoint(), resumed.store.load_checkpoint()
    assert a["epoch"] == b["epoch"] == 2
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert resumed.meta["largest_val_acc"] == whole.meta["largest_val_acc"]
    assert [h["train_loss"] for h in resumed.meta["history"]] == [
        h["train_loss"] for h in whole.meta["history"]]
    # finished: the same call only reports
    again = train_supernet(tiny_loaded, digits, "digits", 32, recipe, seed=3, progress=False)
    assert again.resumed_from == 2 and again.meta["epochs_done"] == 2


def test_the_id_follows_content_data_resolution_and_recipe(tiny_loaded, tiny_path, tmp_path):
    r = FAST.id_dict()
    base = supernet_id(tiny_loaded, "digits", 32, r, 0)
    renamed = tmp_path / "other.yaml"
    renamed.write_text(tiny_space("other"))
    other = load_space(renamed)
    assert base.startswith("tiny-digits-r32-")
    assert supernet_id(other, "digits", 32, r, 0).split("-")[-1] == base.split("-")[-1]
    edited = tmp_path / "edited.yaml"
    edited.write_text(tiny_space().replace("kernel: [3, 5]", "kernel: [3, 5, 7]"))
    ids = {base, supernet_id(load_space(edited), "digits", 32, r, 0),
           supernet_id(tiny_loaded, "digits", 16, r, 0), supernet_id(tiny_loaded, "cifar10:/x", 32, r, 0),
           supernet_id(tiny_loaded, "digits", 32, {**r, "lr": 0.1}, 0), supernet_id(tiny_loaded, "digits", 32, r, 1)}
    assert len(ids) == 6
    assert supernet_id(tiny_loaded, "digits", 32, {**r, "threads": 7}, 0) == base


def test_meta_records_the_run(trained):
    _, r = trained
    m = json.loads(r.store.meta_path.read_text())
    assert m["format"] == "hwnas-supernet/1" and m["id"] == r.store.id
    assert m["epochs_done"] == 1 and m["torch_device"] == "cpu" and m["wall_seconds"] > 0
    assert m["validation"]["train_images"] == 320 and m["recipe"]["subset"] == 320
    assert m["space"]["name"] == "tiny" and m["resolution"] == 32 and m["data"] == "digits"
    assert {"torch", "python"} <= set(m["versions"]) and 0 <= m["largest_val_acc"] <= 1


# ---- the estimator ------------------------------------------------------------------------------------

def test_supernet_estimator_scores_cached_on_the_held_out_part(trained, tiny_path, tmp_path,
                                                               monkeypatch):
    home, r = trained
    monkeypatch.setenv("HWNAS_HOME", str(home))
    cache = tmp_path / "cache.json"
    est = make_estimator("supernet", "digits", 32, space=str(tiny_path), cache_path=cache,
                         threads=1, bn_images=500)
    assert est.store.id == r.store.id
    assert len(est.val_data.test_y) == r.meta["validation"]["val_images"]
    archs = [est.net.largest(32), est.net.smallest(32), parse_string(
        "r32c3_s8k3s2r6_k3e1c8s1_k5e3c16s2q0.25_k3e3c16s1_h32hs_n10")]
    scores = est.score(archs)
    assert all(0 <= s <= 1 for s in scores) and est.n_computed == 3
    direct = subnet_accuracy(est.net, est.adapt(archs[2]), est.val_data, 500, 0, 32)
    assert scores[2] == direct
    again = make_estimator("supernet", "digits", 32, space=str(tiny_path), cache_path=cache,
                           threads=1, bn_images=500)
    assert again.score(archs) == scores and again.n_computed == 0
    settings = next(iter(json.loads(cache.read_text())["settings"].values()))
    assert settings["supernet"] == r.store.id and settings["torch_device"] == "cpu"
    other = make_estimator("supernet", "digits", 32, space=str(tiny_path), cache_path=cache,
                           threads=1, bn_images=400)
    other.score(archs[:1])
    assert other.n_computed == 1  # other settings, another key


def test_loglik_metric_scores_the_same_subnets_by_their_true_class_probability(
        trained, tiny_path, tmp_path, monkeypatch):
    """--supernet-metric loglik: mean log-probability of the true class on the same images
    (<= 0, -cross-entropy), cached apart from accuracy; accuracy's cache key is unchanged."""
    import math

    import torch.nn.functional as F

    home, _ = trained
    monkeypatch.setenv("HWNAS_HOME", str(home))
    cache = tmp_path / "cache.json"
    kw = dict(space=str(tiny_path), cache_path=cache, threads=1, bn_images=500, val_images=200)
    acc = make_estimator("supernet", "digits", 32, **kw)
    ll = make_estimator("supernet", "digits", 32, metric="loglik", **kw)
    assert "metric" not in acc.settings() and ll.settings()["metric"] == "loglik"
    assert acc.settings_id() != ll.settings_id()
    archs = [ll.net.largest(32), ll.net.smallest(32)]
    a, b = ll.score(archs)
    assert a <= 0 and b <= 0 and ll.n_computed == 2
    # by hand: the same BN recalibration and images, then -cross-entropy
    subnet_accuracy(ll.net, ll.adapt(archs[0]), ll.val_data, 500, 0, 32, 200)  # BN as scored
    from dataclasses import replace

    from hwnas.data import stratified_indices

    idx = stratified_indices(ll.val_data.test_y, 200, 0)
    v = replace(ll.val_data, test_x=ll.val_data.test_x[idx], test_y=ll.val_data.test_y[idx])
    x, y = v.split("test")
    with torch.no_grad():
        want = -float(F.cross_entropy(ll.net(v.prepare(x, 32)), y))
    assert a == pytest.approx(want, abs=1e-4) and math.isfinite(a)
    assert acc.score(archs[:1])[0] != a and 0 <= acc.score(archs[:1])[0] <= 1
    with pytest.raises(HwnasError, match="--supernet-metric must be one of"):
        make_estimator("supernet", "digits", 32, metric="loss", **kw)


def test_estimator_refuses_in_one_line_without_a_matching_supernet(trained, tiny_path, tmp_path,
                                                                   monkeypatch):
    home, r = trained
    monkeypatch.setenv("HWNAS_HOME", str(tmp_path))
    with pytest.raises(HwnasError, match=r"no trained supernet .* train one with: hwnas supernet "
                       r"train --space \S*tiny.yaml --data digits -r 32$"):
        make_estimator("supernet", "digits", 32, space=str(tiny_path))
    with pytest.raises(HwnasError, match="needs the search space"):
        make_estimator("supernet", "digits", 32)
    with pytest.raises(HwnasError, match="needs a resolution"):
        make_estimator("supernet", "digits", None, space=str(tiny_path))
    with pytest.raises(HwnasError, match=r"is of resolution 32 \(not 16\)"):
        make_estimator("supernet", "digits", 16, space=str(tiny_path), supernet=r.store.folder)
    with pytest.raises(HwnasError, match="another content"):
        make_estimator("supernet", "digits", 32, space="mobilenetv2", supernet=r.store.folder)


# ---- torch devices ----------------------------------------------------------------------------------

def test_torch_device_auto_cpu_and_refusals():
    assert resolve_torch_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(HwnasError, match="--torch-device cuda: .*use --torch-device cpu"):
            resolve_torch_device("cuda")
        if not torch.backends.mps.is_available():
            assert resolve_torch_device("auto") == torch.device("cpu")
    if not torch.backends.mps.is_available():
        with pytest.raises(HwnasError, match="mps"):
            resolve_torch_device("mps")
    with pytest.raises(HwnasError, match="not one of auto, cpu, cuda, mps"):
        resolve_torch_device("tpu")


# ---- the CLI ------------------------------------------------------------------------------------------

@pytest.fixture
def cli_in_process(home, capsys):
    """``hwnas ARGS`` in this process (no torch import per call): CompletedProcess-like."""
    from types import SimpleNamespace

    from hwnas.cli import main

    def _run(*args, check=None):
        rc = main([str(a) for a in args])
        out, err = capsys.readouterr()
        if check is not None:
            assert rc == check, f"exit {rc}\nstdout:\n{out}\nstderr:\n{err}"
        return SimpleNamespace(returncode=rc, stdout=out, stderr=err)

    return _run


def test_cli_trains_lists_scores_and_refuses_bad_input_in_one_line(cli_in_process, home):
    cli = cli_in_process
    (home / "tiny.yaml").write_text(tiny_space())
    train = ["supernet", "train", "--space", "tiny.yaml", "--data", "digits", "-r", "32",
             "--epochs", "1", "--subset", "200", "--threads", "1"]
    r = cli(*train, check=0)
    sid = r.stdout.split()[1]
    folder = home / "runs" / "supernets" / sid
    assert (folder / "checkpoint.pt").is_file() and "largest" in r.stdout
    assert sid in cli("supernet", "list", check=0).stdout
    score = ["score", "r32c3_s8k3s2r6_k3e1c8s1_k3e3c16s2_h32hs_n10", "--estimator", "supernet",
             "--space", "tiny.yaml", "--data", "digits", "-r", "32", "--threads", "1"]
    out = cli(*score, check=0).stdout
    assert 0 <= float(out.splitlines()[-1].split()[0]) <= 1 and "torch device cpu" in out
    ll = cli(*score, "--supernet-metric", "loglik", check=0).stdout
    assert float(ll.splitlines()[-1].split()[0]) <= 0
    assert_one_line_error(cli("score", score[1], "--data", "digits", "--supernet-metric", "loglik"),
                          "--supernet-metric go")
    outside = [*score]
    outside[1] = "r32c3_s8k3s2r6_k3e1c8s1_k7e3c16s2_h32hs_n10"
    assert_one_line_error(cli(*outside), "blocks[1]", "kernel 7")
    assert_one_line_error(cli(*score[:-2], "--torch-device", "cuda"), "--torch-device cuda")
    assert_one_line_error(cli(*train, "--torch-device", "cuda"), "--torch-device cuda")
    # a corrupt checkpoint: refused when scoring and when training; never overwritten
    ck = folder / "checkpoint.pt"
    ck.write_bytes(ck.read_bytes()[:1000])
    before = ck.read_bytes()
    assert_one_line_error(cli(*score), "checkpoint.pt")
    assert_one_line_error(cli(*train), "checkpoint.pt", "move it away")
    assert ck.read_bytes() == before
    # a foreign folder where this supernet would live, and one passed by hand
    (folder / "meta.json").write_text(json.dumps({"format": "something-else"}))
    meta = (folder / "meta.json").read_bytes()
    assert_one_line_error(cli(*train), "meta.json", "not an hwnas supernet")
    assert_one_line_error(cli(*score, "--supernet", str(folder)), "not an hwnas supernet")
    assert (folder / "meta.json").read_bytes() == meta and ck.read_bytes() == before
    assert "unreadable" in cli("supernet", "list", check=0).stdout


def test_cli_resumes_after_kill_9(home):
    (home / "tiny.yaml").write_text(tiny_space())
    cmd = [sys.executable, "-m", "hwnas", "supernet", "train", "--space", "tiny.yaml", "--data",
           "digits", "-r", "16", "--epochs", "8", "--subset", "200", "--threads", "1",
           "--batch-size", "32"]
    env = {**os.environ, "HWNAS_HOME": str(home)}
    p = subprocess.Popen(cmd, cwd=home, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    found = []
    while time.time() < deadline and not found and p.poll() is None:
        found = list((home / "runs" / "supernets").glob("*/checkpoint.pt"))
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert found, "no checkpoint was written"
    r = subprocess.run(cmd, cwd=home, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "8 of 8" in r.stdout
    m = json.loads((found[0].parent / "meta.json").read_text())
    assert m["epochs_done"] == 8 and [h["epoch"] for h in m["history"]] == list(range(1, 9))



def test_a_search_records_which_supernet_scored_it(trained, tiny_path, tmp_path, monkeypatch):
    """config.json must say how the accuracies were measured: the supernet's id, BN images."""
    from types import SimpleNamespace

    from hwnas.search import SearchSettings
    from hwnas.search.objective import build_estimators

    home, r = trained
    monkeypatch.setenv("HWNAS_HOME", str(home))
    dev = SimpleNamespace(predictor=lambda **kw: SimpleNamespace(predict=lambda a: [1.0] * len(a)),
                          table=SimpleNamespace(provenance={}, statistic="min"), config={})
    s = SearchSettings(space=str(tiny_path), device="d", name="n", accuracy="supernet",
                       data="digits", resolution=32)
    est = build_estimators(s, 32, tmp_path, dev)
    assert est.info["accuracy_estimator"] == "supernet"
    assert est.info["accuracy_settings"]["supernet"] == r.store.id
    assert est.info["accuracy_settings"]["bn_images"] == 2000
    assert "metric" not in est.info["accuracy_settings"]
    from hwnas.report.labels import score_label

    assert score_label({"accuracy_estimator": "supernet", **est.info}) == "supernet val. accuracy"
    ll = build_estimators(SearchSettings(space=str(tiny_path), device="d", name="n",
                                         accuracy="supernet", data="digits", resolution=32,
                                         supernet_metric="loglik"), 32, tmp_path, dev)
    assert ll.info["accuracy_settings"]["metric"] == "loglik"
    assert score_label(ll.info) == "supernet val. log-likelihood"
    with pytest.raises(HwnasError, match="--supernet-metric goes with --accuracy supernet"):
        SearchSettings(space="s", device="d", name="n", supernet_metric="loglik").validate()
