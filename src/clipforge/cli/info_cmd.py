"""``clipforge info``: what a collection holds."""

from __future__ import annotations

import click

from ..paths import readable_path
from .common import collection_option
from .output import console, emit, json_option


@click.command()
@collection_option
@click.option("--all-skipped", is_flag=True, help="List every skipped file, not only the first 100.")
@json_option
def info(collection, all_skipped, as_json):
    """Show a collection's model, dimension, counts, the files skipped and why, and any damage."""
    from ..index.collection import Collection

    with Collection.open(collection, check=False) as coll:
        result = coll.info(skipped_limit=None if all_skipped else 100)
    emit(result, as_json, lambda r: _render(r, collection))


def _render(result: dict, typed_name: str) -> None:
    console.print(f"[bold]{result['name']}[/]  {result['path']}", highlight=False)
    console.print(f"model      {result['model']}  ({result['dim']}-d)", markup=False, highlight=False)
    if result["model_fingerprint"]:
        console.print(f"weights    {result['model_fingerprint']}", highlight=False)
    if result["query_model"]:
        console.print(f"queries    encoded by {result['query_model']}", markup=False, highlight=False)
    if result["model_changed"]:
        console.print("[red]the model's weights have changed since this collection was built: rebuild it[/]")
    console.print(
        f"items      {result['images']} images, {result['texts']} texts, "
        f"{result['removed']} removed, {result['skipped']} skipped"
    )
    console.print(f"disk       {result['disk_bytes'] / 1e6:.1f} MB")
    for kind, index in result.get("index", {}).items():
        console.print(f"index      {kind}s: {_describe_index(index)}", markup=False, highlight=False)
    if result["metadata_keys"]:
        keys = ", ".join(f"{key} {count}" for key, count in result["metadata_keys"].items())
        console.print(f"metadata   {keys}", markup=False, highlight=False)
    for problem in result["problems"]:
        console.print(f"[red]damaged:[/] {problem}", highlight=False)
    if result["problems"]:
        console.print(f"run `clipforge repair -c {typed_name}` to rebuild what can be rebuilt", markup=False)
    if result["skipped_files"]:
        console.print("skipped files:")
        for entry in result["skipped_files"]:
            console.print(f"  {readable_path(entry['path'])}: {entry['reason']}", markup=False, highlight=False)
        if len(result["skipped_files"]) < result["skipped"]:
            console.print(f"  ... {result['skipped'] - len(result['skipped_files'])} more (--all-skipped)")


def _describe_index(index: dict) -> str:
    if not index.get("indexed"):
        return f"exact search of {index['items']:,} items ({index['note']})"
    recall = index["recall_at_10"]
    queries = index["recall_queries"]
    measured = "exact" if recall is None else f"recall@10 {recall:.3f} vs exact ({queries} held-out queries)"
    where = "memory-mapped" if index["memory_mapped"] else "read into memory"
    text = (f"{index['type']} (setting: {index['setting']}), {index['indexed']:,} indexed + {index['fresh']:,} fresh; "
            f"{index['bytes_per_vector']:.0f} bytes/vector, {where}; {measured}; "
            f"built in {index['build_seconds']:.1f} s")
    if index.get("folded"):
        text += f"; {index['folded']:,} folded in since"
    return text + (f"; {index['note']}" if index["note"] else "")
