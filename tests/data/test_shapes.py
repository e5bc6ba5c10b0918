"""The synthetic shapes dataset: real files in the pair-dataset format, captions that match
what is drawn."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from clipforge.data.pairs import load_pairs
from clipforge.data.shapes import COLOURS, make_scene, render, split_of, write_shapes
from clipforge.errors import InputError


def test_writes_the_pair_dataset_format(tmp_path):
    counts = write_shapes(tmp_path / "shapes", n=20, seed=3)
    assert counts == {"images": 20, "captions": 40, "train": 16, "val": 2, "test": 2}
    with open(tmp_path / "shapes" / "pairs.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["image", "caption", "split"]
    assert len(rows) == 40
    for row in rows:
        index = int(row["image"].split("/")[1].split(".")[0])
        assert row["split"] == split_of(index)
        assert Image.open(tmp_path / "shapes" / row["image"]).size == (64, 64)
    meta = json.loads((tmp_path / "shapes" / "dataset.json").read_text())
    assert meta["counts"]["images"] == 20 and meta["name"] == "shapes"
    pairs = load_pairs(tmp_path / "shapes", "test")
    assert len(pairs) == 2 and all(len(p.captions) == 2 for p in pairs.pairs)


def test_scenes_are_deterministic_and_captions_say_the_same_from_both_sides():
    a, b = make_scene(0, 7), make_scene(0, 7)
    assert a == b and make_scene(1, 7) != a
    first, second = a.captions()
    converse = {"left of": "right of", "above": "below"}[a.relation]
    assert a.relation in first and converse in second
    assert first.startswith(a.first.words()) and second.startswith(a.second.words())


def _centroid(image: np.ndarray, rgb) -> np.ndarray:
    mask = np.abs(image.astype(int) - np.asarray(rgb)).sum(axis=2) < 60
    ys, xs = np.nonzero(mask)
    return np.asarray([xs.mean(), ys.mean()])


def test_the_caption_matches_the_picture():
    # Scenes whose two things differ in colour, so that each can be found by its colour.
    scenes = [s for s in (make_scene(5, i) for i in range(40)) if s.first.colour != s.second.colour][:12]
    assert {s.relation for s in scenes} == {"left of", "above"}
    for scene in scenes:
        image = np.asarray(render(scene, 128))
        a = _centroid(image, COLOURS[scene.first.colour])
        b = _centroid(image, COLOURS[scene.second.colour])
        axis = 0 if scene.relation == "left of" else 1  # "left of": smaller x; "above": smaller y
        assert a[axis] < b[axis], scene.captions()[0]


def test_refuses_to_overwrite(tmp_path):
    write_shapes(tmp_path / "d", n=10)
    with pytest.raises(InputError, match="--force"):
        write_shapes(tmp_path / "d", n=10)
    write_shapes(tmp_path / "d", n=10, force=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not a pair dataset"):
        write_shapes(tmp_path / "other", n=10, force=True)
    assert (tmp_path / "other" / "keep.txt").read_text() == "mine"


def test_cli(run_cli, tmp_path):
    result = run_cli("data", "shapes", tmp_path / "s", "--n", "10", "--json", check=True)
    assert result.json()["images"] == 10
    again = run_cli("data", "shapes", tmp_path / "s", "--n", "10")
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "--force" in again.stderr
