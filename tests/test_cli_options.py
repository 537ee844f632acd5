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
