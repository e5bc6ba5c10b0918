"""``clipforge import-embeddings`` and ``clipforge export-embeddings``: clip-retrieval's layout."""

from __future__ import annotations

from pathlib import Path

import click

from ..progress import progress_bar
from .common import collection_option, model_options
from .output import console, emit, json_option


@click.command("import-embeddings")
@click.argument("folder", type=click.Path(path_type=Path))
@collection_option
@click.option("--model", "model", metavar="SPEC", help="The model that made the embeddings; required to create a collection.")
@click.option("--key-column", default="auto", show_default=True, metavar="NAME|auto|row",
              help="The metadata column that identifies a sample (auto: image_path, else url; row: its position).")
@click.option("--source", default=None, metavar="NAME",
              help="Name of this data set in item keys (default: the folder's name); keeps two data sets apart.")
@click.option("--skip-model-check", is_flag=True,
              help="Do not re-encode a few captions to check that the embeddings come from the collection's model.")
@click.option("--batch-size", type=click.IntRange(min=1), default=4096, show_default=True, help="Rows committed at a time.")
@model_options
@json_option
def import_embeddings(folder, collection, model, key_column, source, skip_model_check, batch_size, device, precision,
                      as_json):
    """Add embeddings in clip-retrieval's layout: FOLDER/img_emb/img_emb_N.npy, text_emb/text_emb_N.npy
    and metadata/metadata_N.parquet.

    Every vector is checked (dimension, finiteness, unit length) before anything is written.
    Images become image items, captions with text embeddings text items, the metadata columns
    their metadata. Re-running adds nothing; an interrupted import resumes.
    """
    from ..index import opening
    from ..index.collection import Collection

    with opening.open_or_create_tentatively(Collection, collection, model, device=device, precision=precision) as coll:
        with progress_bar("importing", unit="rows") as update:
            report = coll.import_embeddings(folder, source=source, key_column=key_column,
                                            check_model_vectors=not skip_model_check, batch_size=batch_size,
                                            on_progress=update)
        result = {"collection": coll.name, "path": str(coll.path), **report.to_dict()}
    emit(result, as_json, _render_import)


def _render_import(result: dict) -> None:
    console.print(
        f"[bold]{result['collection']}[/]: {result['images']} images and {result['texts']} texts imported, "
        f"{result['unchanged']} unchanged, from {result['partitions']} partitions "
        f"({result['partitions_unchanged']} unchanged) in {result['seconds']:.1f} s"
    )
    if result["key_column"]:
        console.print(f"  keyed by {result['key_column']}", markup=False)
    if result["model_check"] is not None:
        console.print(f"  captions re-encoded by the collection's model agree: median cosine {result['model_check']:.3f}")
    if result["no_caption"]:
        console.print(f"  {result['no_caption']} text vectors had no caption and were left out")


@click.command("export-embeddings")
@collection_option
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--rows-per-file", type=click.IntRange(min=1), default=1_000_000, show_default=True)
@click.option("--dtype", type=click.Choice(["float16", "float32"]), default="float16", show_default=True,
              help="float16 is what clip-retrieval writes and the collection stores (exact); autofaiss reads both.")
@json_option
def export_embeddings(collection, out, rows_per_file, dtype, as_json):
    """Write a collection's vectors and metadata in clip-retrieval's layout, into a new folder OUT.

    Images go to img_emb/ (their caption items, if every image has one, to text_emb/), a
    collection of texts alone to text_emb/; metadata/ holds image_path, caption and the items'
    metadata, row for row. clip-retrieval's back end and autofaiss read it as their own.
    """
    from ..index.collection import Collection

    with Collection.open(collection) as coll:
        report = coll.export_embeddings(out, rows_per_file=rows_per_file, dtype=dtype)
        result = {"collection": coll.name, **report.to_dict()}
    emit(result, as_json, _render_export)


def _render_export(result: dict) -> None:
    console.print(f"[bold]{result['collection']}[/]: {result['rows']} {result['kind']} vectors ({result['dtype']}) "
                  f"in {result['files']} files, to {result['path']}, in {result['seconds']:.1f} s", highlight=False)
    if result["texts"] and result["kind"] == "image":
        console.print(f"  with {result['texts']} caption vectors in text_emb/")
    if result["texts_left_out"]:
        console.print(f"  {result['texts_left_out']} texts left out: they are no exported image's caption, and "
                      "clip-retrieval's layout pairs text_emb with img_emb row for row")
