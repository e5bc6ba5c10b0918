"""``clipforge repair``: rebuild what can be rebuilt of a damaged collection."""

from __future__ import annotations

import click

from ..progress import progress_bar
from .common import collection_option, model_options
from .output import console, emit, json_option


@click.command()
@collection_option
@model_options
@json_option
def repair(collection, device, precision, as_json):
    """Rebuild a damaged collection's lost vectors from its items' texts and image files.

    Items whose source is gone too are dropped and listed; `clipforge index` adds them again
    if they come back. A healthy collection is left as it is.
    """
    from ..index.collection import Collection

    with Collection.open(collection, device=device, precision=precision, check=False) as coll:
        with progress_bar("re-encoding", unit="vectors") as update:
            report = coll.repair(on_progress=update)
        result = {"collection": coll.name, **report.to_dict()}
    emit(result, as_json, _render)


def _render(result: dict) -> None:
    if not result["problems"]:
        console.print(f"[bold]{result['collection']}[/]: nothing to repair")
        return
    console.print(f"[bold]{result['collection']}[/]: found")
    for problem in result["problems"]:
        console.print(f"  {problem}", markup=False, highlight=False)
    console.print(f"re-encoded {result['recovered']} vectors; dropped {len(result['lost'])} items whose source is gone")
    for lost in result["lost"][:20]:
        console.print(f"  lost {lost}", markup=False, highlight=False)
    if len(result["lost"]) > 20:
        console.print(f"  ... and {len(result['lost']) - 20} more (--json lists them all)")
    for problem in result["remaining"]:
        console.print(f"[red]still wrong:[/] {problem}", highlight=False)
