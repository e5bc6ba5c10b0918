"""End-to-end indexing throughput against model-only throughput, per runtime, measured in one run.

    python benchmarks/embed_throughput.py [--n 300] [--photos DIR] [--preset base]
                                          [--runtimes torch-fp32,torch-bf16,onnx-fp32,onnx-int8,onnx-bf16,onnx-auto]
    python benchmarks/embed_throughput.py --rclip WORKDIR [--rounds 3]     # beside rclip: rclip_peer.py

Makes (or takes) a folder of photo-like JPEGs, a third each at 640x480, 1600x1200 and
4032x3024, and a randomly initialised model of the chosen preset ("base" has the shape of
ViT-B/32), exported to ONNX (fp32, dynamic int8 and, where OpenVINO and NNCF are installed,
OpenVINO's int8 and bf16) in the same run. It then measures, in this one process, for each
runtime (an ``onnx-*`` precision runs the export's fastest variant of it):

1. model only: ``encode_pixels`` on already-decoded, already-normalised tensors;
2. end to end: ``Collection.add_images`` into a fresh collection (decode pool, encoder,
   SQLite and vector writes all included);
3. agreement: the cosine between its vectors and torch fp32's for the same photos;

and once, decode only: read + JPEG-draft decode + resize/crop on one core. Every rate is
also given as a ratio to torch fp32's in the same run.

Decoding and inference share the same cores, so the end-to-end ceiling is
``cores / (decode core-seconds + model core-seconds per image)``. Both the ratio to
model-only and the ratio to that ceiling are printed.
"""

from __future__ import annotations

import argparse
import importlib.util
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
    from clipforge.index.reading import read_for_index

    started = time.perf_counter()
    for path in paths:
        read_for_index(str(path), preprocess)
    return len(paths) / (time.perf_counter() - started)


def end_to_end(photos: Path, spec: str, precision: str, batch_size: int, workers: int | None) -> tuple[float, dict]:
    from clipforge import Collection

    with tempfile.TemporaryDirectory() as tmp, \
            Collection.create(Path(tmp) / "bench", model=spec, precision=precision) as coll:
        started = time.perf_counter()
        report = coll.add_images([photos], batch_size=batch_size, workers=workers)
        seconds = time.perf_counter() - started
    return report.encoded / seconds, report.to_dict()


RUNTIMES = {"torch-fp32": ("hf", "fp32"), "torch-bf16": ("hf", "bf16"), "onnx-fp32": ("onnx", "fp32"),
            "onnx-int8": ("onnx", "int8"), "onnx-bf16": ("onnx", "bf16"), "onnx-auto": ("onnx", "auto")}


def agreement(encoder, baseline: np.ndarray, paths: list[Path]) -> tuple[float, float]:
    """(min, mean) cosine between ``encoder``'s vectors of ``paths`` and the baseline's."""
    cosine = (encoder.encode_images(paths) * baseline).sum(axis=1)
    return float(cosine.min()), float(cosine.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300, help="photos to make (ignored with --photos)")
    parser.add_argument("--photos", type=Path, help="use this folder of JPEGs instead of making one")
    parser.add_argument("--preset", default="base", choices=["tiny", "small", "base"])
    parser.add_argument("--runtimes", default=",".join(RUNTIMES),
                        help=f"comma-separated, from {', '.join(RUNTIMES)}; torch-fp32 is always the baseline")
    parser.add_argument("--rounds", type=int, default=3, help="model-only rounds over all runtimes (median kept)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None, help="decode processes (default: one per core)")
    parser.add_argument("--rclip", type=Path, metavar="WORKDIR",
                        help="instead: whole-process indexing beside rclip, from ../shared/bench/peers/setup.sh WORKDIR")
    args = parser.parse_args()
    if args.rclip:
        from rclip_peer import side_by_side

        side_by_side(args.rclip.resolve(), args.rounds, [sys.executable, "-m", "clipforge"])
        return
    wanted = ["torch-fp32"] + [r for r in dict.fromkeys(args.runtimes.split(",")) if r and r != "torch-fp32"]
    unknown = [r for r in wanted if r not in RUNTIMES]
    if unknown:
        parser.error(f"unknown runtimes {unknown}; choose from {', '.join(RUNTIMES)}")

    import torch

    from clipforge.models import load_encoder
    from clipforge.models.device import cpu_has_native_bf16
    from clipforge.models.onnx_export import export_onnx
    from clipforge.models.presets import build_random_clip

    if "torch-bf16" in wanted and not cpu_has_native_bf16():
        print("torch-bf16 skipped: this CPU has no native bf16", file=sys.stderr)
        wanted.remove("torch-bf16")
    openvino = all(importlib.util.find_spec(m) for m in ("openvino", "nncf"))
    if "onnx-bf16" in wanted and not openvino:
        print("onnx-bf16 skipped: it runs on OpenVINO, which is not installed", file=sys.stderr)
        wanted.remove("onnx-bf16")
    cores = len(os.sched_getaffinity(0))
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        photos = args.photos
        if photos is None:
            photos = Path(tmp) / "photos"
            print(f"making {args.n} photos (640x480, 1600x1200, 4032x3024) ...", file=sys.stderr)
            make_photos(photos, args.n)
        paths = sorted(photos.glob("*.jpg"))
        model_dir = build_random_clip(Path(tmp) / "model", args.preset)
        specs = {"hf": f"hf:{model_dir}", "onnx": f"onnx:{Path(tmp) / 'onnx'}"}
        if any(r.startswith("onnx") for r in wanted):
            print("exporting to ONNX (fp32 and int8, and OpenVINO's where installed) ...", file=sys.stderr)
            started = time.perf_counter()
            export_onnx(specs["hf"], Path(tmp) / "onnx", int8=True, openvino=openvino)
            print(f"export took {time.perf_counter() - started:.0f} s", file=sys.stderr)
        threads = torch.get_num_threads()
        sample = paths[:32]
        encoders = {r: load_encoder(specs[RUNTIMES[r][0]], precision=RUNTIMES[r][1]) for r in wanted}
        for runtime, encoder in encoders.items():
            if RUNTIMES[runtime][0] == "onnx":
                print(f"{runtime} runs the export's {encoder.variants['image']}", file=sys.stderr)
        baseline = encoders["torch-fp32"].encode_images(sample)
        # Model-only rates in rounds that take the runtimes in turn, the median kept: a load
        # that comes and goes on a shared machine then falls on every runtime alike.
        rates = {r: [] for r in wanted}
        for round_ in range(args.rounds):
            for runtime, encoder in encoders.items():
                print(f"round {round_ + 1}/{args.rounds}: model only, {runtime} ...", file=sys.stderr)
                rates[runtime].append(model_only(encoder, max(len(paths) // args.rounds, 2 * args.batch_size),
                                                 args.batch_size))
        for runtime, encoder in encoders.items():
            scheme, precision = RUNTIMES[runtime]
            print(f"end to end, {runtime} ...", file=sys.stderr)
            rows[runtime] = {
                "model": float(np.median(rates[runtime])),
                "e2e": end_to_end(photos, specs[scheme], precision, args.batch_size, args.workers)[0],
                "agreement": agreement(encoder, baseline, sample),
                "threads": threads if scheme == "hf" else cores,  # ONNX Runtime: one thread per core
            }
        decode_rate = decode_only(paths, encoder.preprocess)

    base = rows["torch-fp32"]
    print(f"images            {len(paths)} JPEGs in {photos}")
    print(f"model             {args.preset} preset, {threads} torch threads, {cores} cores")
    print(f"decode only       {decode_rate:8.1f} img/s   (one core, JPEG draft + resize/crop)")
    print(f"{'runtime':<12}{'model img/s':>12}{'x fp32':>8}{'e2e img/s':>11}{'x fp32':>8}{'ceiling':>9}"
          f"{'e2e/ceil':>9}{'cos min':>9}{'cos mean':>10}")
    for runtime, row in rows.items():
        ceiling = cores / (row["threads"] / row["model"] + 1 / decode_rate)
        low, mean = row["agreement"]
        print(f"{runtime:<12}{row['model']:>12.1f}{row['model'] / base['model']:>8.2f}{row['e2e']:>11.1f}"
              f"{row['e2e'] / base['e2e']:>8.2f}{ceiling:>9.1f}{row['e2e'] / ceiling:>9.1%}{low:>9.5f}{mean:>10.5f}")
    print(f"model: decoded tensors, batch {args.batch_size}, median of {args.rounds} rounds; "
          "e2e: clipforge index (decode pool + encode + write);\n"
          "ceiling: cores / (decode + model core-seconds per image); cos: vectors of 32 photos against torch fp32's")


if __name__ == "__main__":
    main()
