"""The training recipe (seeds, checkpoints) and the accuracy estimators (NASWOT, short training)."""

import json
import math
import os
from dataclasses import replace

import pytest
import torch

from hwnas.accuracy import ScoreCache, make_estimator
from hwnas.arch import parse_string
from hwnas.baselines import resolve_arch
from hwnas.data import load_dataset
from hwnas.errors import HwnasError
from hwnas.train import (
    Recipe,
    default_threads,
    evaluate,
    load_trained,
    torch_threads,
    train_arch,
    usable_cores,
)

TINY = "r32c3_s16k3s2r6_k3e1c16s1_k3e4c24s2_k3e4c24s1_k5e4c32s2_h256r6_n10"
SMALL = "r32c3_s16k3s2r6_k3e1c16s1_k3e4c24s2_k5e4c24s1_k5e4c32s2_k3e4c32s1_h256r6_n10"
FAST = Recipe(epochs=2, threads=1)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", 32)


@pytest.fixture(scope="module")
def tiny_arch():
    """A small network (an Arch, not a space): 6 blocks at 32 px, 10 classes."""
    return parse_string(TINY)


def _same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---- training ---------------------------------------------------------------------------------------

def test_two_epochs_on_digits_beat_chance_and_a_seed_gives_the_same_run(digits, tiny_arch):
    a = train_arch(tiny_arch, digits, FAST, seed=7, progress=False)
    assert a.test_acc > 0.3  # chance is 0.1
    assert a.epochs == 2 and len(a.history) == 2 and a.history[1]["train_loss"] < a.history[0]["train_loss"]
    assert a.test_acc == pytest.approx(evaluate(a.model, digits))
    b = train_arch(tiny_arch, digits, FAST, seed=7, progress=False)
    c = train_arch(tiny_arch, digits, FAST, seed=8, progress=False)
    assert a.train_loss == b.train_loss and a.test_acc == b.test_acc and _same_state(a.model, b.model)
    assert a.train_loss != c.train_loss and not _same_state(a.model, c.model)


def test_checkpoint_resume_continues_the_same_run(digits, tiny_arch, tmp_path):
    recipe = replace(FAST, subset=640)
    whole = train_arch(tiny_arch, digits, recipe, seed=1, checkpoint=tmp_path / "a.pt", progress=False)

    class Stop(Exception):
        pass

    def stop_after_first(epoch, loss):
        if epoch == 1:
            raise Stop

    ck = tmp_path / "b.pt"
    with pytest.raises(Stop):
        train_arch(tiny_arch, digits, recipe, seed=1, checkpoint=ck, progress=False, on_epoch=stop_after_first)
    resumed = train_arch(tiny_arch, digits, recipe, seed=1, checkpoint=ck, progress=False)
    assert resumed.resumed_from == 1
    assert resumed.train_loss == whole.train_loss and _same_state(resumed.model, whole.model)
    assert resumed.test_acc == whole.test_acc
    # the checkpoint holds the evaluated weights: loading it gives the same accuracy
    arch, model, _ = load_trained(ck)
    assert arch == tiny_arch and evaluate(model, digits) == pytest.approx(whole.test_acc)


def test_foreign_corrupt_and_unsafe_checkpoints_are_refused(digits, tiny_arch, tmp_path):
    ck = tmp_path / "a.pt"
    train_arch(tiny_arch, digits, replace(FAST, epochs=1), seed=0, checkpoint=ck, progress=False)
    other = parse_string(TINY.replace("h256", "h128"))
    with pytest.raises(HwnasError, match="another arch"):
        train_arch(other, digits, replace(FAST, epochs=1), seed=0, checkpoint=ck, progress=False)
    with pytest.raises(HwnasError, match="lr=0.05"):
        train_arch(tiny_arch, digits, replace(FAST, epochs=1, lr=0.1), seed=0, checkpoint=ck, progress=False)

    bad = tmp_path / "bad.pt"
    bad.write_bytes(ck.read_bytes()[: ck.stat().st_size // 2])  # truncated
    with pytest.raises(HwnasError, match="bad.pt"):
        train_arch(tiny_arch, digits, FAST, seed=0, checkpoint=bad, progress=False)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weight": torch.zeros(2)}, foreign)
    with pytest.raises(HwnasError, match="not an hwnas training checkpoint"):
        load_trained(foreign)

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    unsafe = tmp_path / "unsafe.pt"
    torch.save({"format": "hwnas-train/1", "model": Evil()}, unsafe)
    with pytest.raises(HwnasError, match="refused"):
        load_trained(unsafe)
    assert not marker.exists()


def test_arch_must_match_the_dataset(digits):
    with pytest.raises(HwnasError, match="1000 classes.*10"):
        train_arch(resolve_arch("mbv2-0.35@32"), digits, FAST, seed=0, progress=False)
    with pytest.raises(HwnasError, match="recipe.optimizer"):
        Recipe(optimizer="adam")


def test_adamw_on_a_subset(digits, tiny_arch):
    r = train_arch(tiny_arch, digits, Recipe(epochs=1, optimizer="adamw", lr=0.003, subset=300,
                                        threads=1), seed=0, progress=False)
    assert math.isfinite(r.train_loss) and 0 <= r.test_acc <= 1


def test_train_command(cli, home):
    r = cli("train", TINY, "--data", "digits", "--epochs", "1", "--threads", "1", "-o", "t.pt",
            check=0)
    acc = float(r.stdout.split("test acc")[1].split("%")[0])
    assert 0 <= acc <= 100 and (home / "t.pt").is_file()


@pytest.mark.parametrize("cores, threads", [(1, 1), (2, 1), (3, 1), (8, 4)])
def test_default_threads_are_half_the_usable_cores(monkeypatch, cores, threads):
    # the affinity mask wins over the machine's count
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert (usable_cores(), default_threads()) == (cores, threads)
    old = torch.get_num_threads()
    with torch_threads(None):
        assert torch.get_num_threads() == threads
    with torch_threads(2):
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == old


@pytest.mark.parametrize("count, cores", [(None, 1), (1, 1), (6, 6)])
def test_usable_cores_fall_back_to_the_cpu_count(monkeypatch, count, cores):
    def no_affinity(pid):
        raise OSError("not supported")
    monkeypatch.setattr(os, "sched_getaffinity", no_affinity, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: count)
    assert usable_cores() == cores and default_threads() == max(1, cores // 2)
    monkeypatch.delattr(os, "sched_getaffinity")
    assert usable_cores() == cores


# ---- accuracy estimators ----------------------------------------------------------------------------

def test_naswot_is_deterministic_finite_and_tells_archs_apart(tiny_arch):
    archs = [tiny_arch, parse_string(SMALL), resolve_arch("mbv2-0.5@32")]
    e1 = make_estimator("zero-cost", "digits", 32, threads=1)
    e2 = make_estimator("zero-cost", "digits", 32, threads=1)
    s1, s2 = e1.score(archs), e2.score(archs)
    assert s1 == s2 and all(math.isfinite(v) for v in s1)
    assert len(set(s1)) == 3
    # more activation units separating the same images -> a larger kernel determinant
    assert s1[2] > s1[0]
    # another seed draws other weights and another minibatch
    assert make_estimator("zero-cost", "digits", 32, seed=1, threads=1).score([tiny_arch]) != s1[:1]


def test_naswot_scores_the_real_minibatch(tiny_arch):
    e = make_estimator("zero-cost", "digits", 32, threads=1)
    real = e.score([tiny_arch])[0]
    # identical images give identical activation codes: K is singular, the score -inf
    e2 = make_estimator("zero-cost", "digits", 32, threads=1)
    x = e2.minibatch(32)
    e2._batches[32] = x[:1].expand_as(x).clone()
    assert math.isfinite(real) and e2.score([tiny_arch])[0] == -math.inf


def test_scores_are_cached_per_arch_and_settings(tiny_arch, tmp_path):
    path = tmp_path / "cache.json"
    other = parse_string(SMALL)
    a = make_estimator("zero-cost", "digits", 32, cache_path=path, batch_size=16, threads=1)
    b = make_estimator("zero-cost", "digits", 32, cache_path=path, batch_size=16, threads=1)
    first = a.score([tiny_arch])
    assert b.score([other]) and b.n_computed == 1  # b read its cache before a wrote: merged
    c = make_estimator("zero-cost", "digits", 32, cache_path=path, batch_size=16, threads=1)
    assert c.score([tiny_arch, replace(tiny_arch, classes=1000)]) == first * 2  # classes are adapted
    assert c.n_computed == 0
    stored = json.loads(path.read_text())["scores"]
    assert len(stored) == 2  # both processes' entries survived
    d = make_estimator("zero-cost", "digits", 32, cache_path=path, batch_size=8, threads=1)
    d.score([tiny_arch])
    assert d.n_computed == 1  # other settings: another key
    path.write_text("{broken")
    with pytest.raises(HwnasError, match="cache.json"):
        ScoreCache(path)


def test_short_training_scores_on_held_out_training_images(tiny_arch):
    e = make_estimator("train", "digits", 32, epochs=1, subset=400, threads=1)
    assert len(e.val_data.test_y) == pytest.approx(0.2 * len(e.data.train_y), abs=1)
    assert len(e.val_data.train_y) + len(e.val_data.test_y) == len(e.data.train_y)
    (s,) = e.score([tiny_arch])
    assert 0 <= s <= 1 and e.score([tiny_arch]) == [s] and e.n_computed == 1


def test_estimator_factory_errors():
    with pytest.raises(HwnasError, match="zero-cost, train"):
        make_estimator("synflow", "digits", 32)
    with pytest.raises(HwnasError, match="unknown option 'epochs'"):
        make_estimator("zero-cost", "digits", 32, epochs=3)


def test_score_command(cli):
    r = cli("score", TINY, "mbv2-0.35@32", "--data", "digits", "--batch-size", "16", check=0)
    lines = [x for x in r.stdout.splitlines() if not x.startswith("#")]
    assert len(lines) == 2 and all(math.isfinite(float(x.split()[0])) for x in lines)


# ---- torch devices ---------------------------------------------------------------------------------

def test_training_records_its_torch_device(digits, tiny_arch, tmp_path):
    ck = tmp_path / "d.pt"
    r = train_arch(tiny_arch, digits, replace(FAST, epochs=1, subset=200), seed=0, checkpoint=ck,
                   progress=False, device="cpu")
    assert r.device == "cpu" and next(r.model.parameters()).device.type == "cpu"
    assert load_trained(ck)[2]["torch_device"] == "cpu"
    assert evaluate(r.model, digits, device="cpu") == r.test_acc


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_train_and_score_refuse_cuda_in_one_line(cli):
    from conftest import assert_one_line_error

    assert_one_line_error(cli("train", TINY, "--data", "digits", "--torch-device", "cuda"),
                          "--torch-device cuda", "use --torch-device cpu")
    assert_one_line_error(cli("score", TINY, "--data", "digits", "--torch-device", "cuda"),
                          "--torch-device cuda")
    assert_one_line_error(cli("score", TINY, "--data", "digits", "--estimator", "supernet",
                              "-r", "32"), "needs --space")
