"""Every classifier architecture `--arch` can name, built with preprocessing inside.

All models take (N, S, S, 3) RGB pixels in 0..255 and output class probabilities,
so the data pipeline, the demo and the ONNX export feed them the same way.
"""

from __future__ import annotations

from pathlib import Path

from liveness.cli import UserError, import_tensorflow

ARCHS = ("livenessnet", "mobilenetv2", "mobilenetv3small")
DEFAULT_ARCH = "livenessnet"
MOBILENET_MIN_SIZE = 32


def _backbone(arch: str, size: int, weights: str | None):
    import keras

    shape = (size, size, 3)
    if arch == "mobilenetv2":
        # alpha 0.35: the narrowest ImageNet-weighted width, for a CPU budget of ~1 ms a face
        return keras.applications.MobileNetV2(input_shape=shape, alpha=0.35, include_top=False, weights=weights, pooling="avg")
    return keras.applications.MobileNetV3Small(
        input_shape=shape, include_top=False, weights=weights, pooling="avg", include_preprocessing=False
    )


def build_model(arch: str = DEFAULT_ARCH, *, input_size: int, classes: int = 2, weights: str | None = None):
    """A fresh model. `weights`: None, 'imagenet' (needs the network once), or a local file."""
    import_tensorflow()
    import keras
    from keras import layers

    from livenessnet import LivenessNet

    if arch not in ARCHS:
        raise UserError(f"--arch must be one of {', '.join(ARCHS)}, got {arch!r}")
    if arch == "livenessnet":
        if weights not in (None, "none"):
            raise UserError("--weights applies to the MobileNet backbones only")
        return LivenessNet.build(input_size, input_size, 3, classes)
    if input_size < MOBILENET_MIN_SIZE:
        raise UserError(f"--arch {arch} needs --input-size {MOBILENET_MIN_SIZE} or more")
    if weights in (None, "none"):
        weights = None
    elif weights != "imagenet" and not Path(weights).is_file():
        raise UserError(f"--weights {weights}: expected none, imagenet or an existing weights file")
    try:
        backbone = _backbone(arch, input_size, weights)
    except Exception as e:  # a failed download or a weights file of another shape
        raise UserError(f"cannot build {arch} with weights {weights}: {str(e).splitlines()[0]}") from None
    inputs = keras.Input((input_size, input_size, 3), name="face")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(inputs)  # MobileNets expect -1..1
    x = backbone(x)
    x = layers.Dropout(0.3, name="head_dropout")(x)
    outputs = layers.Dense(classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=arch)
