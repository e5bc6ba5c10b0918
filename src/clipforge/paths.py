"""Where collections live: a bare name under the data directory, anything with a slash a path."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import InputError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def data_home() -> Path:
    """``$CLIPFORGE_HOME``, else ``$XDG_DATA_HOME/clipforge``, else ~/.local/share/clipforge."""
    if os.environ.get("CLIPFORGE_HOME"):
        return Path(os.environ["CLIPFORGE_HOME"]).expanduser().absolute()
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share") / "clipforge"


def resolve_collection_path(name_or_path: str | os.PathLike) -> Path:
    text = os.fspath(name_or_path)
    if not text.strip():
        raise InputError("collection name is empty")
    if "/" in text or os.sep in text:
        return Path(text).expanduser().resolve()
    if not _NAME.match(text):
        raise InputError(
            f"bad collection name {text!r}: use letters, digits, '.', '_' and '-', or a path with a '/'"
        )
    return data_home() / text


def readable_path(path: str) -> str:
    """A path for people: bytes that are not UTF-8 (held as lone surrogates) shown as ``\\xNN``."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
