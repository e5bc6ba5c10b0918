"""``clipforge export onnx``: a model's towers as ONNX, run without torch as ``--model onnx:DIR``."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from ..models.onnx_manifest import AGREEMENT_MIN_COSINE
from .output import console, emit, json_option


@click.group("export")
def export_group():
    """Export a model for other runtimes."""


@export_group.command("onnx")
@click.argument("spec")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--int8", is_flag=True, help="Also write int8 models (dynamic quantisation); auto picks them where they agree.")
@click.option("--openvino", is_flag=True,
              help="Also write OpenVINO variants (static int8, calibrated; bf16); needs clipforge[openvino].")
@click.option("--probe-images", "probe_images", type=click.Path(exists=True, path_type=Path), multiple=True,
              help="Images to measure agreement and speed on (repeatable); default: synthetic photo-like images.")
@click.option("--calibration-images", "calibration_images", type=click.Path(exists=True, path_type=Path),
              multiple=True, help="Images (or folders of them) to calibrate --openvino's int8 on (repeatable); "
                                  "default: synthetic photo-like images. Use some like those you will index.")
@json_option
def export_onnx_cmd(spec, out, int8, openvino, probe_images, calibration_images, as_json):
    """Export SPEC's image and text towers to the new directory OUT, for --model onnx:OUT."""
    from ..models.onnx_export import export_onnx

    manifest = export_onnx(spec, out, int8=int8, probe_images=[str(p) for p in probe_images], openvino=openvino,
                           calibration_images=_image_files(calibration_images))
    result = {"model": manifest["source"], "output": str(out.resolve()), "spec": f"onnx:{out.resolve()}",
              "dim": manifest["dim"], "variants": manifest["variants"], "dropped": manifest["dropped"]}
    emit(result, as_json, _render)


_MAX_CALIBRATION_IMAGES = 300  # NNCF's default subset: more changes little and costs minutes


def _image_files(paths: tuple[Path, ...]) -> list[str]:
    from ..models.images import is_image_path

    files = []
    for path in paths:
        found = sorted(p for p in path.rglob("*") if p.is_file() and is_image_path(p)) if path.is_dir() else [path]
        files += [str(p) for p in found]
    return files[:_MAX_CALIBRATION_IMAGES]


def _render(result: dict) -> None:
    table = Table(box=None, header_style="bold")
    for column in ("tower", "precision", "items/s", "cosine min", "cosine mean"):
        table.add_column(column, justify="left" if column in ("tower", "precision") else "right")
    for kept, group in ((True, result["variants"]), (False, result["dropped"])):
        for tower, variants in group.items():
            for name, v in variants.items():
                label = name if kept else f"{name} (left out: below {AGREEMENT_MIN_COSINE})"
                table.add_row(tower, label, f"{v['items_per_s']:.1f}", f"{v['cosine_min']:.5f}", f"{v['cosine_mean']:.5f}")
    console.print(table)
    console.print(f"wrote {result['output']}; use it as --model {result['spec']}", highlight=False)
