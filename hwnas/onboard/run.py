#!/usr/bin/env python3
"""Entry point of an hwnas bundle: ``python3 run.py [--check] [--threads T] [--quick] ...``.

Copied to a bundle's top directory next to ``hwnas_device/`` (this package). The board
needs only Python 3 (>= 3.11 for current onnxruntime wheels) and ``pip install onnxruntime numpy``. ``python3 run.py --help``
lists the options; see hwnas_device/runner.py for the protocol and the results format.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

if os.path.isfile(os.path.join(HERE, "hwnas_device", "runner.py")):  # inside a bundle
    sys.path.insert(0, HERE)
    from hwnas_device.runner import main
else:  # run from the source tree (hwnas/onboard/run.py)
    sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
    from hwnas.onboard.runner import main

if __name__ == "__main__":
    bundle = HERE if os.path.isfile(os.path.join(HERE, "manifest.json")) else os.getcwd()
    sys.exit(main(sys.argv[1:], bundle_dir=bundle))
