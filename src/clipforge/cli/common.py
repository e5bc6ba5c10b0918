"""Options and helpers shared by the commands."""

from __future__ import annotations

import click

from ..models.options import DEVICES, PRECISIONS

collection_option = click.option(
    "-c", "--collection", "collection", required=True, metavar="NAME|PATH",
    help="Collection name (under $CLIPFORGE_HOME) or path (anything with a '/').",
)


text_memory_option = click.option(
    "--text-memory", "text_memory", default="auto", show_default=True, metavar="auto|off|FILE",
    help="Read images through a caption memory before classifying: auto = the model's own, if it "
         "ships one; off = prompts only, as CLIP_benchmark; FILE = a .safetensors memory or captions, one per line.",
)


def model_options(func):
    """--device and --precision, for every command that runs a model."""
    func = click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
                        help="Numeric precision; auto = bf16 where the hardware runs it natively.")(func)
    func = click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
                        help="Where to run the model.")(func)
    return func


def positive_k(ctx, param, value):
    if value is not None and value < 1:
        raise click.BadParameter(f"must be at least 1, got {value}")
    return value
