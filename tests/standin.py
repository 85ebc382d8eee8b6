"""A stand-in for the contract's LivenessModel (liveness/model.py), as far as explain.py
and export.py use it: labels, threshold, padding, the colour-LBP scorer and/or the
Keras CNN, score() and decide()."""

from __future__ import annotations

import numpy as np


class StandInModel:
    labels = ["fake", "real"]
    live_label, attack_label = "real", "fake"
    padding = 0.0

    def __init__(self, *, lbp=None, cnn=None, threshold: float = 0.5) -> None:
        self.lbp, self.cnn, self.threshold = lbp, cnn, threshold
        self.scorer = "fusion" if lbp is not None and cnn is not None else ("lbp" if lbp is not None else "cnn")
        self.input_size = int(cnn.input_shape[1]) if cnn is not None else None

    def keras_model(self):
        return self.cnn

    def score(self, faces) -> np.ndarray:
        from liveness.dataset import prepare_faces

        if self.cnn is None:
            return self.lbp.score(faces)
        cnn = self.cnn(prepare_faces(list(faces), self.input_size).astype(np.float32), training=False).numpy()[:, 1]
        return cnn if self.lbp is None else (cnn + self.lbp.score(faces)) / 2

    def decide(self, scores) -> list[str]:
        return [self.live_label if s >= self.threshold else self.attack_label for s in scores]
