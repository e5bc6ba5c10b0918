"""Importing clip-retrieval embeddings against encoding images, measured in one run.

    python benchmarks/import_embeddings.py [--rows 100000] [--preset base] [--images 32]

Writes ``--rows`` samples in clip-retrieval's layout (float16 img_emb and text_emb of the
preset's width, metadata with image_path, caption and url; partitions of 100K rows) and
imports them into a fresh collection of a randomly initialised model of the preset ("base"
has the shape of ViT-B/32: 512-d). The baseline is the same collection encoding ``--images``
small photo-like JPEGs end to end (``add_images``). Printed: rows/s of the import (each row
an image and a caption item), of an export, the seconds of a re-import (nothing read), and the
import's ratio to encoding.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_layout(root: Path, rows: int, dim: int, per_file: int = 100_000) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    for folder in ("img_emb", "text_emb", "metadata"):
        (root / folder).mkdir(parents=True)
    count = -(-rows // per_file)
    width = len(str(count - 1)) if count > 1 else 1
    for number, start in enumerate(range(0, rows, per_file)):
        n = min(per_file, rows - start)
        name = str(number).zfill(width)
        for folder in ("img_emb", "text_emb"):
            vectors = rng.normal(size=(n, dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            np.save(root / folder / f"{folder}_{name}.npy", vectors.astype(np.float16))
        ids = [f"{start + i:09d}" for i in range(n)]
        pq.write_table(pa.table({"image_path": ids, "caption": [f"caption number {i}" for i in ids],
                                 "url": [f"https://example.com/{i}.jpg" for i in ids]}),
                       root / "metadata" / f"metadata_{name}.parquet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--preset", default="base")
    parser.add_argument("--images", type=int, default=32)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from embed_throughput import make_photos

    from clipforge import Collection
    from clipforge.models.presets import build_random_clip

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spec = f"hf:{build_random_clip(tmp / 'model', args.preset, seed=0)}"
        make_photos(tmp / "photos", args.images)
        with Collection.create(tmp / "coll", model=spec) as coll:
            started = time.perf_counter()
            coll.add_images([tmp / "photos"])
            encode_rate = args.images / (time.perf_counter() - started)
            write_layout(tmp / "emb", args.rows, coll.dim)
            started = time.perf_counter()
            report = coll.import_embeddings(tmp / "emb", check_model_vectors=False)
            import_rate = args.rows / (time.perf_counter() - started)
            assert report.images == args.rows and report.texts == args.rows
            started = time.perf_counter()
            coll.import_embeddings(tmp / "emb", check_model_vectors=False)
            reimport_seconds = time.perf_counter() - started
            started = time.perf_counter()
            coll.export_embeddings(tmp / "out")
            export_rate = args.rows / (time.perf_counter() - started)
    print(f"preset {args.preset} ({coll.dim}-d), {args.rows} rows (each an image and a caption item)")
    print(f"encode images end to end (baseline): {encode_rate:10.1f} img/s")
    print(f"import:                              {import_rate:10.0f} rows/s  ({import_rate / encode_rate:,.0f}x encoding)")
    print(f"re-import, partitions marked:        {reimport_seconds:10.3f} s (files not read)")
    print(f"export (images, captions, metadata): {export_rate:10.0f} rows/s")


if __name__ == "__main__":
    main()
