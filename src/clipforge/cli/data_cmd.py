"""``clipforge data``: build image-text datasets offline, in clipforge's pair-dataset format."""

from __future__ import annotations

import click

from .main import LazyGroup

# name -> ("module:attribute" relative to clipforge.cli, one-line help)
DATA_COMMANDS = {
    "shapes": ("data_shapes_cmd:shapes", "Render captioned scenes of coloured shapes."),
    "emoji": ("data_builders_cmd:emoji", "Emoji images with CLDR names and keywords."),
    "clipart": ("data_builders_cmd:clipart", "Open Clip Art Library images with titles and tags."),
}


@click.group("data", cls=LazyGroup, lazy_commands=DATA_COMMANDS)
def data_group() -> None:
    """Build image-text datasets from local sources (no network)."""
