"""``clipforge classify``: zero-shot classification with a prompt ensemble."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from ..errors import InputError, NotFoundError
from .common import model_options, text_memory_option
from .output import console, emit, json_option


@click.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--labels", required=True, help="Comma-separated class names, e.g. 'cat,dog,bird'.")
@click.option("--model", "model", metavar="SPEC", default=None,
              help="Model spec; defaults to the model of --collection.")
@click.option("-c", "--collection", default=None, help="Use this collection's model.")
@click.option("--templates", type=click.Path(path_type=Path), default=None,
              help="File with one prompt template per line, each with a '{}' for the label.")
@click.option("--top", type=click.IntRange(min=1), default=5, show_default=True, help="Labels to show per image.")
@text_memory_option
@model_options
@json_option
def classify(images, labels, model, collection, templates, top, text_memory, device, precision, as_json):
    """Zero-shot classify IMAGES against LABELS."""
    from ..models import load_encoder
    from ..search.classify import DEFAULT_TEMPLATES, classify as run_classify, load_templates
    from ..models.text_memory import resolve_text_memory

    names = [label.strip() for label in labels.split(",") if label.strip()]
    if len(names) < 2:
        raise InputError("give at least two labels, comma-separated: --labels 'cat,dog'")
    for image in images:
        if not image.exists():
            raise NotFoundError(f"{image} does not exist")
    spec = model or _collection_model(collection)
    prompt_templates = load_templates(templates) if templates else list(DEFAULT_TEMPLATES)
    encoder = load_encoder(spec, device=device, precision=precision)
    memory = resolve_text_memory(encoder, text_memory)
    predictions = run_classify(encoder, [str(p) for p in images], names, prompt_templates, memory)
    result = {
        "model": str(encoder.spec),
        "templates": len(prompt_templates),
        "text_memory": memory.describe() if memory is not None else None,
        "results": [
            {"image": str(path), "predictions": [p.__dict__ for p in ranked[:top]]}
            for path, ranked in zip(images, predictions)
        ],
    }
    emit(result, as_json, _render)


def _collection_model(collection: str | None) -> str:
    if collection is None:
        raise InputError("give --model SPEC or -c COLLECTION to choose the model")
    from ..index.collection import Collection

    with Collection.open(collection) as coll:
        return coll.model_spec


def _render(result: dict) -> None:
    memory = result["text_memory"]
    if memory:
        console.print(f"[dim]images read through the text memory of {memory['source']} "
                      f"({memory['captions']:,} captions); --text-memory off for prompts only[/dim]")
    for entry in result["results"]:
        table = Table(title=entry["image"], show_header=True, header_style="bold", box=None, title_justify="left")
        table.add_column("label")
        table.add_column("probability", justify="right")
        table.add_column("cosine", justify="right")
        for p in entry["predictions"]:
            table.add_row(p["label"], f"{p['probability']:.3f}", f"{p['score']:.4f}")
        console.print(table)
