"""Face liveness (anti-spoofing): the package the scripts of this suite share.

The Python API in five lines:

    import cv2
    from liveness import Pipeline, load_model

    pipe = Pipeline(load_model("output/liveness"))
    for face in pipe.process(cv2.imread("photo.jpg")):
        print(face.box, face.label, round(face.score, 3), face.live)

Nothing here imports a top-level script; the scripts are thin wrappers around it.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the project folder, never the working directory
OUTPUT = ROOT / "output"
DEFAULT_MODEL = OUTPUT / "liveness"  # train.py writes here; the demo, evaluate.py and the web page read it

LIVE_LABEL = "real"
SPOOF_LABEL = "fake"
# Words in a video's file name that say which class it shows (for --label-from-name).
LABEL_WORDS = {LIVE_LABEL: ("real", "live", "genuine"), SPOOF_LABEL: ("fake", "spoof", "attack", "replay", "print")}

__all__ = ["DEFAULT_MODEL", "LIVE_LABEL", "Pipeline", "ROOT", "SPOOF_LABEL", "label_from_name", "load_model"]


def label_from_name(name: str) -> str | None:
    """'real' / 'fake' when a file name starts with one of LABEL_WORDS, else None."""
    stem = Path(name).stem.lower()
    for label, words in LABEL_WORDS.items():
        if stem.startswith(words):
            return label
    return None


def __getattr__(name: str):
    # Lazy: `import liveness` stays cheap (no OpenCV, no scikit-learn) until the API is used.
    if name == "load_model":
        from liveness.model import load_model

        return load_model
    if name == "Pipeline":
        from liveness.pipeline import Pipeline

        return Pipeline
    raise AttributeError(f"module 'liveness' has no attribute {name!r}")
