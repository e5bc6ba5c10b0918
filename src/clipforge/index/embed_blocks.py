"""Batch embedding's plan and its output blocks, whichever engine computes the vectors.

A source (image folders, a CSV/Parquet table of paths or URLs, WebDataset shards) is listed
once, sorted by key, and cut into blocks of ``block_size`` images. Block N becomes one
partition of clip-retrieval's layout:

    img_emb/img_emb_N.npy        float16 unit vectors of the block's decoded images, in order
    metadata/metadata_N.parquet  one row per vector: image_path, the listed metadata, sha256,
                                 width, height
    skipped/skipped_N.parquet    the block's images that could not be read, with the reason

A block is written by one process, to temporary names renamed into place with the metadata
last, so a block is whole or absent: a rerun redoes exactly the blocks whose metadata is
missing, and a block is never written twice. ``embed.json`` records the listing the blocks were
cut from, so a rerun over a changed source is refused rather than mixing two listings.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from . import exchange_layout as layout
from .exchange import metadata_table
from .ingest import IndexReport, scan_sources
from .listed import Listed
from .shard_ingest import is_shard_spec, list_shard, list_shards
from .tables import TableSpec, is_table, read_listed

MANIFEST = "embed.json"


def list_sources(sources: Sequence[str], image_column: str = "image") -> tuple[list[Listed], list[dict]]:
    """Every image the sources name, sorted by key, and the rows that name none (with why)."""
    report = IndexReport()
    found: dict[str, Listed] = {}
    folders = []
    for source in sources:
        if is_shard_spec(source):
            for shard in list_shards([source]):
                found.update((e.key, e) for e in list_shard(shard, os.stat(shard), report))
        elif is_table(source) and not os.path.isdir(source):
            spec = TableSpec.checked(path=Path(source), image_column=image_column)
            found.update((e.key, e) for e in read_listed(spec, report))
        else:
            folders.append(Path(source))
    if folders:
        files, _ = scan_sources(folders)
        found.update((f.path, Listed(f.path, f.path, f.size, f.mtime_ns)) for f in files)
    return [found[key] for key in sorted(found)], report.failures


@dataclass
class Plan:
    items: list[Listed]
    block_size: int
    model_spec: str
    dim: int

    @property
    def blocks(self) -> int:
        return math.ceil(len(self.items) / self.block_size)

    def block(self, number: int) -> list[Listed]:
        return self.items[number * self.block_size : (number + 1) * self.block_size]

    def manifest(self) -> dict[str, Any]:
        keys = hashlib.sha256("\n".join(item.key for item in self.items).encode()).hexdigest()
        return {"model_spec": self.model_spec, "dim": self.dim, "block_size": self.block_size,
                "items": len(self.items), "blocks": self.blocks, "keys_sha256": keys}


class BlockFolder:
    """The output folder: which blocks are done, and writing one whole."""

    def __init__(self, out: Path, plan: Plan):
        self.out, self.plan = out, plan
        self.width = int(math.log10(max(1, plan.blocks))) + 1  # as clip-retrieval pads partition numbers
        self._claim()

    def _claim(self) -> None:
        manifest = self.plan.manifest()
        path = self.out / MANIFEST
        if path.exists():
            before = json.loads(path.read_text())
            changed = [k for k in manifest if before.get(k) != manifest[k]]
            if changed:
                raise InputError(
                    f"{self.out} holds blocks of another run ({changed[0]} differs: "
                    f"{before.get(changed[0])!r}, now {manifest[changed[0]]!r}); embed into a new folder"
                )
            return
        if self.out.exists() and not self.out.is_dir():
            raise InputError(f"{self.out} is a file, not a folder; embed into a new folder")
        if self.out.exists() and any(self.out.iterdir()):
            raise InputError(f"{self.out} exists and is not an embedding run's folder; embed into a new one")
        self.out.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, lambda f: f.write(json.dumps(manifest, indent=1).encode()))

    def name(self, number: int) -> str:
        return str(number).zfill(self.width)

    def _metadata_path(self, number: int) -> Path:
        return self.out / "metadata" / f"metadata_{self.name(number)}.parquet"

    def is_done(self, number: int) -> bool:
        return self._metadata_path(number).exists()

    def pending(self) -> list[int]:
        return [n for n in range(self.plan.blocks) if not self.is_done(n)]

    def write(self, number: int, rows: list[dict], vectors: np.ndarray, skipped: list[dict]) -> None:
        """Block ``number``: ``rows[i]`` describes ``vectors[i]``; ``skipped``: image_path and reason."""
        pa, pq = layout.parquet()
        name = self.name(number)
        vectors = np.ascontiguousarray(vectors.reshape(len(rows), self.plan.dim), dtype=np.float16)
        _write_atomically(self.out / "img_emb" / f"img_emb_{name}.npy", lambda f: np.save(f, vectors))
        skipped_table = pa.table({column: pa.array([s[column] for s in skipped], pa.string())
                                  for column in ("image_path", "reason")})
        _write_atomically(self.out / "skipped" / f"skipped_{name}.parquet", lambda f: pq.write_table(skipped_table, f))
        table = metadata_table(rows, ["image_path", "caption"]) if rows else pa.table({"image_path": pa.array([], pa.string())})
        _write_atomically(self._metadata_path(number), lambda f: pq.write_table(table, f))  # last: the block is done


def _write_atomically(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
