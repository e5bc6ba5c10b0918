"""``clipforge eval``: retrieval and zero-shot benchmarks, and comparing their results."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table
from rich.text import Text

from ..errors import InputError
from .common import model_options, text_memory_option
from .output import console, emit, json_option

_data_path = click.Path(path_type=Path)
batch_option = click.option(
    "--batch-size", type=click.IntRange(min=1), default=64, show_default=True, help="Images per model batch."
)
out_option = click.option("--out", type=_data_path, default=None, help="Also write the result JSON to this file.")
split_option = click.option(
    "--split", default=None, help="Split to evaluate (default: test where the data has splits; else everything)."
)


@click.group("eval")
def eval_group() -> None:
    """Benchmarks computed as CLIP_benchmark computes them: retrieval and zero-shot.

    \b
    clipforge eval retrieval --model SPEC --data dataset_coco.json --images coco/ --out r.json
    clipforge eval zeroshot --model SPEC --data imagenet/ --split val --classnames names.txt
    clipforge eval compare a.json b.json
    """


def _recall_k(ctx, param, value: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(k) for k in value.split(",") if k.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None
    if not ks or min(ks) < 1:
        raise click.BadParameter("every K must be at least 1")
    return ks


@eval_group.command()
@click.option("--model", metavar="SPEC", default=None, help="Model spec; with -c, must be the collection's model.")
@click.option("-c", "--collection", default=None, metavar="NAME|PATH",
              help="Use this collection's stored image vectors instead of encoding the images.")
@click.option("--data", required=True, type=_data_path,
              help="Karpathy, COCO-captions or image/caption-list JSON; a Flickr or pairs CSV/TSV/Parquet table; "
                   "a CLIP_benchmark webdataset folder or .tar; or a folder of images with .txt captions.")
@click.option("--images", type=_data_path, default=None, help="Root of relative image paths (default: beside --data).")
@split_option
@click.option("--recall-k", default="1,5,10", show_default=True, callback=_recall_k, help="Comma-separated K values.")
@batch_option
@out_option
@model_options
@json_option
def retrieval(model, collection, data, images, split, recall_k, batch_size, out, device, precision, as_json):
    """Text-to-image and image-to-text Recall@K on a caption dataset."""
    from ..eval import EncodeConfig, RetrievalConfig, load_retrieval_dataset
    from ..eval.evaluate import evaluate_retrieval, evaluate_retrieval_from_collection

    if not model and not collection:
        raise InputError("give --model SPEC, or -c COLLECTION to reuse its stored vectors")
    dataset = load_retrieval_dataset(data, images=images, split=split)
    click.echo(f"evaluating {dataset.describe()}", err=True)
    config = RetrievalConfig(recall_k=recall_k, encode=EncodeConfig(image_batch_size=batch_size))
    if collection:
        result = evaluate_retrieval_from_collection(collection, dataset, config, model, device, precision)
    else:
        from ..models import load_encoder

        result = evaluate_retrieval(load_encoder(model, device, precision), dataset, config)
    _finish(result.to_dict(), out, as_json)


@eval_group.command()
@click.option("--model", metavar="SPEC", required=True, help="Model spec, e.g. hf:openai/clip-vit-base-patch32.")
@click.option("--data", required=True, type=_data_path, help="ImageFolder, or a CLIP_benchmark webdataset.")
@split_option
@click.option("--classnames", type=_data_path, default=None, help="File with one class name per line.")
@click.option("--templates", default=None, metavar="SET|FILE",
              help="openai-imagenet-80 (default), openai-imagenet-7, or a file with one template per line.")
@text_memory_option
@batch_option
@out_option
@model_options
@json_option
def zeroshot(model, data, split, classnames, templates, text_memory, batch_size, out, device, precision, as_json):
    """Zero-shot top-1/top-5 accuracy and mean per-class recall."""
    from ..eval import EncodeConfig, ZeroShotConfig, evaluate_zeroshot, load_classification_dataset
    from ..eval.templates import resolve_templates
    from ..models import load_encoder

    dataset = load_classification_dataset(data, split=split, classnames=classnames)
    resolve_templates(templates, dataset.templates)  # a bad template fails before the model loads
    click.echo(f"evaluating {dataset.describe()}", err=True)
    config = ZeroShotConfig(templates=templates, text_memory=text_memory,
                            encode=EncodeConfig(image_batch_size=batch_size))
    result = evaluate_zeroshot(load_encoder(model, device, precision), dataset, config)
    _finish(result.to_dict(), out, as_json)


@eval_group.command(name="compare")
@click.argument("files", nargs=-1, required=True, type=_data_path)
@json_option
def compare_cmd(files, as_json):
    """Show the metrics of several result files side by side."""
    from ..eval.report import compare, load_result

    if len(files) < 2:
        raise InputError("give at least two result files to compare")
    results = [load_result(f) for f in files]
    rows = compare(results)
    data = {"files": [str(f) for f in files], "metrics": {key: values for key, values in rows}}
    emit(data, as_json, lambda _: _render_compare(files, results, rows))


def _finish(result: dict, out: Path | None, as_json: bool) -> None:
    from ..eval.report import write_result

    if out is not None:
        write_result(result, out)
    emit(result, as_json, _render_result)


def _render_result(result: dict) -> None:
    from ..eval.report import format_metric

    title = f"{result['task']}: {result['dataset']}  ({result['model']})"
    table = Table(title=Text(title), title_justify="left", header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result["metrics"].items():
        table.add_row(key, format_metric(key, value))
    console.print(table)
    details = ", ".join(f"{k}={_detail(v)}" for k, v in result.get("details", {}).items())
    console.print(f"recall and accuracy in %; {details}", markup=False, highlight=False)


def _detail(value) -> str:
    # A nested record (the text memory's settings) reads as "(captions 12632 top_k 20 ...)".
    if isinstance(value, dict):
        return "(" + " ".join(f"{k} {v}" for k, v in value.items()) + ")"
    return str(value)


def _render_compare(files, results: list[dict], rows) -> None:
    from ..eval.report import format_metric

    table = Table(header_style="bold", title="recall and accuracy in %", title_justify="left")
    table.add_column("metric")
    for path, result in zip(files, results):
        table.add_column(Text(f"{Path(path).name}\n{result.get('model', '')}"), justify="right")
    if len(results) == 2:
        table.add_column("delta", justify="right")
    for key, values in rows:
        cells = [format_metric(key, v) for v in values]
        if len(values) == 2:
            a, b = values
            cells.append("n/a" if a is None or b is None else _signed(format_metric(key, b - a)))
        table.add_row(key, *cells)
    console.print(table)


def _signed(text: str) -> str:
    return text if text.startswith("-") else f"+{text}"
