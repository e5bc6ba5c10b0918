"""``clipforge index`` and ``clipforge index-texts``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import click

from ..errors import InputError, NotFoundError
from ..paths import readable_path
from ..progress import progress_bar
from .common import collection_option, model_options
from .output import console, emit, json_option

_TABLE_OPTIONS = [
    click.option("--image-column", default=None, metavar="NAME",
                 help="Tables: the column naming each row's image (a path or an http(s) URL). [default: image]"),
    click.option("--meta-columns", default=None, metavar="A,B,...",
                 help="Tables: the columns kept as metadata (default: all but the image column)."),
    click.option("--url-timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
                 help="Tables: give up on a URL after this long (default: 20)."),
    click.option("--max-download-mb", type=click.FloatRange(min=0, min_open=True), default=None,
                 help="Tables: skip a URL whose image is larger than this (default: 50 MB)."),
    click.option("--retry-skipped", is_flag=True,
                 help="Try again the table rows and shard members that failed before, though unchanged."),
]


def index_options(func):
    """--index, --index-memory and --query-model: settings kept by the collection."""
    func = click.option("--query-model", "query_model", default=None, metavar="SPEC|own",
                        help="Encode later queries with this model: an export of the collection's model "
                             "(onnx:DIR, no torch needed), refused unless its vectors are comparable; "
                             "own: the collection's own model. Kept.")(func)
    func = click.option("--index-memory", "index_memory", default=None, metavar="SIZE",
                        help="Memory the search index may use, e.g. 4GB (default: a quarter of RAM); kept.")(func)
    return click.option("--index", "index_type", default=None, metavar="TYPE",
                        help="Search index: auto (chosen by size and --index-memory) or a FAISS factory string "
                             "such as Flat, HNSW32 or IVF4096,PQ64x4fs; kept for later runs. [default: auto]")(func)


def update_index(coll) -> list[str]:
    """Bring the search index up to date after a write, with a bar saying what is being done."""
    done = []
    for job in coll.indexes.due():
        with progress_bar(job.describe(), unit="vectors") as update:
            done += [j.describe() for j in coll.update_index([job.kind], on_progress=update)]
    return done


def table_options(func):
    """The options of tables (and --retry-skipped, for shards too)."""
    for option in reversed(_TABLE_OPTIONS):
        func = option(func)
    return func


@click.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@collection_option
@click.option("--model", "model", metavar="SPEC", help="Model spec (hf:<hub id>, hf:<dir>); required to create a collection.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=None, help="Decode processes (default: one per core; 0 = none).")
@click.option("--max-pixels", type=click.IntRange(min=1), default=None, help="Refuse images above this many pixels (decompression bombs).")
@click.option("--max-file-mb", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Skip files larger than this (default: 1024 MiB).")
@table_options
@index_options
@model_options
@json_option
def index(sources, collection, model, batch_size, workers, max_pixels, max_file_mb, image_column, meta_columns,
          url_timeout, max_download_mb, retry_skipped, index_type, index_memory, query_model, device, precision,
          as_json):
    """Index image files and folders, tables of images, or WebDataset shards into a collection.

    SOURCES are folders and image files; CSV/TSV/Parquet tables naming an image per row (a path
    relative to the table, an absolute path or an http(s) URL; other columns become metadata);
    or .tar shards, brace patterns allowed (shards/{00000..00009}.tar).

    Re-running is incremental: unchanged files are skipped, moved files reuse their vectors,
    vanished files are marked removed, and undecodable files are listed by `clipforge info`.
    """
    from ..index import opening
    from ..index.collection import Collection

    tables, shards, files = split_sources(sources)
    if not tables and (image_column or meta_columns or url_timeout or max_download_mb):
        raise InputError("--image-column, --meta-columns, --url-timeout and --max-download-mb apply to tables "
                         "(.csv, .tsv, .parquet)")
    for source in files:
        if not source.expanduser().exists():
            raise NotFoundError(f"{source} does not exist")
    limits = {"batch_size": batch_size, "workers": workers, "max_pixels": max_pixels,
              "max_bytes": None if max_file_mb is None else int(max_file_mb * (1 << 20))}
    with opening.open_or_create_tentatively(Collection, collection, model, index=index_type,
                                            index_memory=index_memory, device=device, precision=precision) as coll:
        if query_model is not None:
            coll.set_query_model(query_model)
        reports = []
        with progress_bar("indexing") as update:
            if files:
                reports.append(coll.add_images(files, on_progress=update, update_index=False, **limits))
            for table in tables:
                reports.append(coll.add_table(
                    table, image_column=image_column or "image", retry_skipped=retry_skipped, on_progress=update,
                    meta_columns=None if meta_columns is None else [c.strip() for c in meta_columns.split(",") if c.strip()],
                    url_timeout_s=url_timeout, url_max_bytes=None if max_download_mb is None else int(max_download_mb * (1 << 20)),
                    **limits))
            if shards:
                reports.append(coll.add_shards(shards, retry_skipped=retry_skipped, on_progress=update, **limits))
        result = {"collection": coll.name, "path": str(coll.path), **summed(r.to_dict() for r in reports)}
        result["index"] = update_index(coll)
    emit(result, as_json, _render_report)


def split_sources(sources) -> tuple[list[Path], list[str], list[Path]]:
    """(tables, shards, files and folders) among what ``index`` was given."""
    from ..index.shard_ingest import is_shard_spec
    from ..index.tables import is_table

    tables = [s for s in sources if is_table(s)]
    shards = [str(s) for s in sources if not is_table(s) and is_shard_spec(str(s))]
    files = [s for s in sources if not is_table(s) and not is_shard_spec(str(s))]
    return tables, shards, files


def summed(reports) -> dict:
    """One report of several runs: counts added, failures joined."""
    total: dict = {}
    for report in reports:
        for key, value in report.items():
            total[key] = total.get(key, [] if isinstance(value, list) else 0) + value
    total["seconds"] = round(total.get("seconds", 0), 3)
    return total


def _render_report(result: dict) -> None:
    console.print(
        f"[bold]{result['collection']}[/]: {result['encoded']} encoded, {result['reused']} reused, "
        f"{result['unchanged']} unchanged, {result['skipped']} skipped, {result['removed']} removed"
        + (f", {result['updated']} metadata updated" if result.get("updated") else "")
        + f" in {result['seconds']:.1f} s"
    )
    for failure in result["failures"][:20]:
        console.print(f"  skipped {readable_path(failure['path'])}: {failure['reason']}", markup=False)
    if len(result["failures"]) > 20:
        console.print(f"  ... and {len(result['failures']) - 20} more (see `clipforge info`)")
    for done in result.get("index", []):
        console.print(f"  {done}", markup=False, highlight=False)


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
@index_options
@model_options
@json_option
def index_texts(table, collection, model, text_column, id_column, index_type, index_memory, query_model, device,
                precision, as_json):
    """Add texts (captions, descriptions) to a collection for image-to-text search.

    TABLE is a CSV or TSV with a header (other columns become metadata), or a TXT file with
    one text per line. Adding the same texts again encodes nothing.
    """
    from ..index import opening
    from ..index.collection import Collection

    texts, ids, metadata = read_text_table(table, text_column, id_column)
    if not texts:
        raise InputError(f"{table} holds no texts")
    with opening.open_or_create_tentatively(Collection, collection, model, index=index_type,
                                            index_memory=index_memory, device=device, precision=precision) as coll:
        if query_model is not None:
            coll.set_query_model(query_model)
        with progress_bar("encoding texts", unit="texts") as update:
            report = coll.add_texts(texts, ids=ids, metadata=metadata, on_progress=update, update_index=False)
        result = {"collection": coll.name, "path": str(coll.path), **report.to_dict(), "index": update_index(coll)}
    emit(result, as_json, _render_report)
