"""``clipforge data emoji`` and ``clipforge data clipart``: datasets from Debian packages."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from ..progress import progress_bar
from .output import console, emit, json_option

_out_argument = click.argument("out", type=click.Path(path_type=Path, file_okay=False))
_force_option = click.option("--force", is_flag=True, help="Rebuild even if OUT already holds a complete dataset.")
_limit_option = click.option("--limit", type=click.IntRange(min=1), default=None,
                             help="Build only N items (a fixed sample), for a quick look.")


@click.command()
@_out_argument
@click.option("--size", type=click.IntRange(min=8), default=96, show_default=True, help="Image side in pixels.")
@click.option("--langs", default="en,de,fr,es,it,pt,ru,ja,zh", show_default=True,
              help="CLDR languages for captions, comma-separated; en is always included.")
@_limit_option
@_force_option
@click.option("--font", type=click.Path(path_type=Path), default=None,
              help="NotoColorEmoji.ttf (default: from fonts-noto-color-emoji).")
@click.option("--cldr-dir", type=click.Path(path_type=Path), default=None,
              help="CLDR 'common' folder (default: from unicode-cldr-core).")
@click.option("--emoji-test", type=click.Path(path_type=Path), default=None,
              help="Unicode emoji-test.txt (default: from unicode-data).")
@json_option
def emoji(out, size, langs, limit, force, font, cldr_dir, emoji_test, as_json):
    """Render every emoji of Noto Color Emoji into OUT, captioned with CLDR names and keywords.

    Labels are the Unicode emoji groups. Skin-tone and gender variants share their base
    emoji's split.
    """
    from ..data.builders.emoji import EmojiConfig, build_emoji

    languages = ["en"] + [lang.strip() for lang in langs.split(",") if lang.strip() and lang.strip() != "en"]
    paths = _given(font_path=font, cldr_dir=cldr_dir, emoji_test_path=emoji_test)
    config = EmojiConfig(size=size, langs=tuple(languages), limit=limit, **paths)
    with progress_bar("emoji", unit="emoji") as update:
        result = build_emoji(out, config, force=force, progress=update)
    emit(result.to_dict(), as_json, _render)


@click.command()
@_out_argument
@click.option("--max-size", type=click.IntRange(min=24), default=256, show_default=True,
              help="Downscale images to at most this many pixels a side.")
@_limit_option
@click.option("--max-per-group", type=click.IntRange(min=0), default=20, show_default=True,
              help="Keep at most N near-copies (file names that differ only in numbers); 0 keeps all.")
@_force_option
@click.option("--png-dir", type=click.Path(path_type=Path), default=None,
              help="PNG folder (default: from openclipart-png).")
@click.option("--svg-dir", type=click.Path(path_type=Path), default=None,
              help="SVG folder with the metadata (default: from openclipart-svg).")
@json_option
def clipart(out, max_size, limit, max_per_group, force, png_dir, svg_dir, as_json):
    """Collect the Open Clip Art Library PNGs into OUT with cleaned titles, descriptions and tags.

    Labels are the package's top-level folders (animals, food, ...).
    """
    from ..data.builders.clipart import ClipartConfig, build_clipart

    paths = _given(png_dir=png_dir, svg_dir=svg_dir)
    config = ClipartConfig(max_size=max_size, limit=limit, max_per_group=max_per_group, **paths)
    with progress_bar("clipart") as update:
        result = build_clipart(out, config, force=force, progress=update)
    emit(result.to_dict(), as_json, _render)


def _given(**paths: Path | None) -> dict[str, Path]:
    """The package paths the user named; the others keep the Debian defaults."""
    return {name: path for name, path in paths.items() if path is not None}


def _render(result: dict) -> None:
    if not result["built"]:
        console.print(f"{result['path']} already holds a complete {result['name']} dataset "
                      f"({result['images']} images, {result['captions']} captions); use --force to rebuild.",
                      markup=False)
        return
    table = Table(title=f"{result['name']}: {result['path']}", title_justify="left")
    for column in ("split", "images", "captions"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for split, counts in result["splits"].items():
        table.add_row(split, str(counts["images"]), str(counts["captions"]))
    table.add_row("all", str(result["images"]), str(result["captions"]), style="bold")
    console.print(table)
    if len(result["langs"]) > 1:
        langs = ", ".join(f"{lang} {count}" for lang, count in result["langs"].items())
        console.print(f"captions per language: {langs}", markup=False)
    for reason, count in result["skipped"].items():
        console.print(f"skipped {count}: {reason}", markup=False)
    console.print(f"built in {result['seconds']:.1f} s")
