"""Merging pair datasets: one table through links, no image copied."""

from __future__ import annotations

import csv

from clipforge.recipes.merge import merge_pair_datasets
from clipforge.data.pairs import load_pairs


def _dataset(root, rows):
    (root / "images").mkdir(parents=True)
    with open(root / "pairs.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["image", "caption", "split", "label", "lang"])
        writer.writeheader()
        for image, caption, split, lang in rows:
            (root / image).write_bytes(b"png")
            writer.writerow({"image": image, "caption": caption, "split": split, "label": "x", "lang": lang})
    return root


def test_merge_keeps_splits_links_sources_and_filters_language(tmp_path):
    a = _dataset(tmp_path / "a", [("images/1.png", "a cat", "train", "en"), ("images/1.png", "eine Katze", "train", "de"),
                                  ("images/2.png", "a dog", "test", "en")])
    b = _dataset(tmp_path / "b", [("images/1.png", "a tree", "train", "en")])
    counts = merge_pair_datasets(tmp_path / "m", {"a": a, "b": b}, lang="en")
    assert counts == {"train": 2, "test": 1}
    assert (tmp_path / "m" / "a").is_symlink()
    train = load_pairs(tmp_path / "m", "train")
    assert sorted(c for p in train.pairs for c in p.captions) == ["a cat", "a tree"]
    assert all(p.image.read() == b"png" for p in train.pairs)
    # Again: the same table, the links reused.
    assert merge_pair_datasets(tmp_path / "m", {"a": a, "b": b}, lang="en") == counts
