"""Shared building blocks of the liveness script suite.

The top-level scripts (gather_examples.py, train.py, evaluate.py, liveness_demo.py)
stay thin; what two of them need lives here, once.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the project folder, never the working directory

# Crops are stored on disk at this size; models resize from it. Defined once.
FACE_SIZE = 32
LIVE_LABEL = "real"
SPOOF_LABEL = "fake"
# Words in a video's file name that say which class it shows (for --label-from-name).
LABEL_WORDS = {LIVE_LABEL: ("real", "live", "genuine"), SPOOF_LABEL: ("fake", "spoof", "attack", "replay", "print")}


def label_from_name(name: str) -> str | None:
    """'real' / 'fake' when a file name starts with one of LABEL_WORDS, else None."""
    stem = Path(name).stem.lower()
    for label, words in LABEL_WORDS.items():
        if stem.startswith(words):
            return label
    return None
