"""The CNNs a liveness model can score with, built with their preprocessing inside.

`LivenessNet` is the small CNN of the 2019 PyImageSearch tutorial; the MobileNets are
the usual next step. All of them take (N, S, S, 3) RGB pixels in 0..255 and output
class probabilities, so training, the demo and an ONNX export feed them alike.
"""

from __future__ import annotations

from pathlib import Path

from liveness.cli import import_tensorflow

ARCHS = ("livenessnet", "mobilenetv2", "mobilenetv3small")
DEFAULT_ARCH = "livenessnet"
DEFAULT_INPUT_SIZE = 32  # the tutorial's 32x32 crops
MOBILENET_MIN_SIZE = 32


def import_keras():
    """Keras, with TensorFlow imported first and quietly (see import_tensorflow)."""
    import_tensorflow()
    import keras

    return keras


class LivenessNet:
    """Two blocks of (Conv2D 3x3 -> ReLU -> BatchNorm) x2 -> MaxPool -> Dropout, with 16
    then 32 filters, then Dense(64) -> ReLU -> BatchNorm -> Dropout -> Dense(softmax).
    Pixel scaling is the first layer, so nobody can feed it differently."""

    @staticmethod
    def build(width: int = DEFAULT_INPUT_SIZE, height: int = DEFAULT_INPUT_SIZE, depth: int = 3, classes: int = 2):
        keras = import_keras()
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


# keras.applications builds its BatchNormalization layers with momentum 0.999: their moving
# statistics need thousands of steps to forget where they started, more than a face dataset
# of a few thousand crops trains for. Until then inference normalises with the initial
# statistics (mean 0, variance 1 from scratch), and a MobileNet trained from scratch gave
# the same output for every face. 0.9 (PyTorch's default) follows the data within tens of
# steps, so that validation during training means something; after training, fit_cnn
# re-estimates the statistics under the final weights (training.refresh_batchnorm).
BACKBONE_BN_MOMENTUM = 0.9


def _backbone(arch: str, size: int, weights: str | None):
    keras = import_keras()
    shape = (size, size, 3)
    if arch == "mobilenetv2":
        # alpha 0.35: the narrowest ImageNet-weighted width, for the demo's per-face CPU budget
        net = keras.applications.MobileNetV2(input_shape=shape, alpha=0.35, include_top=False, weights=weights, pooling="avg")
    else:
        net = keras.applications.MobileNetV3Small(
            input_shape=shape, include_top=False, weights=weights, pooling="avg", include_preprocessing=False
        )
    for layer in net.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = BACKBONE_BN_MOMENTUM
    return net


def check_arch(arch: str, input_size: int, weights: str | None) -> None:
    """ValueError for a combination build_model cannot build, before any training starts."""
    if arch not in ARCHS:
        raise ValueError(f"architecture must be one of {', '.join(ARCHS)}, got {arch!r}")
    if arch != "livenessnet" and input_size < MOBILENET_MIN_SIZE:
        raise ValueError(f"{arch} needs an input size of {MOBILENET_MIN_SIZE} or more, got {input_size}")
    if weights in (None, "none"):
        return
    if arch == "livenessnet":
        raise ValueError("pretrained weights apply to the MobileNet backbones only")
    if weights != "imagenet" and not Path(weights).is_file():
        raise ValueError(f"weights {weights}: expected none, imagenet or an existing weights file")


def build_model(arch: str = DEFAULT_ARCH, *, input_size: int = DEFAULT_INPUT_SIZE, classes: int = 2, weights: str | None = None):
    """A fresh model. `weights`: None, 'imagenet' (needs the network once), or a local file.

    Raises ValueError for a combination that cannot be built.
    """
    check_arch(arch, input_size, weights)
    if weights in (None, "none"):
        weights = None
    if arch == "livenessnet":
        return LivenessNet.build(input_size, input_size, 3, classes)
    keras = import_keras()
    from keras import layers

    try:
        backbone = _backbone(arch, input_size, weights)
    except Exception as e:  # a failed download or a weights file of another shape: say which
        raise ValueError(f"cannot build {arch} with weights {weights}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    inputs = keras.Input((input_size, input_size, 3), name="face")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(inputs)  # MobileNets expect -1..1
    x = backbone(x)
    x = layers.Dropout(0.3, name="head_dropout")(x)
    outputs = layers.Dense(classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=arch)
