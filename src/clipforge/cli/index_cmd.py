"""``clipforge index`` and ``clipforge index-texts``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import click

from ..errors import InputError, NotFoundError
from ..paths import readable_path
from .common import collection_option, model_options, progress_bar
from .output import console, emit, json_option


@click.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@collection_option
@click.option("--model", "model", metavar="SPEC", help="Model spec (hf:<hub id>, hf:<dir>); required to create a collection.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=None, help="Decode processes (default: one per core; 0 = none).")
@click.option("--max-pixels", type=click.IntRange(min=1), default=None, help="Refuse images above this many pixels (decompression bombs).")
@click.option("--max-file-mb", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Skip files larger than this (default: 1024 MiB).")
@model_options
@json_option
def index(sources, collection, model, batch_size, workers, max_pixels, max_file_mb, device, precision, as_json):
    """Index image files and folders into a collection.

    Re-running is incremental: unchanged files are skipped, moved files reuse their vectors,
    vanished files are marked removed, and undecodable files are listed by `clipforge info`.
    """
    from ..index.collection import Collection

    for source in sources:
        if not source.expanduser().exists():
            raise NotFoundError(f"{source} does not exist")
    with Collection.open_or_create(collection, model, device=device, precision=precision) as coll:
        with progress_bar("indexing") as update:
            report = coll.add_images(sources, batch_size=batch_size, workers=workers,
                                     max_pixels=max_pixels, on_progress=update,
                                     max_bytes=None if max_file_mb is None else int(max_file_mb * (1 << 20)))
        result = {"collection": coll.name, "path": str(coll.path), **report.to_dict()}
    emit(result, as_json, _render_report)


def _render_report(result: dict) -> None:
    console.print(
        f"[bold]{result['collection']}[/]: {result['encoded']} encoded, {result['reused']} reused, "
        f"{result['unchanged']} unchanged, {result['skipped']} skipped, {result['removed']} removed "
        f"in {result['seconds']:.1f} s"
    )
    for failure in result["failures"][:20]:
        console.print(f"  skipped {readable_path(failure['path'])}: {failure['reason']}", markup=False)
    if len(result["failures"]) > 20:
        console.print(f"  ... and {len(result['failures']) - 20} more (see `clipforge info`)")


def read_text_table(path: Path, text_column: str, id_column: str | None) -> tuple[list[str], list[str] | None, list[dict]]:
    """Texts (with optional ids and the other columns as metadata) from CSV, TSV or TXT."""
    if not path.exists():
        raise NotFoundError(f"{path} does not exist")
    try:
        content = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {path}: {e}") from None
    if path.suffix.lower() == ".txt":
        lines = [line.strip() for line in content.splitlines() if line.strip()]
        return lines, None, [{} for _ in lines]
    reader = csv.DictReader(io.StringIO(content), delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
    columns = reader.fieldnames or []
    for wanted in filter(None, (text_column, id_column)):
        if wanted not in columns:
            raise InputError(f"{path} has no column {wanted!r} (columns: {', '.join(columns) or 'none'})")
    texts, ids, metadata = [], [] if id_column else None, []
    for line_number, row in enumerate(reader, start=2):
        text = (row.get(text_column) or "").strip()
        if not text:
            raise InputError(f"{path}:{line_number}: empty {text_column!r}")
        texts.append(text)
        if ids is not None:
            ids.append(row[id_column])
        metadata.append({k: v for k, v in row.items() if k not in (text_column, id_column) and k is not None})
    return texts, ids, metadata


@click.command("index-texts")
@click.argument("table", type=click.Path(path_type=Path))
@collection_option
@click.option("--model", "model", metavar="SPEC", help="Model spec; required to create a collection.")
@click.option("--text-column", default="text", show_default=True, help="Column holding the text (CSV/TSV).")
@click.option("--id-column", default=None, help="Column with a stable id; re-adding an id replaces its text.")
@model_options
@json_option
def index_texts(table, collection, model, text_column, id_column, device, precision, as_json):
    """Add texts (captions, descriptions) to a collection for image-to-text search.

    TABLE is a CSV or TSV with a header (other columns become metadata), or a TXT file with
    one text per line. Adding the same texts again encodes nothing.
    """
    from ..index.collection import Collection

    texts, ids, metadata = read_text_table(table, text_column, id_column)
    if not texts:
        raise InputError(f"{table} holds no texts")
    with Collection.open_or_create(collection, model, device=device, precision=precision) as coll:
        with progress_bar("encoding texts", unit="texts") as update:
            report = coll.add_texts(texts, ids=ids, metadata=metadata, on_progress=update)
        result = {"collection": coll.name, "path": str(coll.path), **report.to_dict()}
    emit(result, as_json, _render_report)
