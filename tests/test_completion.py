"""hwnas completion: the scripts complete commands, subcommands and options in a real bash
(and are valid fish/zsh text made from the same parsers)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest


def _complete(script: str, *words: str) -> list[str]:
    """Run the bash completion function on ``words`` (the last one being completed)."""
    arr = " ".join(f"'{w}'" for w in ("hwnas", *words))
    prog = f'{script}\nCOMP_WORDS=({arr}); COMP_CWORD={len(words)}; _hwnas; ' \
           'printf "%s\\n" "${COMPREPLY[@]}"'
    r = subprocess.run(["bash", "-c", prog], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


@pytest.fixture(scope="module")
def bash_script():
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    r = subprocess.run([sys.executable, "-m", "hwnas", "completion", "bash"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_bash_completes_commands_subcommands_and_options(bash_script):
    assert _complete(bash_script, "dev") == ["device"]
    assert _complete(bash_script, "device", "ch") == ["check"]
    assert "--device" in _complete(bash_script, "profile", "--dev")
    assert "--int8-format" in _complete(bash_script, "profile", "--int8")
    assert "--top" in _complete(bash_script, "retrain", "RUN", "--t")
    assert _complete(bash_script, "completion", "f") == ["fish"]
    assert "--quiet" in _complete(bash_script, "--q")


def test_fish_and_zsh_scripts_name_every_command():
    from hwnas.cli import build_parser
    from hwnas.commands.completion import _subparsers, fish, zsh

    names = list(_subparsers(build_parser()))
    f, z = fish(), zsh()
    for n in names:
        assert f"-a {n}" in f and n in z
    assert "bashcompinit" in z and "complete -o filenames -F _hwnas hwnas" in z


def test_quiet_and_verbose(tmp_path):
    """-q leaves warnings and errors; third-party loggers stay at WARNING even with -v."""
    import logging

    from hwnas.cli import THIRD_PARTY, build_parser

    p = build_parser()
    assert p.parse_args(["-q", "device", "list"]).log_quiet
    # a command's own --quiet (search, demo: no progress bar) is another setting
    a = p.parse_args(["demo", "--quick", "-q"])
    assert a.quiet and not a.log_quiet
    with pytest.raises(SystemExit):
        p.parse_args(["-q", "-v", "device", "list"])
    env = {"HWNAS_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-m", "hwnas", "-q", "device", "add", "d", "--target", "local"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    code = ("import logging, sys; from hwnas.cli import main; "
            "sys.argv=['hwnas','-v','device','list']; main(); "
            f"print([logging.getLogger(n).level for n in {THIRD_PARTY!r}])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.stdout.strip().splitlines()[-1] == str([logging.WARNING] * len(THIRD_PARTY))
