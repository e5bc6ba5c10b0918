"""``clipforge data shapes OUT``: render the synthetic shapes dataset."""

from __future__ import annotations

import click

from .output import emit, err_console, json_option


@click.command("shapes")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--n", "n", type=int, default=5000, show_default=True, help="Number of scenes (images).")
@click.option("--seed", type=int, default=0, show_default=True, help="Scene i depends only on (seed, i).")
@click.option("--size", type=int, default=64, show_default=True, help="Image side in pixels.")
@click.option("--force", is_flag=True, help="Replace a dataset already in OUT.")
@json_option
def shapes(out: str, n: int, seed: int, size: int, force: bool, as_json: bool) -> None:
    """Render N captioned scenes of two coloured shapes into OUT, in the pair-dataset format
    (pairs.csv with fixed train/val/test splits of 80/10/10, images/, dataset.json)."""
    from ..data.shapes import write_shapes

    with err_console.status(f"rendering {n} scenes", spinner="dots"):
        counts = write_shapes(out, n=n, seed=seed, size=size, force=force)
    emit(
        {"out": out, **counts},
        as_json,
        lambda c: click.echo(
            f"wrote {c['images']} images, {c['captions']} captions to {out} "
            f"(train {c['train']}, val {c['val']}, test {c['test']})"
        ),
    )
