"""The emoji and clip-art dataset builders, run against the real Debian packages."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipforge.data.builders import SPLITS, ClipartConfig, EmojiConfig, build_clipart, build_emoji, split_for
from clipforge.data.builders.clipart import (
    DEFAULT_PNG_DIR, DEFAULT_SVG_DIR, item_captions, scan, select, shared_texts, write_image,
)
from clipforge.data.builders.clipart_text import humanize
from clipforge.data.builders.emoji import DEFAULT_CLDR, DEFAULT_EMOJI_TEST, DEFAULT_FONT, EmojiRenderer
from clipforge.errors import ImageDecodeError, InputError, NotFoundError

need_emoji = pytest.mark.skipif(
    not (DEFAULT_FONT.exists() and DEFAULT_CLDR.exists() and DEFAULT_EMOJI_TEST.exists()),
    reason="needs fonts-noto-color-emoji, unicode-cldr-core and unicode-data (.ci/apt-deps.sh)",
)
need_clipart = pytest.mark.skipif(
    not (DEFAULT_PNG_DIR.exists() and DEFAULT_SVG_DIR.exists()),
    reason="needs openclipart-png and openclipart-svg (.ci/apt-deps.sh)",
)
BOILERPLATE = re.compile(
    r"part of the|created? with|(?:made|drawn) (?:with|in) (?:the )?inkscape|https?:|www\.|@|hash\(0x|untitled|"
    r"gramastar|clipart by|collection by|iconset|converted from|public domain|licen[cs]e|copyright \d|rights reserved",
    re.I,
)


def read_rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "pairs.csv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def check_format(folder: Path) -> list[dict[str, str]]:
    """What every pair dataset promises: columns, files, one split per image, counts that add up."""
    rows = read_rows(folder)
    info = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    assert list(rows[0])[:6] == ["image", "caption", "split", "label", "lang", "kind"]
    split_of: dict[str, str] = {}
    for row in rows:
        assert row["caption"].strip() and row["split"] in SPLITS and "\\" not in row["image"]
        assert split_of.setdefault(row["image"], row["split"]) == row["split"]
    assert all((folder / image).is_file() for image in split_of)
    assert info["counts"]["images"] == len(split_of) and info["counts"]["captions"] == len(rows)
    per_split = Counter(split_of.values())
    assert {s: c["images"] for s, c in info["counts"]["splits"].items()} == {s: per_split[s] for s in SPLITS}
    assert not list(folder.parent.glob(f"{folder.name}.tmp-*"))
    return rows


# ---------------------------------------------------------------- splits and the writer


def test_split_is_fixed_and_close_to_80_10_10():
    keys = [f"key-{i}" for i in range(20000)]
    counts = Counter(split_for(k) for k in keys)
    assert abs(counts["train"] / len(keys) - 0.8) < 0.015
    assert abs(counts["val"] / len(keys) - 0.1) < 0.01
    assert [split_for(k) for k in keys[:50]] == [split_for(k) for k in keys[:50]]
    # Pinned: a change here would silently move images between splits of existing datasets.
    assert [split_for(f"key-{i}") for i in (0, 2, 20)] == ["train", "val", "test"]


# ---------------------------------------------------------------- emoji


@pytest.fixture(scope="module")
def emoji_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("emoji") / "emoji"
    result = build_emoji(out, EmojiConfig(size=32, langs=("en", "de", "ja")))
    assert result.built
    return out


@pytest.fixture(scope="module")
def emoji_rows(emoji_dir) -> list[dict[str, str]]:
    return check_format(emoji_dir)


@need_emoji
def test_emoji_full_set(emoji_dir, emoji_rows):
    info = json.loads((emoji_dir / "dataset.json").read_text(encoding="utf-8"))
    images = {row["image"] for row in emoji_rows}
    assert len(images) > 3000  # Unicode 15.0 has 3,655 fully-qualified emoji
    assert info["sources"]["fonts-noto-color-emoji"] != "unknown"
    assert {row["lang"] for row in emoji_rows} == {"en", "de", "ja"}
    named = {row["image"] for row in emoji_rows if row["lang"] == "en" and row["kind"] == "name"}
    assert named == images  # every emoji has an English name
    for image in sorted(images)[::400]:
        with Image.open(emoji_dir / image) as im:
            assert im.size == (32, 32) and im.mode == "RGB"


@need_emoji
def test_red_apple(emoji_dir, emoji_rows):
    apple = [row for row in emoji_rows if row["emoji"] == "\U0001F34E"]
    assert {row["label"] for row in apple} == {"Food & Drink"}
    assert {row["subgroup"] for row in apple} == {"food-fruit"}
    captions = {(row["lang"], row["kind"]): row["caption"] for row in apple}
    assert captions[("en", "name")] == "red apple"
    assert "fruit" in captions[("en", "keywords")] and captions[("en", "keywords")].startswith("red apple")
    assert captions[("en", "keywords")] == "red apple — fruit"  # "apple" and "red" are in the name
    assert captions[("de", "name")] == "roter Apfel"
    japan = {(row["lang"], row["kind"]): row["caption"] for row in emoji_rows if row["emoji"] == "\U0001F1EF\U0001F1F5"}
    assert japan == {("en", "name"): "flag: Japan", ("de", "name"): "Flagge: Japan", ("ja", "name"): "旗: 日本"}
    pixels = np.asarray(Image.open(emoji_dir / apple[0]["image"]), dtype=np.float32).reshape(-1, 3)
    drawn = pixels[pixels.min(axis=1) < 200]  # not the white background
    assert len(drawn) > 0.3 * len(pixels)
    red, green, blue = drawn.mean(axis=0)
    assert red > green + 60 and red > blue + 60


@need_emoji
def test_variants_share_their_base_split(emoji_rows):
    by_emoji = {row["emoji"]: row for row in emoji_rows}
    families = [
        ("\U0001F44D", "\U0001F44D\U0001F3FD", "\U0001F44D\U0001F3FF"),  # thumbs up, skin tones
        ("\U0001F3C3", "\U0001F3C3\u200d\u2640\ufe0f", "\U0001F3C3\U0001F3FB\u200d\u2642\ufe0f"),  # person running
        ("\U0001F9D1", "\U0001F468", "\U0001F469\u200d\U0001F9B0"),  # person, man, woman: red hair
    ]
    for family in families:
        assert len({by_emoji[e]["split"] for e in family}) == 1, family
        assert len({by_emoji[e]["group"] for e in family}) == 1, family
    assert by_emoji["\U0001F44D\U0001F3FD"]["name"] == "thumbs up: medium skin tone"
    splits_of_group: dict[str, set[str]] = defaultdict(set)
    for row in emoji_rows:
        splits_of_group[row["group"]].add(row["split"])
    assert all(len(s) == 1 for s in splits_of_group.values())


@need_emoji
def test_renderer_skips_what_the_font_does_not_draw():
    renderer = EmojiRenderer(DEFAULT_FONT, 32)
    assert renderer.render("\U0001F34E") is not None
    assert renderer.render("\U0001F34E\u200d\U0001F34E") is None  # no such ligature: two apples
    assert renderer.render("\U000E0041") is None  # a tag character alone draws nothing


@need_emoji
def test_emoji_rerun_is_a_no_op(emoji_dir, run_cli):
    before = (emoji_dir / "pairs.csv").stat().st_mtime_ns
    again = build_emoji(emoji_dir, EmojiConfig(size=32, langs=("en", "de", "ja")))
    assert again.built is False and again.images > 3000 and again.splits["test"]["images"] > 0
    result = run_cli("data", "emoji", emoji_dir, check=True)
    assert "already holds a complete emoji dataset" in result.stdout
    assert (emoji_dir / "pairs.csv").stat().st_mtime_ns == before


@need_emoji
def test_emoji_force_rebuild_is_identical(tmp_path):
    out = tmp_path / "small"
    config = EmojiConfig(size=32, langs=("en", "fr"), limit=60)
    first = build_emoji(out, config)
    rows = check_format(out)
    again = build_emoji(out, config, force=True)
    assert again.built and again.images == first.images == 60
    assert read_rows(out) == rows
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small"]


@need_emoji
def test_interrupted_build_leaves_nothing(tmp_path):
    out = tmp_path / "emoji"

    def interrupt(done: int, total: int) -> None:
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_emoji(out, EmojiConfig(limit=50), progress=interrupt)
    assert list(tmp_path.iterdir()) == []


@need_emoji
def test_leftovers_of_killed_builds_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    stale = tmp_path / f"emoji.tmp-{int(dead.stdout)}-abc123"
    (stale / "images").mkdir(parents=True)
    (stale / "pairs.csv").write_text("image,caption,split\n", encoding="utf-8")
    build_emoji(tmp_path / "emoji", EmojiConfig(limit=3, langs=("en",)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emoji"]


@need_emoji
def test_output_that_is_not_a_dataset_is_never_replaced(tmp_path):
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    for force in (False, True):
        with pytest.raises(InputError, match="not a clipforge dataset"):
            build_emoji(tmp_path, EmojiConfig(limit=3), force=force)
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "mine"


@need_emoji
@need_clipart
def test_missing_packages_name_the_package(tmp_path, run_cli):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NotFoundError, match="fonts-noto-color-emoji"):
        build_emoji(tmp_path / "out", EmojiConfig(font_path=empty / "NotoColorEmoji.ttf"))
    with pytest.raises(NotFoundError, match="openclipart-png"):
        build_clipart(tmp_path / "out", ClipartConfig(png_dir=empty))
    with pytest.raises(NotFoundError, match="openclipart-svg"):
        build_clipart(tmp_path / "out", ClipartConfig(svg_dir=empty / "svg"))
    result = run_cli("data", "emoji", tmp_path / "out", "--cldr-dir", empty)
    assert result.returncode == 3 and result.stdout == ""
    assert result.stderr.strip().count("\n") == 0 and "install the Debian package unicode-cldr-core" in result.stderr
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- clip art


@pytest.fixture(scope="module")
def clipart_items():
    skipped: list[str] = []
    items = scan(ClipartConfig(), skipped.append)
    return items, skipped


@pytest.fixture(scope="module")
def clipart_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clipart") / "clipart"
    result = build_clipart(out, ClipartConfig(limit=60, max_size=128))
    assert result.built and result.images > 50
    return out


@need_clipart
def test_clipart_dataset(clipart_dir):
    rows = check_format(clipart_dir)
    info = json.loads((clipart_dir / "dataset.json").read_text(encoding="utf-8"))
    assert info["skipped"]["listed twice (symbolic link)"] > 1000
    assert set(info["sources"]) == {"openclipart-png", "openclipart-svg"}
    kinds = defaultdict(set)
    for row in rows:
        kinds[row["image"]].add(row["kind"])
        assert not BOILERPLATE.search(row["caption"]), row
    assert all(k & {"title", "description"} for k in kinds.values())
    for image in kinds:
        with Image.open(clipart_dir / image) as im:
            assert max(im.size) <= 128 and im.mode in ("RGB", "L")


@need_clipart
def test_clipart_captions_over_the_whole_package(clipart_items):
    items, skipped = clipart_items
    assert len(items) > 6000 and len(skipped) > 1000  # 6,900 files, 1,221 symbolic links
    collections, shared = shared_texts(items, "title"), shared_texts(items, "description")
    assert "gramastar" in collections and "eps converted from" in shared
    captions: dict[str, list[tuple[str, str]]] = {}
    for item in items:
        title, found = item_captions(item, collections, shared)
        captions[str(item.relative)] = [(c.kind, c.text) for c in found]
        for kind, text in captions[str(item.relative)]:
            assert not BOILERPLATE.search(text), (item.relative, kind, text)
            assert not re.search(r"\.(png|svg)\b", text, re.I)
        texts = [text.casefold() for _, text in captions[str(item.relative)]]
        assert len(texts) == len(set(texts))
    assert sum(bool(c) for c in captions.values()) > 0.98 * len(items)
    acquila = dict(captions["animals/birds/acquila_architetto_franc_01.png"])
    assert acquila["title"] == "Acquila"
    assert "bird" in acquila["tags"] and "rollandin" not in acquila["tags"].lower()
    assert dict(captions["computer/icons/flat-theme/action/history_clear.png"])["title"] == "history clear"
    car = dict(captions["transportation/old_car_lumen_design_st_r.png"])
    assert car["title"] == "Old car" and car["tags"].startswith("Old car — ") and "automobile" in car["tags"]


@need_clipart
def test_near_copies_are_capped_and_share_a_split(clipart_items):
    items, _ = clipart_items
    stars = {i.relative for i in items if i.relative.match("shapes/stars/star_*pt*step.png")}
    assert len(stars) > 1000 and len({i.group for i in items if i.relative in stars}) == 1
    skipped: list[str] = []
    kept = select(items, ClipartConfig(max_per_group=20), skipped.append)
    assert sum(1 for i in kept if i.relative in stars) == 20
    assert len(kept) + len(skipped) == len(items)
    assert kept == select(items, ClipartConfig(max_per_group=20), [].append)  # fixed across runs


def test_file_names_become_words():
    assert humanize("acquila_architetto_franc_01", "Architetto Francesco Rollandin") == "acquila"
    assert humanize("old_car_lumen_design_st_r", "Lumen Design Studio") == "old car"
    assert humanize("bass_guitar_a.j._ashton_", "A.J. Ashton") == "bass guitar"
    assert humanize("simple_s_8", "Nicu Buculei") == "simple s"
    assert humanize("filmPhoto3") == "film photo" and humanize("beachball_v0.1") == "beachball"
    assert humanize("plastik_icon_v16") == "plastik icon"
    assert humanize("books-aj.svg_aj_ashton_01", "A.J. Ashton") == "books"


@need_clipart
def test_images_on_white_cropped_linked_or_downscaled(tmp_path):
    config = ClipartConfig(max_size=64)
    transparent = DEFAULT_PNG_DIR / "animals/birds/acquila_architetto_franc_01.png"
    with Image.open(transparent) as im:
        assert im.mode in ("RGBA", "LA", "P") and max(im.size) > 64
    write_image(transparent, tmp_path / "a.png", config)
    with Image.open(tmp_path / "a.png") as im:
        assert im.mode == "RGB" and max(im.size) == 64 and im.getpixel((0, 0)) == (255, 255, 255)
    page = DEFAULT_PNG_DIR / "shapes/arrows/double_arrow_sign_01.png"  # a small sign on an A4 page
    write_image(page, tmp_path / "page.png", ClipartConfig(max_size=128))
    with Image.open(tmp_path / "page.png") as im:
        ink = np.asarray(im.convert("L")) < 200
        assert max(im.size) == 128 and im.width > 1.5 * im.height  # the sign, not the page
        assert ink.any(axis=0).mean() > 0.9 and ink.any(axis=1).mean() > 0.9
    opaque = _small_opaque_png()
    write_image(opaque, tmp_path / "b.png", ClipartConfig(max_size=1024))
    assert (tmp_path / "b.png").read_bytes() == opaque.read_bytes()
    with pytest.raises(ImageDecodeError, match="too large"):
        write_image(transparent, tmp_path / "c.png", ClipartConfig(max_pixels=1000))


def _small_opaque_png() -> Path:
    for path in sorted(DEFAULT_PNG_DIR.rglob("*.png")):
        if path.is_symlink():
            continue
        with Image.open(path) as im:
            if im.mode == "RGB" and "transparency" not in im.info and 24 <= max(im.size) <= 1024:
                return path
    raise AssertionError("the package has no small opaque PNG")


@need_clipart
def test_clipart_cli(tmp_path, run_cli):
    out = tmp_path / "c"
    result = run_cli("data", "clipart", out, "--limit", "5", "--max-size", "64", "--json", check=True)
    data = result.json()
    assert data["built"] and data["images"] == 5 and sum(s["images"] for s in data["splits"].values()) == 5
    check_format(out)
    again = build_clipart(out, ClipartConfig(limit=5, max_size=64))
    assert again.built is False and again.images == 5
