"""``clipforge embed`` in this process and on a local Ray cluster, beside ``clipforge index``,
on the same photos and model: whole processes, start-up included, alternating rounds.

    python benchmarks/embed_engines.py --photos DIR --model SPEC [--rounds 3] [--block-size 100]

Each round runs, one after the other: ``index`` into a fresh collection, ``embed`` into a fresh
folder, and ``embed --ray`` into a fresh folder (a new local cluster each time, its start-up
counted). Prints the median wall time and images/s of each, and each as a ratio to ``index``.
On one machine Ray adds its start-up and its object store hand-offs; what it buys is the same
command on a cluster of many machines.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _timed(args: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args[:4])} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, required=True, help="a folder of images (benchmarks/embed_throughput.py makes one)")
    parser.add_argument("--model", required=True, metavar="SPEC")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--block-size", type=int, default=100)
    args = parser.parse_args()
    exe = str(Path(sys.executable).with_name("clipforge"))
    images = sum(1 for p in args.photos.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    work = Path(tempfile.mkdtemp(prefix="embed-engines-"))
    runs = {
        "index": lambda out: [exe, "index", str(args.photos), "-c", str(out), "--model", args.model],
        "embed": lambda out: [exe, "embed", str(args.photos), "--out", str(out), "--model", args.model,
                              "--block-size", str(args.block_size)],
        "embed --ray": lambda out: [exe, "embed", str(args.photos), "--out", str(out), "--model", args.model,
                                    "--block-size", str(args.block_size), "--ray"],
    }
    walls: dict[str, list[float]] = {name: [] for name in runs}
    try:
        for i in range(args.rounds):
            for name, command in runs.items():
                out = work / f"{name.replace(' ', '')}-{i}"
                walls[name].append(_timed(command(out)))
                shutil.rmtree(out, ignore_errors=True)
                print(f"round {i}: {name:<12} {walls[name][-1]:6.1f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = statistics.median(walls["index"])
    print(f"\n{images} images, model {args.model}, median of {args.rounds} rounds")
    print(f"{'engine':<12} {'wall s':>7} {'img/s':>6} {'vs index':>8}")
    for name, values in walls.items():
        wall = statistics.median(values)
        print(f"{name:<12} {wall:7.1f} {images / wall:6.1f} {base / wall:7.2f}x")


if __name__ == "__main__":
    main()
