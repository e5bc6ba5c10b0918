"""End-to-end indexing throughput against model-only throughput, measured in one run.

    python benchmarks/embed_throughput.py [--n 300] [--photos DIR] [--preset base]

Makes (or takes) a folder of photo-like JPEGs, a third each at 640x480, 1600x1200 and
4032x3024, and a randomly initialised model of the chosen preset ("base" has the shape of
ViT-B/32). It then measures, in this one process:

1. model only: ``encode_pixels`` on already-decoded, already-normalised tensors;
2. decode only: read + JPEG-draft decode + resize/crop on one core;
3. end to end: ``Collection.add_images`` into a fresh collection (decode pool, encoder,
   SQLite and vector writes all included).

Decoding and inference share the same cores, so the end-to-end ceiling is
``cores / (decode core-seconds + model core-seconds per image)``. Both the ratio to
model-only and the ratio to that ceiling are printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIZES = ((640, 480), (1600, 1200), (4032, 3024))


def make_photos(out: Path, n: int, seed: int = 0) -> None:
    """Photo-like JPEGs: a smooth two-colour blend, some filled shapes, sensor-like noise."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        w, h = SIZES[i % len(SIZES)]
        small = (w // 8, h // 8)
        t = np.linspace(0, 1, small[0], dtype=np.float32)[None, :, None]
        a, b = rng.uniform(30, 225, 3), rng.uniform(30, 225, 3)
        base = np.broadcast_to(a * (1 - t) + b * t, (small[1], small[0], 3))
        image = Image.fromarray(base.astype(np.uint8)).resize((w, h), Image.Resampling.BILINEAR)
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(6, 20))):
            x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
            box = [x, y, x + int(rng.integers(w // 20, w // 3)), y + int(rng.integers(h // 20, h // 3))]
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
        pixels = np.asarray(image, dtype=np.int16) + rng.normal(0, 4, (h, w, 3)).astype(np.int16)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out / f"photo_{i:04d}.jpg", quality=90)


def model_only(encoder, n: int, batch_size: int) -> float:
    h, w = encoder.preprocess.output_size
    pixels = np.random.default_rng(0).normal(size=(batch_size, 3, h, w)).astype(np.float32)
    encoder.encode_pixels(pixels[:8])  # warm-up: first-call allocation and kernel selection
    done, started = 0, time.perf_counter()
    while done < n:
        encoder.encode_pixels(pixels, batch_size=batch_size)
        done += batch_size
    return done / (time.perf_counter() - started)


def decode_only(paths: list[Path], preprocess) -> float:
    from clipforge.data.decode_pool import decode_file

    started = time.perf_counter()
    for path in paths:
        decode_file(str(path), preprocess)
    return len(paths) / (time.perf_counter() - started)


def end_to_end(photos: Path, spec: str, batch_size: int, workers: int | None) -> tuple[float, dict]:
    from clipforge import Collection

    with tempfile.TemporaryDirectory() as tmp, Collection.create(Path(tmp) / "bench", model=spec) as coll:
        started = time.perf_counter()
        report = coll.add_images([photos], batch_size=batch_size, workers=workers)
        seconds = time.perf_counter() - started
    return report.encoded / seconds, report.to_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300, help="photos to make (ignored with --photos)")
    parser.add_argument("--photos", type=Path, help="use this folder of JPEGs instead of making one")
    parser.add_argument("--preset", default="base", choices=["tiny", "small", "base"])
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None, help="decode processes (default: one per core)")
    args = parser.parse_args()

    import torch

    from clipforge.models import load_encoder
    from clipforge.models.presets import build_random_clip

    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        photos = args.photos
        if photos is None:
            photos = Path(tmp) / "photos"
            print(f"making {args.n} photos (640x480, 1600x1200, 4032x3024) ...", file=sys.stderr)
            make_photos(photos, args.n)
        paths = sorted(photos.glob("*.jpg"))
        model_dir = build_random_clip(Path(tmp) / "model", args.preset)
        spec = f"hf:{model_dir}"
        encoder = load_encoder(spec, precision=args.precision)
        threads = torch.get_num_threads()

        model_rate = model_only(encoder, max(len(paths), 4 * args.batch_size), args.batch_size)
        decode_rate = decode_only(paths, encoder.preprocess)
        e2e_rate, report = end_to_end(photos, spec, args.batch_size, args.workers)

    model_core_seconds = threads / model_rate
    decode_core_seconds = 1 / decode_rate
    ceiling = cores / (model_core_seconds + decode_core_seconds)
    print(f"images            {len(paths)} JPEGs in {photos}")
    print(f"model             {args.preset} preset, {encoder.precision}, {threads} torch threads, {cores} cores")
    print(f"model only        {model_rate:8.1f} img/s   (decoded tensors, batch {args.batch_size})")
    print(f"decode only       {decode_rate:8.1f} img/s   (one core, JPEG draft + resize/crop)")
    print(f"ceiling           {ceiling:8.1f} img/s   (cores / (decode + model core-seconds per image))")
    print(f"end to end        {e2e_rate:8.1f} img/s   (clipforge index: decode pool + encode + write)")
    print(f"end to end / model only   {e2e_rate / model_rate:6.1%}")
    print(f"end to end / ceiling      {e2e_rate / ceiling:6.1%}")
    print(f"report            {report['encoded']} encoded, {report['skipped']} skipped")


if __name__ == "__main__":
    main()
