"""hwnas completion bash|zsh|fish: a shell completion script made from the parsers themselves.

The script is static (the commands, their subcommands and options, read from
:func:`hwnas.cli.build_parser` when it is generated), so completing costs no Python start.
Install: ``hwnas completion bash > ~/.local/share/bash-completion/completions/hwnas``, or
``eval "$(hwnas completion bash)"`` in ~/.bashrc (zsh: ``eval "$(hwnas completion zsh)"``;
fish: ``hwnas completion fish > ~/.config/fish/completions/hwnas.fish``).
"""

from __future__ import annotations

import argparse

SHELLS = ("bash", "zsh", "fish")


def register(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("completion", help="print a shell completion script (bash, zsh, fish)",
                       description=__doc__.split("\n\n", 1)[1].strip())
    c.add_argument("shell", choices=SHELLS)
    c.set_defaults(func=cmd_completion)


def _options(p: argparse.ArgumentParser) -> list[str]:
    """Long options, and the choices of positional arguments that have them."""
    opts = sorted(o for a in p._actions for o in a.option_strings if o.startswith("--"))
    return [str(c) for a in p._actions if not a.option_strings and a.choices
            and not isinstance(a, argparse._SubParsersAction) for c in a.choices] + opts


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            return dict(a.choices)
    return {}


def tree() -> dict[str, tuple[list[str], dict[str, list[str]]]]:
    """command -> (its options, {subcommand: its options}); "" -> the global options."""
    from ..cli import build_parser

    root = build_parser()
    out = {"": (_options(root), {})}
    for name, p in _subparsers(root).items():
        out[name] = (_options(p), {s: _options(sp) for s, sp in _subparsers(p).items()})
    return out


def bash() -> str:
    t = tree()
    cases = []
    for cmd, (opts, subs) in t.items():
        if not cmd:
            continue
        if subs:
            inner = "\n".join(f'                {s}) words="{" ".join(o)}" ;;'
                              for s, o in subs.items())
            cases.append(f'''        {cmd})
            if [ "$COMP_CWORD" -eq 2 ]; then words="{" ".join(subs)}"; else
            case "${{COMP_WORDS[2]}}" in
{inner}
                *) words="" ;;
            esac; fi ;;''')
        else:
            cases.append(f'        {cmd}) words="{" ".join(opts)}" ;;')
    commands = " ".join(c for c in t if c)
    body = "\n".join(cases)
    return f'''# hwnas completion for bash (hwnas completion bash)
_hwnas() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" words=""
    if [ "$COMP_CWORD" -eq 1 ]; then
        words="{commands} {" ".join(t[""][0])}"
    else
        case "${{COMP_WORDS[1]}}" in
{body}
        esac
    fi
    if [ -n "$words" ] && {{ [ -z "$cur" ] || [ "${{cur:0:1}}" != "/" ]; }}; then
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
    fi
    [ ${{#COMPREPLY[@]}} -eq 0 ] && COMPREPLY=($(compgen -f -- "$cur"))
    return 0
}}
complete -o filenames -F _hwnas hwnas
'''


def zsh() -> str:
    return ("# hwnas completion for zsh (hwnas completion zsh): the bash function via bashcompinit\n"
            "autoload -U +X bashcompinit && bashcompinit\n" + bash())


def fish() -> str:
    t = tree()
    lines = ["# hwnas completion for fish (hwnas completion fish)",
             "complete -c hwnas -f"]
    for o in t[""][0]:
        lines.append(f"complete -c hwnas -n __fish_use_subcommand -l {o[2:]}")
    for cmd, (opts, subs) in t.items():
        if not cmd:
            continue
        lines.append(f"complete -c hwnas -n __fish_use_subcommand -a {cmd}")
        for s, sopts in subs.items():
            lines.append(f"complete -c hwnas -n '__fish_seen_subcommand_from {cmd}; and not "
                         f"__fish_seen_subcommand_from {' '.join(subs)}' -a {s}")
            for o in sopts:
                lines.append(f"complete -c hwnas -n '__fish_seen_subcommand_from {cmd}; and "
                             f"__fish_seen_subcommand_from {s}' -l {o[2:]} -F")
        for o in opts:
            lines.append(f"complete -c hwnas -n '__fish_seen_subcommand_from {cmd}' -l {o[2:]} -F")
    return "\n".join(lines) + "\n"


def cmd_completion(args) -> None:
    print({"bash": bash, "zsh": zsh, "fish": fish}[args.shell](), end="")
