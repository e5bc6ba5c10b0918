"""The emoji pair dataset: every emoji Noto Color Emoji draws, captioned with CLDR text.

Each image gets, per language, a ``name`` caption (the CLDR short name, e.g. "red apple",
"thumbs up: medium skin tone") and, where CLDR has keywords the name does not already say,
a ``keywords`` caption ("red apple — fruit"). English names missing from the installed
CLDR (emoji newer than it) fall back to the name in ``emoji-test.txt``.
``label`` is the Unicode emoji group ("Food & Drink"); ``subgroup`` is its subgroup.

Only emoji the font really draws are kept: a sequence the font has no ligature for lays out
as several glyphs, and a code point it lacks draws nothing, so both are skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ...errors import InputError
from .common import (
    BASE_COLUMNS, BuildResult, Caption, PairDatasetWriter, ProgressFn, existing_result, join_keywords,
    package_version, require_path, save_png, split_for,
)
from .emoji_data import Annotation, EmojiEntry, base_key, cldr_key, read_cldr, read_emoji_test

log = logging.getLogger(__name__)

NAME = "emoji"
DEFAULT_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
DEFAULT_CLDR = Path("/usr/share/unicode/cldr/common")
DEFAULT_EMOJI_TEST = Path("/usr/share/unicode/emoji/emoji-test.txt")
DEFAULT_LANGS = ("en", "de", "fr", "es", "it", "pt", "ru", "ja", "zh")
BITMAP_SIZE = 109  # the only strike in NotoColorEmoji.ttf (CBDT); other sizes are scaled from it
_MARGIN = 1 / 16  # of the image side, around the cropped glyph
_WHITE = (255, 255, 255)
_PACKAGES = ("fonts-noto-color-emoji", "unicode-cldr-core", "unicode-data")
COLUMNS = {
    "image": "PNG path relative to the dataset folder",
    "caption": "CLDR short name, or name followed by keywords",
    "split": "train, val or test; fixed by the group key",
    "label": "Unicode emoji group, e.g. 'Food & Drink'",
    "lang": "language of the caption (CLDR locale)",
    "kind": "name or keywords",
    "subgroup": "Unicode emoji subgroup, e.g. 'food-fruit'",
    "emoji": "the emoji itself",
    "name": "English name",
    "codepoints": "code points in hex, joined by '_'",
    "group": "split key: code points with skin tone, hair and gender removed",
}


@dataclass
class EmojiConfig:
    """What to build; the paths default to where the Debian packages install their files."""

    size: int = 96
    langs: Sequence[str] = DEFAULT_LANGS
    limit: int | None = None  # only the first N emoji of emoji-test.txt order
    font_path: Path = DEFAULT_FONT
    cldr_dir: Path = DEFAULT_CLDR
    emoji_test_path: Path = DEFAULT_EMOJI_TEST

    def check(self) -> None:
        require_path(self.font_path, "Noto Color Emoji font", "fonts-noto-color-emoji")
        require_path(Path(self.cldr_dir) / "annotations", "CLDR emoji annotations", "unicode-cldr-core")
        require_path(self.emoji_test_path, "Unicode emoji-test.txt", "unicode-data")
        if self.size < 8:
            raise InputError("size must be at least 8 pixels")


class EmojiRenderer:
    """Draws one emoji as a square RGB image on white, cropped to the glyph."""

    def __init__(self, font_path: Path, size: int):
        self.size = size
        self.font = ImageFont.truetype(str(font_path), size=BITMAP_SIZE, layout_engine=ImageFont.Layout.RAQM)
        # Every glyph of the font has the same advance; a sequence that lays out wider than
        # one glyph has no ligature in the font and would draw as its parts side by side.
        self.advance = self.font.getlength("\U0001F600")
        self.canvas = int(self.advance * 1.5)

    def render(self, text: str) -> Image.Image | None:
        """The emoji image, or None when the font does not draw ``text`` as one glyph."""
        if self.font.getlength(text) > self.advance * 1.1:
            return None
        glyph = Image.new("RGBA", (self.canvas, self.canvas), (0, 0, 0, 0))
        ImageDraw.Draw(glyph).text((self.canvas // 8, self.canvas // 8), text, font=self.font, embedded_color=True)
        box = glyph.getchannel("A").getbbox()
        if box is None:  # .notdef is empty in this font
            return None
        glyph = glyph.crop(box)
        side = max(glyph.size)
        square = Image.new("RGBA", (side, side), _WHITE + (255,))
        square.alpha_composite(glyph, ((side - glyph.width) // 2, (side - glyph.height) // 2))
        inner = max(1, round(self.size * (1 - 2 * _MARGIN)))
        out = Image.new("RGB", (self.size, self.size), _WHITE)
        out.paste(square.convert("RGB").resize((inner, inner), Image.Resampling.LANCZOS),
                  ((self.size - inner) // 2,) * 2)
        return out


def emoji_captions(entry: EmojiEntry, annotations: dict[str, dict[str, Annotation]]) -> list[Caption]:
    """Name and keyword captions in every language that has them."""
    captions: list[Caption] = []
    key = cldr_key(entry.text)
    for lang, table in annotations.items():
        found = table.get(key)
        if found is None and lang == "en":
            found = Annotation(entry.name, ())
        if found is None:
            continue
        captions.append(Caption(found.name, lang, "name"))
        keywords = join_keywords(found.name, found.keywords)
        if keywords:
            captions.append(Caption(keywords, lang, "keywords"))
    return captions


def build_emoji(out: Path, config: EmojiConfig | None = None, *, force: bool = False,
                progress: ProgressFn | None = None) -> BuildResult:
    """Build the emoji dataset at ``out``; an existing complete one is kept unless ``force``."""
    config = config or EmojiConfig()
    config.check()
    existing = existing_result(out, NAME, force)
    if existing is not None:
        return existing
    entries = read_emoji_test(config.emoji_test_path)[: config.limit]
    annotations = {lang: read_cldr(config.cldr_dir, lang) for lang in dict.fromkeys(config.langs)}
    renderer = EmojiRenderer(config.font_path, config.size)
    with PairDatasetWriter(out, NAME, [c for c in COLUMNS if c not in BASE_COLUMNS]) as writer:
        for done, entry in enumerate(entries, start=1):
            _add_emoji(writer, renderer, entry, annotations)
            if progress:
                progress(done, len(entries))
        return writer.commit(
            description="Emoji drawn by Noto Color Emoji, captioned with Unicode CLDR short names and "
                        "keywords in several languages; label is the Unicode emoji group.",
            sources={p: package_version(p) for p in _PACKAGES},
            params={"size": config.size, "langs": list(annotations), "limit": config.limit,
                    "font": str(config.font_path), "bitmap_size": BITMAP_SIZE},
            columns=COLUMNS, force=force,
        )


def _add_emoji(writer: PairDatasetWriter, renderer: EmojiRenderer, entry: EmojiEntry,
               annotations: dict[str, dict[str, Annotation]]) -> None:
    image = renderer.render(entry.text)
    if image is None:
        writer.skip("not drawn by the font")
        return
    relative = f"{entry.hex}.png"
    save_png(image, writer.image_path(relative))
    group = base_key(entry.codepoints)
    writer.add_image(
        relative, split_for(group), emoji_captions(entry, annotations), label=entry.group,
        subgroup=entry.subgroup, emoji=entry.text, name=_english_name(entry, annotations),
        codepoints=entry.hex, group=group,
    )


def _english_name(entry: EmojiEntry, annotations: dict[str, dict[str, Annotation]]) -> str:
    found = annotations.get("en", {}).get(cldr_key(entry.text))
    return found.name if found else entry.name
