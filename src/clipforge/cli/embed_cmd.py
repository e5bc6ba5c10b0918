"""``clipforge embed``: vectors of a whole source in clip-retrieval's layout, here or on Ray."""

from __future__ import annotations

from pathlib import Path

import click

from ..progress import progress_bar
from .common import model_options
from .output import console, emit, json_option


@click.command("embed")
@click.argument("sources", nargs=-1, required=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="The output folder (clip-retrieval's layout).")
@click.option("--model", "model", metavar="SPEC", required=True, help="The model to embed with.")
@click.option("--ray", "ray", is_flag=False, flag_value="auto", default=None, metavar="[ADDRESS]",
              help="Run on a Ray cluster: an address (ray://head:10001), or alone for the one `ray start` "
                   "left on this machine, else a new local one.")
@click.option("--block-size", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Images per output block (one npy + parquet pair); the unit of resuming.")
@click.option("--image-column", default="image", show_default=True, help="A table's column of image paths or URLs.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Decode processes without --ray (default: one per core).")
@model_options
@json_option
def embed(sources, out, model, ray, block_size, image_column, batch_size, workers, device, precision, as_json):
    """Embed every image of SOURCES (image folders, CSV/Parquet tables of paths or URLs,
    WebDataset shards such as 'shards/{00000..00099}.tar') into OUT.

    OUT gets img_emb/img_emb_N.npy (float16 unit vectors) and metadata/metadata_N.parquet
    (image_path and the listed metadata, row for row) per block of images, and
    skipped/skipped_N.parquet with each unreadable image's reason. A rerun into the same OUT
    does only the blocks not yet written. `clipforge import-embeddings OUT` puts the result in a
    collection.
    """
    from ..index.embed import embed as run

    with progress_bar("embedding", unit="blocks") as update:
        report = run(list(sources), out, model, ray=ray, block_size=block_size, image_column=image_column,
                     batch_size=batch_size, workers=workers, device=device, precision=precision, on_block=update)
    emit(report.to_dict(), as_json, _render)


def _render(result: dict) -> None:
    console.print(
        f"[bold]{result['out']}[/]: {result['embedded']} images embedded, {result['skipped']} skipped, "
        f"{result['blocks']} blocks ({result['blocks_done_before']} done before) on {result['engine']} "
        f"in {result['seconds']:.1f} s"
    )
