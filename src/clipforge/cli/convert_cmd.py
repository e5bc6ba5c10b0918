"""``clipforge convert``: a model saved in Hugging Face format."""

from __future__ import annotations

import click

from .output import console, emit, json_option


@click.command()
@click.argument("spec")
@click.argument("target", metavar="hf:OUT")
@json_option
def convert(spec, target, as_json):
    """Write the model SPEC (an open_clip checkpoint, say) to hf:OUT, a directory that
    transformers and `--model hf:OUT` load."""
    from ..models.convert import convert_to_hf

    out = convert_to_hf(spec, target)
    emit({"model": spec, "output": str(out), "spec": f"hf:{out}"}, as_json,
         lambda r: console.print(f"wrote {r['output']}; use it as --model {r['spec']}", highlight=False))
