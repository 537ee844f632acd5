"""hwnas retrain says what it will do before it starts (issue 24.4): the plan (models x seeds
x epochs, what is finished) with a time estimate from one timed batch per model, and how to
make it smaller; training's progress bars also cover BatchNorm recalibration and testing."""

from __future__ import annotations

import pytest

from hwnas.arch import parse_string

ARCH = "r32c3_s8k3s2r6_k3e1c8s1_k3e3c16s2_h32hs_n10"


def test_plan_text_counts_trainings_and_says_how_to_shrink():
    from hwnas.retrain.plan import Plan

    p = Plan(winners=3, baselines=1, seeds=2, epochs=10, steps_per_epoch=20, todo=6,
             step_s={"a": 0.05, "b": 0.15})
    assert p.models == 4
    # 1.1 x 0.1 s x 20 batches x 10 epochs x 6 trainings left
    assert p.estimate_s == pytest.approx(132.0)
    t = p.text()
    assert "3 winner(s) + 1 baseline(s) = 4 models x 2 seed(s) = 8 trainings of 10 epoch(s)" in t
    assert "2 finished earlier" in t and "about 2 min for the 6 left" in t
    for opt in ("--top K", "--seeds 1", "--epochs E", "--subset N"):
        assert opt in t
    assert Plan(1, 0, 1, 1, 1, 0).estimate_s == 0.0
    assert Plan(1, 0, 1, 1, 1, 1).estimate_s is None  # untimed: no estimate is made up


def test_make_plan_times_one_batch_of_each_model_left(tmp_path):
    from hwnas.data import load_dataset
    from hwnas.retrain.plan import make_plan
    from hwnas.retrain.run import Model
    from hwnas.train import Recipe, adapt_arch

    data = load_dataset("digits", 32, 0)
    a = adapt_arch(parse_string(ARCH), data)
    models = [Model("w", "winner", a), Model("mb", "baseline", a)]
    plan = make_plan(models, (0, 1), Recipe(epochs=3, batch_size=32, subset=320), data, tmp_path,
                     "e3-x")
    assert (plan.winners, plan.baselines, plan.seeds, plan.epochs) == (1, 1, 2, 3)
    assert plan.steps_per_epoch == 10 and plan.todo == 4
    assert set(plan.step_s) == {"w", "mb"} and all(0 < s < 30 for s in plan.step_s.values())
    assert plan.estimate_s > 0


def test_training_bars_cover_bn_recalibration_and_testing(monkeypatch):
    import tqdm

    from hwnas.data import load_dataset
    from hwnas.train import Recipe, adapt_arch, train_arch

    descs = []
    real = tqdm.tqdm

    def spy(*a, **kw):
        descs.append(kw.get("desc"))
        return real(*a, **{**kw, "disable": True})

    monkeypatch.setattr(tqdm, "tqdm", spy)
    data = load_dataset("digits", 32, 0)
    arch = adapt_arch(parse_string(ARCH), data)
    train_arch(arch, data, Recipe(epochs=1, batch_size=32, subset=64, bn_recalibration=64),
               seed=0, progress=True)
    assert "BN recalibration" in descs and "test" in descs
    assert any(str(d).startswith("train") for d in descs)
