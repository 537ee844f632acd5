"""Command line habits (issue 14, part 4): --version, | head, -r on search, quiet progress."""

import os
import subprocess
import sys

import hwnas
from hwnas.cli import build_parser


def test_version_prints_the_package_version(cli):
    r = cli("--version", check=0)
    assert r.stdout.strip() == f"hwnas {hwnas.__version__}"
    assert hwnas.__version__ and hwnas.__version__[0].isdigit()


def test_piping_into_head_gives_no_traceback(home):
    # ~450 kB of arch YAML: far more than a pipe holds, so the writer meets the closed pipe
    env = dict(os.environ, HWNAS_HOME=str(home))
    p = subprocess.Popen([sys.executable, "-m", "hwnas", "arch", "sample", "mobilenetv2",
                          "-n", "300"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env, cwd=home)
    first = p.stdout.readline()
    p.stdout.close()  # what `head -1` does after its line
    err = p.stderr.read().decode()
    rc = p.wait(timeout=60)
    assert first.startswith(b"# r")
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert rc == 0


def test_search_has_short_resolution_option():
    args = build_parser().parse_args(["search", "--space", "mobilenetv2", "--device", "d",
                                      "--name", "n", "-r", "160"])
    assert args.resolution == 160
