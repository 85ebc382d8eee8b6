"""LivenessNet: the small CNN of the 2019 PyImageSearch tutorial, for Keras 3.

Usage:
    python livenessnet.py                 # prints the summary and parameter count
    python livenessnet.py --input-size 64

The network lives in the package (liveness/nets.py), where train.py builds it; this
script keeps the tutorial's `from livenessnet import LivenessNet` working.
"""

from __future__ import annotations

import argparse

from liveness.cli import cli_main, ranged, setup_logging
from liveness.nets import DEFAULT_INPUT_SIZE, LivenessNet

__all__ = ["LivenessNet"]


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Print LivenessNet's summary and parameter count.")
    ap.add_argument("--input-size", type=ranged(int, 8, 1024), default=DEFAULT_INPUT_SIZE, help="square input size in pixels")
    ap.add_argument("--classes", type=ranged(int, 2, 1000), default=2)
    return ap.parse_args(argv)


def run(*, input_size: int = DEFAULT_INPUT_SIZE, classes: int = 2) -> int:
    model = LivenessNet.build(input_size, input_size, 3, classes)
    model.summary()
    print(f"parameters: {model.count_params():,}")
    return model.count_params()


def main(opt: argparse.Namespace) -> int:
    setup_logging()
    run(input_size=opt.input_size, classes=opt.classes)
    return 0


if __name__ == "__main__":
    cli_main(lambda: main(parse_opt()))
