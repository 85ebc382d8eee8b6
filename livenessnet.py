"""LivenessNet: the small CNN of the 2019 PyImageSearch tutorial, for Keras 3.

Usage:
    python livenessnet.py                 # prints the summary and parameter count
    python livenessnet.py --input-size 64

Two blocks of (Conv2D 3x3 -> ReLU -> BatchNorm) x2 -> MaxPool -> Dropout, with 16
then 32 filters, then Dense(64) -> ReLU -> BatchNorm -> Dropout -> Dense(softmax).
Pixel scaling is the model's first layer, so training and inference feed the same
raw 0..255 RGB pixels and cannot disagree about it.
"""

from __future__ import annotations

import argparse

from liveness import FACE_SIZE


class LivenessNet:
    @staticmethod
    def build(width: int = FACE_SIZE, height: int = FACE_SIZE, depth: int = 3, classes: int = 2):
        import keras
        from keras import layers

        inputs = keras.Input((height, width, depth), name="face")  # (N, H, W, 3) RGB, 0..255
        x = layers.Rescaling(1.0 / 255, name="scale")(inputs)
        for block, filters in enumerate((16, 32), start=1):
            for conv in (1, 2):
                x = layers.Conv2D(filters, 3, padding="same", name=f"block{block}_conv{conv}")(x)
                x = layers.Activation("relu", name=f"block{block}_relu{conv}")(x)
                x = layers.BatchNormalization(name=f"block{block}_bn{conv}")(x)
            x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)  # H, W halve
            x = layers.Dropout(0.25, name=f"block{block}_dropout")(x)
        x = layers.Flatten(name="flatten")(x)  # (N, H/4 * W/4 * 32)
        x = layers.Dense(64, name="fc")(x)
        x = layers.Activation("relu", name="fc_relu")(x)
        x = layers.BatchNormalization(name="fc_bn")(x)
        x = layers.Dropout(0.5, name="fc_dropout")(x)
        outputs = layers.Dense(classes, activation="softmax", name="probabilities")(x)
        return keras.Model(inputs, outputs, name="livenessnet")


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Print LivenessNet's summary and parameter count.")
    ap.add_argument("--input-size", type=int, default=FACE_SIZE, help="square input size in pixels")
    ap.add_argument("--classes", type=int, default=2)
    return ap.parse_args(argv)


def main(opt: argparse.Namespace) -> int:
    from liveness.cli import UserError, setup_logging

    setup_logging()
    if opt.input_size < 8 or opt.classes < 2:
        raise UserError("--input-size must be at least 8 and --classes at least 2")
    model = LivenessNet.build(opt.input_size, opt.input_size, 3, opt.classes)
    model.summary()
    print(f"parameters: {model.count_params():,}")
    return 0


if __name__ == "__main__":
    from liveness.cli import cli_main

    cli_main(lambda: main(parse_opt()))
