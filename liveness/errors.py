"""The exceptions the package raises: plain messages, no command-line flags in them.

The scripts turn any `LivenessError` into one `[ERROR]` line and a non-zero exit
(`liveness.cli.cli_main`); Python callers catch them like any other exception.
"""

from __future__ import annotations


class LivenessError(Exception):
    """Something the caller can fix: a bad model, input, dataset or output path."""


class ModelError(LivenessError):
    """A model folder that is missing, incomplete, edited or of an unknown format."""


class SourceError(LivenessError):
    """A frame source (file, webcam, stream) that does not open or delivers nothing."""


class DataError(LivenessError):
    """A dataset that cannot be trained or evaluated on as it is."""


class OutputError(LivenessError):
    """A file that could not be written (full disk, permissions, a folder in its place)."""
