"""clipforge's trainer beside open_clip's own (``open_clip_train.main``): the same pairs,
initial weights and hyper-parameters, alternating runs, one at a time.

    python benchmarks/train_vs_open_clip.py WORKDIR --open-clip-python VENV/bin/python
        [--data SHAPES] [--steps 30] [--rounds 1] [--settings fp32,bf16,bf16-77]

open_clip runs in its own virtual environment (open_clip_torch 3.3.0, torch 2.14.1,
torchvision 0.29.1, pandas, webdataset, braceexpand install there from PyPI). The model is
open_clip's ViT-B-32 with its own random initial weights, saved once and converted for
clipforge with ``clipforge convert``. Settings:

- ``fp32``: full precision; ``bf16``: bf16 autocast (open_clip ``--precision amp_bf16``; its
  default ``amp`` is fp16 autocast on a CPU, whose first step takes minutes);
- ``bf16-77``: bf16 with captions of 77 tokens or more, so both tools run the full context
  (clipforge pads a batch to its longest caption, open_clip always to 77).

Hyper-parameters: batch 32, lr 5e-4, warm-up 10, AdamW (0.9, 0.98, 1e-6), weight decay 0.2,
gradient clip 1.0, one loader worker, random crops of 90-100 % of the area
(open_clip's default) and no colour jitter. Figures: the median samples/s of the steps after the
fifth, the whole process's wall time, and its peak resident set (GNU time's maximum RSS).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

BATCH, LR, WARMUP = 32, 5e-4, 10
SKIP = 5  # steps left out of the median: start-up, allocator growth


def _make_init(python: str, work: Path) -> tuple[Path, Path]:
    checkpoint, converted = work / "open_clip_init.pt", work / "clipforge_init"
    if not checkpoint.exists():
        # The BPE vocabulary goes beside the checkpoint: clipforge's venv has no open_clip.
        code = ("import shutil, torch, open_clip; from open_clip.tokenizer import default_bpe; "
                "torch.manual_seed(0); m = open_clip.create_model('ViT-B-32'); "
                f"torch.save(m.state_dict(), {str(checkpoint)!r}); shutil.copy(default_bpe(), {str(work)!r})")
        subprocess.run([python, "-c", code], check=True)
    if not converted.exists():
        subprocess.run([sys.executable, "-m", "clipforge", "convert", f"open_clip:ViT-B-32/{checkpoint}",
                        f"hf:{converted}"], check=True)
    return checkpoint, converted


def _tables(data: Path, work: Path, steps: int) -> dict[str, Path]:
    """Exactly ``steps`` batches of pairs: open_clip runs a whole epoch of a CSV table."""
    rows = [r for r in csv.DictReader(open(data / "pairs.csv", encoding="utf-8")) if r["split"] == "train"]
    rows = list({r["image"]: r for r in rows}.values())  # one caption per image, as open_clip's table has
    if len(rows) < steps * BATCH:
        raise SystemExit(f"{data}: {len(rows)} training images, fewer than {steps} x {BATCH}")
    rows = rows[: steps * BATCH]
    out = {}
    for name, long in (("short", False), ("long", True)):
        path = work / f"train_{name}.tsv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, delimiter="\t")
            writer.writerow(["filepath", "title"])
            for r in rows:
                caption = " and ".join([r["caption"]] * 12) if long else r["caption"]  # >= 77 tokens
                writer.writerow([str(data / r["image"]), caption])
        out[name] = path
    return out


def _timed(args: list[str], cwd: Path) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in GB, and stderr+stdout of one whole process."""
    rss_file = cwd / "rss.txt"
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *args],
                          capture_output=True, text=True, cwd=cwd)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{args[:4]} failed:\n{proc.stderr[-2000:]}")
    rss_gb = int(rss_file.read_text().split()[-1]) / 2**20
    return wall, rss_gb, proc.stdout + proc.stderr


def run_open_clip(python: str, table: Path, init: Path, precision: str, steps: int, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    args = [
        python, "-m", "open_clip_train.main", "--train-data", str(table), "--dataset-type", "csv",
        "--csv-img-key", "filepath", "--csv-caption-key", "title", "--model", "ViT-B-32", "--pretrained", str(init), "--batch-size", str(BATCH), "--lr", str(LR),
        "--warmup", str(WARMUP), "--wd", "0.2", "--beta1", "0.9", "--beta2", "0.98", "--eps", "1e-6",
        "--grad-clip-norm", "1.0", "--workers", "1", "--epochs", "1", "--precision", precision,
        "--logs", str(out), "--name", "run", "--log-every-n-steps", "1", "--report-to", "", "--save-frequency", "0",
    ]
    wall, rss, text = _timed(args, out)
    rates = [float(m) for m in re.findall(r"Batch \(t\): [\d.]+, ([\d.]+)/s", text)]
    if len(rates) <= SKIP:
        raise SystemExit(f"open_clip logged {len(rates)} steps:\n{text[-2000:]}")
    return {"samples_per_s": statistics.median(rates[SKIP:]), "wall_s": wall, "peak_rss_gb": rss}


def run_clipforge(table: Path, init: Path, precision: str, steps: int, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    args = [
        sys.executable, "-m", "clipforge", "train", "--train", str(table), "--image-column", "filepath",
        "--caption-column", "title", "--init", f"hf:{init}", "--out", str(out / "run"), "--batch-size", str(BATCH),
        "--max-steps", str(steps), "--lr", str(LR), "--warmup-steps", str(WARMUP), "--weight-decay", "0.2",
        "--beta1", "0.9", "--beta2", "0.98", "--eps", "1e-6", "--grad-clip", "1.0", "--workers", "1",
        "--precision", precision, "--log-every", "1", "--save-every", "0", "--val-every", "0",
        "--crop-scale", "0.9", "--jitter", "0", "--json",
    ]
    wall, rss, _ = _timed(args, out)
    records = [json.loads(line) for line in (out / "run" / "log.jsonl").read_text().splitlines()]
    rates = [r["samples_per_s"] for r in records if r["kind"] == "train"]
    return {"samples_per_s": statistics.median(rates[SKIP:]), "wall_s": wall, "peak_rss_gb": rss}


SETTINGS = {  # name -> (clipforge precision, open_clip precision, captions)
    "fp32": ("fp32", "fp32", "short"),
    "bf16": ("bf16", "amp_bf16", "short"),
    "bf16-77": ("bf16", "amp_bf16", "long"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--open-clip-python", required=True, help="python of the venv with open_clip_train")
    parser.add_argument("--data", type=Path, default=None, help="a shapes dataset (default: made in WORKDIR)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--settings", default=",".join(SETTINGS))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    data = args.data or args.work / "shapes"
    if args.data is None:
        subprocess.run([sys.executable, "-m", "clipforge", "data", "shapes", str(data), "--n", str(args.steps * BATCH * 5 // 4 + 100)], check=True)
    checkpoint, converted = _make_init(args.open_clip_python, args.work)
    tables = _tables(data, args.work, args.steps)
    print(f"{'setting':<8} {'tool':<9} {'samples/s':>9} {'wall s':>7} {'peak RSS GB':>11}")
    for setting in args.settings.split(","):
        ours, theirs, captions = SETTINGS[setting]
        results: dict[str, list[dict]] = {"clipforge": [], "open_clip": []}
        for i in range(args.rounds):
            where = args.work / "runs" / f"{setting}-{i}"
            shutil.rmtree(where, ignore_errors=True)  # an earlier invocation's runs: each tool refuses to overwrite
            results["clipforge"].append(run_clipforge(tables[captions], converted, ours, args.steps, where / "cf"))
            results["open_clip"].append(
                run_open_clip(args.open_clip_python, tables[captions], checkpoint, theirs, args.steps, where / "oc"))
        medians = {tool: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for tool, rs in results.items()}
        for tool, m in medians.items():
            print(f"{setting:<8} {tool:<9} {m['samples_per_s']:>9.2f} {m['wall_s']:>7.1f} {m['peak_rss_gb']:>11.2f}")
        ratio = medians["clipforge"]["samples_per_s"] / medians["open_clip"]["samples_per_s"]
        print(f"{setting:<8} clipforge / open_clip samples/s: {ratio:.2f}x", flush=True)


if __name__ == "__main__":
    main()
