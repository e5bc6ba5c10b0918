"""One pair dataset made of several, without copying images: training reads one source.

The merged folder holds a link per source dataset (``<name> -> <source folder>``) and a
``pairs.csv`` whose image paths go through those links. Splits, labels and languages are
kept as the sources have them, so every split of the merge is the union of the sources'
splits of that name.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from ..errors import InputError, NotFoundError
from ..data.pairs import TABLE_NAME

COLUMNS = ("image", "caption", "split", "label", "lang")


def _rows(source: Path, name: str, lang: str | None):
    with open(source / TABLE_NAME, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            row_lang = row.get("lang") or "en"
            if lang is not None and row_lang != lang:
                continue
            image = f"{name}/{row['image']}"
            yield {"image": image, "caption": row["caption"], "split": row.get("split", ""),
                   "label": row.get("label", ""), "lang": row_lang}


def _link(out: Path, name: str, source: Path) -> None:
    link = out / name
    if link.is_symlink() or link.exists():
        if link.is_symlink() and Path(os.readlink(link)) == source:
            return
        raise InputError(f"{link} already exists and is not a link to {source}")
    link.symlink_to(source, target_is_directory=True)


def merge_pair_datasets(out: str | Path, sources: Mapping[str, str | Path], lang: str | None = None) -> dict:
    """Write the merged dataset into ``out``; ``sources`` maps a name (the link) to a
    pair-dataset folder. ``lang`` keeps only captions in that language. Returns row counts
    by split. Re-running with the same sources rewrites the same table."""
    if not sources:
        raise InputError("nothing to merge: give at least one source dataset")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    tmp = out / f".{TABLE_NAME}.tmp"
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for name, where in sources.items():
            source = Path(where).resolve()
            if not (source / TABLE_NAME).is_file():
                raise NotFoundError(f"{where} is not a pair dataset (no {TABLE_NAME})")
            _link(out, name, source)
            for row in _rows(source, name, lang):
                writer.writerow(row)
                counts[row["split"]] += 1
    tmp.replace(out / TABLE_NAME)
    info = {"name": out.name, "description": "merged: " + ", ".join(sources),
            "sources": {n: str(Path(p).resolve()) for n, p in sources.items()}, "lang": lang, "rows": dict(counts)}
    (out / "dataset.json").write_text(json.dumps(info, indent=2) + "\n")
    return dict(counts)
