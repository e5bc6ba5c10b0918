"""What a text memory costs at inference, against the same model without it, in one run.

    python benchmarks/text_memory_cost.py [--model builtin:demo] [--images 2048] [--repeats 3]

Encodes the same random, already-normalised pixel batch with the model's image tower alone
and with its memory blended in (``TextMemory.blend``: one projection per image), and times
the projection by itself. Also times loading a memory file of that size. Prints the best of
``--repeats`` interleaved runs of each and their ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def best_of(repeats: int, work) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:demo")
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from clipforge.models import load_encoder
    from clipforge.models.text_memory import TextMemory

    encoder = load_encoder(args.model, device="cpu", precision="fp32")
    memory = encoder.text_memory
    if memory is None:
        raise SystemExit(f"{args.model} ships no text memory")
    height, width = encoder.preprocess.output_size
    pixels = np.random.default_rng(0).normal(size=(args.images, 3, height, width)).astype(np.float32)

    def without_memory():
        encoder.text_memory = None
        try:
            return encoder.encode_pixels(pixels)
        finally:
            encoder.text_memory = memory

    vectors = without_memory()  # also warms up the tower
    # Interleaved, so that a slow spell of a shared machine hits both alike.
    with_memory, alone = float("inf"), float("inf")
    for _ in range(args.repeats):
        with_memory = min(with_memory, best_of(1, lambda: encoder.encode_pixels(pixels)))
        alone = min(alone, best_of(1, without_memory))
    projection = best_of(args.repeats, lambda: memory.project(vectors))
    with tempfile.TemporaryDirectory() as tmp:
        saved = memory.save(Path(tmp) / "memory.safetensors")  # the size and format the model ships
        loading = best_of(args.repeats, lambda: TextMemory.load(saved))

    n = args.images
    print(f"{args.model}: {len(memory.vectors):,} captions, top_k {memory.top_k}, image_mix {memory.image_mix}")
    print(f"image tower alone      {n / alone:9.1f} images/s")
    print(f"with the memory        {n / with_memory:9.1f} images/s   ({with_memory / alone:.2f}x the time)")
    print(f"projection by itself   {n / projection:9.1f} images/s   ({projection / alone:.2f}x the tower's time)")
    print(f"loading the memory     {loading * 1000:9.1f} ms")


if __name__ == "__main__":
    main()
