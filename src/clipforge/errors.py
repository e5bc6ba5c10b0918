"""Typed exceptions.

Every error a user can cause is a ClipforgeError. The CLI prints its message as one line and
exits with its ``exit_code``; anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class ClipforgeError(Exception):
    """Base class: a user-facing error with a one-line message."""

    exit_code = 1


class InputError(ClipforgeError):
    """Bad user input: an empty query, a k of 0, a file that does not exist."""

    exit_code = 2


class NotFoundError(ClipforgeError):
    """A path, collection or item that does not exist."""

    exit_code = 3


class ModelLoadError(ClipforgeError):
    """A model spec that cannot be parsed or loaded."""

    exit_code = 4


class ModelMismatchError(ClipforgeError):
    """A collection opened with a model (or dimension) other than the one it was built with."""

    exit_code = 5


class CollectionError(ClipforgeError):
    """A collection directory that is damaged or of an unknown schema."""

    exit_code = 6


class ImageDecodeError(ClipforgeError):
    """An image that cannot be decoded. ``reason`` is short and stored in the collection."""

    exit_code = 7

    def __init__(self, reason: str, path: str | None = None):
        self.reason = reason
        self.path = path
        super().__init__(f"{path}: {reason}" if path else reason)
