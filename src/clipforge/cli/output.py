"""Printing results: JSON for programs, rich tables for people."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console

# Piped output is never cut to 80 columns: a path truncated with an ellipsis is useless to grep.
console = Console() if sys.stdout.isatty() else Console(width=100_000)
err_console = Console(stderr=True)


# A file name that is not UTF-8 reaches Python as lone surrogates, which no encoder writes.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def to_json(data: Any) -> str:
    """JSON text; lone surrogates become ``\\udcXX`` escapes, which JSON parsers read back losslessly."""
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def emit(data: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    """Print ``data`` as JSON on stdout, or hand it to ``render`` for a human."""
    if as_json:
        click.echo(to_json(data))
        sys.stdout.flush()
    else:
        render(data)


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
