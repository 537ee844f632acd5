"""Options shared by the commands (hwnas.commands.options): choices and defaults named in one
place, read from the module that checks them, without importing torch to build the parser."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_building_the_parser_imports_no_torch():
    code = ("import sys; from hwnas.cli import build_parser; build_parser(); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_optimizer_choices_and_lr_defaults_come_from_the_recipe(capsys):
    from hwnas.cli import build_parser
    from hwnas.train import DEFAULT_LR, OPTIMIZERS, Recipe

    p = build_parser()
    for cmd in (["train", "a", "--data", "digits"], ["retrain", "r"]):
        with pytest.raises(SystemExit):
            p.parse_args([*cmd, "--optimizer", "adam"])
        assert "invalid choice: 'adam'" in capsys.readouterr().err
        for o in OPTIMIZERS:
            assert p.parse_args([*cmd, "--optimizer", o]).optimizer == o
    helptext = " ".join(p._subparsers._group_actions[0].choices["train"].format_help().split())
    for o in OPTIMIZERS:
        assert f"{DEFAULT_LR[o]} {o}" in helptext
        assert Recipe(optimizer=o).lr == DEFAULT_LR[o]


def test_weight_decay_defaults_per_optimizer_live_in_the_recipe():
    """`hwnas train --optimizer adamw` and `hwnas retrain --optimizer adamw` get the same
    decoupled weight decay (they differed: 4e-5 vs 0.05); an explicit value wins."""
    from hwnas.cli import build_parser
    from hwnas.train import DEFAULT_WEIGHT_DECAY, Recipe

    assert Recipe().weight_decay == 4e-5 == DEFAULT_WEIGHT_DECAY["sgd"]
    assert Recipe(optimizer="adamw").weight_decay == 0.05 == DEFAULT_WEIGHT_DECAY["adamw"]
    assert Recipe(optimizer="adamw", weight_decay=0.0).weight_decay == 0.0
    assert Recipe.from_dict(Recipe(optimizer="adamw").to_dict()) == Recipe(optimizer="adamw")
    args = build_parser().parse_args(["retrain", "r", "--optimizer", "adamw"])
    assert args.weight_decay is None  # left to the recipe


def _option(parser, command: list[str], flag: str):
    import argparse

    for name in command:
        parser = next(a for a in parser._actions
                      if isinstance(a, argparse._SubParsersAction)).choices[name]
    return next(a for a in parser._actions if flag in a.option_strings)


def test_option_choices_are_the_settings_constants():
    """Every choice list of these options is the constant the code validates against, so a
    new sampler, metric, precision or selection reaches the CLI without a second edit."""
    from hwnas.cli import build_parser
    from hwnas.profiling.precision import PRECISIONS
    from hwnas.retrain.run import SELECTIONS
    from hwnas.runs import SUPERNET_METRICS
    from hwnas.trials.storage import SAMPLERS

    p = build_parser()
    assert f"sampler: {', '.join(SAMPLERS)} [" in _option(p, ["search"], "--sampler").help
    assert tuple(_option(p, ["search"], "--supernet-metric").choices) == SUPERNET_METRICS
    assert tuple(_option(p, ["score"], "--supernet-metric").choices) == SUPERNET_METRICS
    assert tuple(_option(p, ["predict"], "--precision").choices) == PRECISIONS
    assert tuple(_option(p, ["predictor", "fit"], "--precision").choices) == PRECISIONS
    assert (*_option(p, ["retrain"], "--select").choices, "top") == tuple(sorted(
        SELECTIONS, key=lambda s: s == "top"))
