"""Shared pieces of the batch-embedding tests: photos at real sizes and the vectors `index` stores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from clipforge import Collection
from conftest import make_photo


def make_photos(root: Path, n: int = 11) -> Path:
    """``n`` photos at camera and web sizes, one in a subfolder, and one corrupt file."""
    sizes = [(640, 480), (1600, 1200), (480, 640)]
    for i in range(n):
        make_photo(root / ("nested" if i == 3 else "") / f"photo_{i:02d}.jpg", size=sizes[i % 3], seed=i)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not the rest of a JPEG")
    return root


def indexed_vectors(tmp_path: Path, photos: Path, spec: str) -> dict[str, np.ndarray]:
    """path -> the float16 vector `clipforge index` stores for it."""
    with Collection.create(tmp_path / "indexed", model=spec, precision="fp32") as coll:
        coll.add_images([photos])
        items = coll.store.items_by_key([str(p.resolve()) for p in photos.rglob("*.jpg")])
        items = {key: item for key, item in items.items() if item.vector_row is not None}
        vectors = coll.read_vectors([item.vector_row for item in items.values()], normalized=False)
    return dict(zip(items, vectors))


def read_blocks(out: Path) -> tuple[list[dict], np.ndarray, list[dict]]:
    """Every block's metadata rows, vectors (row for row) and skipped rows, in block order."""
    rows, vectors, skipped = [], [], []
    for metadata in sorted((out / "metadata").glob("metadata_*.parquet")):
        number = metadata.stem.split("_")[1]
        block_rows = pq.read_table(metadata).to_pylist()
        block_vectors = np.load(out / "img_emb" / f"img_emb_{number}.npy")
        assert len(block_rows) == len(block_vectors)
        rows += block_rows
        vectors.append(block_vectors)
        skipped += pq.read_table(out / "skipped" / f"skipped_{number}.parquet").to_pylist()
    return rows, np.concatenate(vectors), skipped


def assert_matches_index(out: Path, expected: dict[str, np.ndarray]) -> None:
    """Each decodable photo exactly once, with the vector `index` stores; the corrupt one skipped."""
    rows, vectors, skipped = read_blocks(out)
    paths = [row["image_path"] for row in rows]
    assert sorted(paths) == sorted(expected) and len(set(paths)) == len(paths)
    for path, vector in zip(paths, vectors):
        assert vector.dtype == np.float16
        np.testing.assert_allclose(vector.astype(np.float32), expected[path].astype(np.float32), atol=2e-3)
    assert [s["image_path"].rsplit("/", 1)[-1] for s in skipped] == ["broken.jpg"] and skipped[0]["reason"]
