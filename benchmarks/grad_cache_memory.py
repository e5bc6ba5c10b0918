"""GradCache against plain training: peak memory and samples/s of whole `clipforge train`
processes, one configuration at a time, in one run.

    python benchmarks/grad_cache_memory.py DATA [--preset base] [--plain 64,128,256]
        [--batch 1024] [--chunk 128] [--steps 2]

DATA is a pair dataset with at least --batch training pairs (`clipforge data clipart OUT`).
Each configuration trains the preset from scratch for --steps steps, default precision and
loader workers, and reports the last step's samples/s and the process's peak resident set
from log.jsonl. Plain training at growing batches gives the memory each sample adds, so the
plain figure at --batch is estimated from it, not run: on a small machine it would not fit.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def train(data: str, out: Path, preset: str, batch: int, steps: int, chunk: int | None) -> dict:
    args = [
        sys.executable, "-m", "clipforge", "train", "--train", data, "--out", str(out), "--preset", preset,
        "--batch-size", str(batch), "--max-steps", str(steps), "--log-every", "1", "--save-every", "0",
        "--val-every", "0", "--warmup-steps", "1", "--json",
    ]
    if chunk:
        args += ["--grad-cache-chunk", str(chunk)]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"train failed ({batch=}, {chunk=}): {proc.stderr.strip().splitlines()[-1]}")
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    last = [r for r in records if r["kind"] == "train"][-1]
    return {"batch": batch, "chunk": chunk, "samples_per_s": last["samples_per_s"], "peak_mb": last["peak_rss_mb"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--preset", default="base")
    parser.add_argument("--plain", default="64,128,256", help="batch sizes of plain training")
    parser.add_argument("--batch", type=int, default=1024, help="the GradCache batch")
    parser.add_argument("--chunk", type=int, default=128)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = [(int(b), None) for b in args.plain.split(",")] + [(args.batch, args.chunk)]
        for i, (batch, chunk) in enumerate(runs):
            row = train(args.data, Path(tmp) / f"run{i}", args.preset, batch, args.steps, chunk)
            rows.append(row)
            print(f"{args.preset} batch {batch:>5} {'GradCache chunk ' + str(chunk) if chunk else 'plain':<20} "
                  f"{row['samples_per_s']:>8.2f} samples/s  peak RSS {row['peak_mb']:>8.0f} MB", flush=True)
    plain = [r for r in rows if r["chunk"] is None]
    if len(plain) >= 2:
        (b0, m0), (b1, m1) = (plain[0]["batch"], plain[0]["peak_mb"]), (plain[-1]["batch"], plain[-1]["peak_mb"])
        per_sample = (m1 - m0) / (b1 - b0)
        estimate = m1 + per_sample * (args.batch - b1)
        print(f"plain training adds {per_sample:.1f} MB per sample: batch {args.batch} would need about "
              f"{estimate / 1024:.1f} GB (estimated, not run)")


if __name__ == "__main__":
    main()
