"""``clipforge search``: text to image, image to image, image to text, image plus text."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from ..errors import InputError
from ..paths import readable_path, resolve_collection_path
from . import forward
from .common import collection_option, model_options, positive_k
from .output import console, emit, json_option


@click.command()
@click.argument("query", required=False)
@collection_option
@click.option("--image", "image", type=click.Path(path_type=Path), help="Query image (image search).")
@click.option("--text", "text", help="Text query, or with --image the instruction to apply to it.")
@click.option("--weight", "text_weight", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="With --image and text: the weight of the text in the composed query.")
@click.option("--target", type=click.Choice(["image", "text"]), default="image", show_default=True,
              help="What to return: images, or the collection's texts (image to text).")
@click.option("--vector-file", type=click.Path(path_type=Path), default=None,
              help="Query by stored vectors: a .npy file of one vector (d,) or a batch (n, d).")
@click.option("-k", "k", type=int, default=10, show_default=True, callback=positive_k, help="Number of results.")
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True,
              help="Skip this many results: the start of the page.")
@click.option("--min-score", type=float, default=None, help="Drop results whose cosine similarity is below this.")
@click.option("--where", "where", multiple=True, metavar="EXPR",
              help="Only items whose metadata meets EXPR: taken>=2023-06-01, camera~Pixel, folder=..., "
                   "album in a,b, gps exists. Repeat it: all must hold.")
@click.option("--local", is_flag=True,
              help="Answer in this process even when a `clipforge serve` of the collection runs.")
@click.option("--model", "model", default=None, metavar="SPEC",
              help="Encode the query with this model rather than the collection's own: one whose vectors are "
                   "comparable, such as an ONNX export of the same weights (onnx:DIR). Answers here.")
@model_options
@json_option
def search(query, collection, image, text, text_weight, target, vector_file, k, offset, min_score, where, local,
           model, device, precision, as_json):
    """Search a collection. QUERY is text; use --image for an image query, --vector-file for vectors.

    When a `clipforge serve` of the collection runs on this machine, a text or image query is
    answered by it (its model is loaded already); --local, --model, --device or --precision
    answer here."""
    if query is not None and text is not None:
        raise InputError("give the text query either as QUERY or as --text, not both")
    text = query if query is not None else text
    if vector_file is not None and (text is not None or image is not None):
        raise InputError("give --vector-file alone, not with a text or an image query")
    if text is None and image is None and vector_file is None:
        raise InputError("empty query: give QUERY text, --image, both, or --vector-file")
    page = {"k": k, "offset": offset, "target": target, "min_score": min_score, "where": list(where)}
    query_out = {"text": text, "image": str(image) if image else None, "text_weight": text_weight, "target": target}
    answered = None
    # A server runs its own model, device and precision: a query that names any of them is answered here.
    # A blank instruction beside an image is an error here, and no text to the server.
    blank = text is not None and not text.strip()
    if vector_file is None and not local and model is None and device == precision == "auto" and not blank:
        answered = forward.search(resolve_collection_path(collection),
                                  {**page, "text": text, "text_weight": text_weight}, image)
    if answered is not None:
        name, results = resolve_collection_path(collection).name, answered[1]
    else:
        name, query_out, results = _search_here(collection, model, device, precision, page, query_out, vector_file,
                                                text=text, image=image, text_weight=text_weight)
    emit({"collection": name, "query": {**query_out, "where": list(where)}, "offset": offset, **results,
          "answered_by": answered[0] if answered else None}, as_json, _render)


def _search_here(collection, model, device, precision, page, query_out, vector_file, **query):
    """Search in this process: (collection name, query as reported, results)."""
    from ..index.collection import Collection
    from ..search.queries import load_query_vectors

    page = {**page, "where": page["where"] or None}
    with Collection.open(collection, model, device=device, precision=precision) as coll:
        if vector_file is None:
            return coll.name, query_out, _page(coll.search(**query, **page))
        vectors = load_query_vectors(vector_file)
        pages = coll.search_vectors(vectors, **page)
        query_out = {"vector_file": str(vector_file), "vectors": len(pages), "target": page["target"]}
        # A batch (n, d) gives a page per vector; one vector (d,) gives one page, as a text does.
        return coll.name, query_out, {"pages": [_page(hits) for hits in pages]} if vectors.ndim == 2 else _page(pages[0])


def _page(hits) -> dict:
    return {"results": [hit.to_dict() for hit in hits], "has_more": hits.has_more}


def _render(result: dict) -> None:
    if "pages" in result:
        for number, page in enumerate(result["pages"], 1):
            console.print(f"query {number}", style="bold")
            _render_hits(page["results"], result["offset"])
        return
    _render_hits(result["results"], result["offset"])


def _render_hits(hits: list[dict], offset: int) -> None:
    if not hits:
        console.print("no results")
        return
    table = Table(show_header=True, header_style="bold", box=None)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("item")
    for rank, hit in enumerate(hits, offset + 1):
        table.add_row(str(rank), f"{hit['score']:.4f}", readable_path(hit["path"]) if hit["path"] else hit["text"])
    console.print(table)
