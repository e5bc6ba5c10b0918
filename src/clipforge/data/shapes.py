"""A synthetic pair dataset: captioned scenes of two coloured shapes.

Each scene shows two shapes on a plain background, one beside or above the other, and has
two captions that say the same thing from either side: "a small red circle left of a large
blue square" and "a large blue square right of a small red circle". A caption pins down
colour, shape and size of both objects and their relation, so retrieval needs the binding
of words to objects, not a bag of words; with 6 colours, 4 shapes, 2 sizes and 2 axes there
are about 9,000 distinct scenes, so held-out test scenes rarely share a caption.

Scene ``i`` depends only on ``(seed, i)``, and its split only on ``i`` (80/10/10), so a
larger dataset extends a smaller one with the same seed.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..errors import InputError
from .pairs import TABLE_NAME

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 210, 30),
    "purple": (140, 50, 180),
    "orange": (245, 130, 20),
}
SHAPES = ("circle", "square", "triangle", "diamond")
SIZES = {"small": 0.12, "large": 0.2}  # half-extent as a fraction of the image side
RELATIONS = {"left of": "right of", "above": "below"}  # relation -> its converse
SUPERSAMPLE = 4  # drawn larger and shrunk, for smooth edges


@dataclass(frozen=True)
class Thing:
    colour: str
    shape: str
    size: str

    def words(self) -> str:
        return f"a {self.size} {self.colour} {self.shape}"


@dataclass(frozen=True)
class Scene:
    first: Thing  # left of / above `second`
    second: Thing
    relation: str  # "left of" or "above"
    centres: tuple[tuple[float, float], tuple[float, float]]  # (x, y) in [0, 1]
    background: tuple[int, int, int]

    def captions(self) -> tuple[str, str]:
        converse = RELATIONS[self.relation]
        return (
            f"{self.first.words()} {self.relation} {self.second.words()}",
            f"{self.second.words()} {converse} {self.first.words()}",
        )


def split_of(index: int) -> str:
    return {0: "test", 1: "val"}.get(index % 10, "train")


def _thing(rng: np.random.Generator) -> Thing:
    return Thing(
        colour=list(COLOURS)[rng.integers(len(COLOURS))],
        shape=SHAPES[rng.integers(len(SHAPES))],
        size=list(SIZES)[rng.integers(len(SIZES))],
    )


def make_scene(seed: int, index: int) -> Scene:
    rng = np.random.default_rng([seed, index])
    first, second = _thing(rng), _thing(rng)
    while second == first:  # two identical things make a caption that cannot say which is which
        second = _thing(rng)
    relation = list(RELATIONS)[rng.integers(len(RELATIONS))]
    # Along the relation's axis the first thing sits in the first half and the second in the
    # other; across it both wander, but less than the gap between them.
    along = (rng.uniform(0.2, 0.3), rng.uniform(0.7, 0.8))
    across = (rng.uniform(0.38, 0.62), rng.uniform(0.38, 0.62))
    pairs = list(zip(along, across))
    centres = tuple(pairs) if relation == "left of" else tuple((y, x) for x, y in pairs)
    background = tuple(int(v) for v in rng.integers(200, 256, 3))
    return Scene(first, second, relation, centres, background)


def _polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if shape == "square":
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "diamond":
        return [(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)]
    angles = [-math.pi / 2 + k * 2 * math.pi / 3 for k in range(3)]  # an upright triangle
    return [(cx + r * math.cos(a), cy + r * math.sin(a) + r * 0.15) for a in angles]


def render(scene: Scene, size: int = 64) -> Image.Image:
    big = size * SUPERSAMPLE
    image = Image.new("RGB", (big, big), scene.background)
    draw = ImageDraw.Draw(image)
    for thing, (x, y) in zip((scene.first, scene.second), scene.centres):
        cx, cy, r = x * big, y * big, SIZES[thing.size] * big
        if thing.shape == "circle":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=COLOURS[thing.colour])
        else:
            draw.polygon(_polygon(thing.shape, cx, cy, r), fill=COLOURS[thing.colour])
    return image.resize((size, size), Image.Resampling.LANCZOS)


def write_shapes(out: str | os.PathLike, n: int = 5000, seed: int = 0, size: int = 64, force: bool = False) -> dict:
    """Render ``n`` scenes into ``out`` in the pair-dataset format; returns the counts."""
    if n < 10:
        raise InputError(f"--n must be at least 10 (one scene per split), got {n}")
    if not 16 <= size <= 1024:
        raise InputError(f"--size must be between 16 and 1024 pixels, got {size}")
    root = Path(out)
    if root.exists() and any(root.iterdir()):
        if not (root / TABLE_NAME).exists():
            raise InputError(f"{root} exists and is not a pair dataset; choose a new or empty folder")
        if not force:
            raise InputError(f"{root} already holds a dataset; pass --force to replace it")
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "images").mkdir(parents=True)
    counts = {s: 0 for s in ("train", "val", "test")}
    with open(tmp / TABLE_NAME, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "caption", "split"])
        for i in range(n):
            scene, name = make_scene(seed, i), f"images/{i:06d}.png"
            render(scene, size).save(tmp / name, optimize=False, compress_level=1)
            split = split_of(i)
            counts[split] += 1
            writer.writerows([name, caption, split] for caption in scene.captions())
    meta = {
        "name": "shapes",
        "description": "Synthetic scenes of two coloured shapes with relational captions.",
        "source": f"clipforge data shapes --n {n} --seed {seed} --size {size}",
        "counts": {"images": n, "captions": 2 * n, **counts},
    }
    (tmp / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    # Swap the finished folder in whole, so an interrupted run never leaves half a dataset.
    if root.exists():
        shutil.rmtree(root)
    tmp.rename(root)
    return meta["counts"]
