"""``clipforge search``: text to image, image to image, image to text, image plus text."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from ..errors import InputError
from ..paths import readable_path
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
@click.option("-k", "k", type=int, default=10, show_default=True, callback=positive_k, help="Number of results.")
@click.option("--min-score", type=float, default=None, help="Drop results whose cosine similarity is below this.")
@model_options
@json_option
def search(query, collection, image, text, text_weight, target, k, min_score, device, precision, as_json):
    """Search a collection. QUERY is text; use --image for an image query."""
    from ..index.collection import Collection

    if query is not None and text is not None:
        raise InputError("give the text query either as QUERY or as --text, not both")
    text = query if query is not None else text
    if text is None and image is None:
        raise InputError("empty query: give QUERY text, --image, or both")
    with Collection.open(collection, device=device, precision=precision) as coll:
        hits = coll.search(text=text, image=image, k=k, target=target, text_weight=text_weight, min_score=min_score)
        result = {
            "collection": coll.name,
            "query": {"text": text, "image": str(image) if image else None, "text_weight": text_weight, "target": target},
            "results": [hit.to_dict() for hit in hits],
        }
    emit(result, as_json, _render)


def _render(result: dict) -> None:
    hits = result["results"]
    if not hits:
        console.print("no results")
        return
    table = Table(show_header=True, header_style="bold", box=None)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("item")
    for rank, hit in enumerate(hits, 1):
        table.add_row(str(rank), f"{hit['score']:.4f}", readable_path(hit["path"]) if hit["path"] else hit["text"])
    console.print(table)
