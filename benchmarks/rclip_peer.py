"""Whole-process indexing beside rclip 3.3.0, on the same photos and the same weights.

    python benchmarks/embed_throughput.py --rclip WORKDIR [--rounds 3]

WORKDIR is what ``../shared/bench/peers/setup.sh WORKDIR`` made: rclip in its own venv, the
reference photos (300 JPEGs, a third each at 640x480, 1600x1200 and 4032x3024) and rclip's
model (random weights of open_clip's ViT-B-32-256, exported to ONNX fp32 as rclip does). Its
``export-venv`` has open_clip: the same random weights (same seed) are written once as an
open_clip checkpoint, which clipforge loads as ``open_clip:ViT-B-32-256/<checkpoint>`` and
exports (``clipforge export onnx --int8``, plus ``--openvino`` where installed). Both tools
then index the same photos with the same model, each in its own processes, in rounds that
take the runs in turn:

- rclip: ``rclip -t 1 "a dog"`` on a fresh database (index, then one query), and
  ``rclip -n -t 1 "a dog"`` (start-up and the query, no indexing);
- clipforge: ``clipforge index PHOTOS -c NEW --model SPEC`` into a new collection, the same
  command again on the unchanged folder (start-up and a scan, nothing encoded), and
  ``clipforge search -c NEW "a dog" -k 1 --local``.

images/s is ``N / (indexing run - the run that indexes nothing)``, as rclip's own
benchmark (``bench_rclip.py``) computes it; CPU-s is user + system of the process and its
decode workers.
"""

from __future__ import annotations

import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHECKPOINT = "ckpt/vitb32_256_random.pt"
ARCH = "ViT-B-32-256"
_WRITE_CHECKPOINT = (
    "import sys, torch, open_clip\n"
    "torch.manual_seed(0)\n"  # build_rclip_models.py's seed: the weights rclip's ONNX files hold
    f"model = open_clip.create_model({ARCH!r}, pretrained=None).eval()\n"
    "torch.save(model.state_dict(), sys.argv[1])\n"
)


def _run(command: list[str], cwd: Path | None = None, env: dict | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and its children) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def prepare(workdir: Path, clipforge: list[str]) -> dict[str, str]:
    """The clipforge specs of rclip's weights: {"open_clip": ..., "export": ...}, made once."""
    checkpoint = workdir / CHECKPOINT
    if not checkpoint.is_file():
        checkpoint.parent.mkdir(exist_ok=True)
        print("writing rclip's random weights as an open_clip checkpoint ...", file=sys.stderr, flush=True)
        subprocess.run([str(workdir / "export-venv/bin/python"), "-c", _WRITE_CHECKPOINT, str(checkpoint)], check=True)
        # The BPE vocabulary beside the checkpoint: clipforge's open_clip loader looks there first.
        shutil.copy(workdir / "rclip-data/tokenizer/bpe_simple_vocab_16e6.txt.gz", checkpoint.parent)
    source = f"open_clip:{ARCH}/{checkpoint}"
    export = workdir / "clipforge-export"
    if not export.is_dir():
        print("exporting it with clipforge export onnx ...", file=sys.stderr, flush=True)
        openvino = ["--openvino"] if _has("openvino") and _has("nncf") else []
        subprocess.run([*clipforge, "export", "onnx", source, str(export), "--int8", *openvino], check=True)
    return {"open_clip": source, "export": f"onnx:{export}"}


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def side_by_side(workdir: Path, rounds: int, clipforge: list[str]) -> None:
    specs = prepare(workdir, clipforge)
    photos = workdir / "photos"
    n = len(list(photos.glob("*.jpg")))
    rclip, data = workdir / "rclip-venv/bin/rclip", workdir / "rclip-data"
    env = {"RCLIP_DATADIR": str(data), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    rows: dict[str, dict[str, list[float]]] = {}

    def record(name: str, **values: float) -> None:
        for key, value in values.items():
            rows.setdefault(name, {}).setdefault(key, []).append(value)

    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(rounds):
            print(f"round {round_ + 1}/{rounds}: rclip ...", file=sys.stderr, flush=True)
            (data / "db.sqlite3").unlink(missing_ok=True)
            wall, cpu = _run([str(rclip), "-t", "1", "a dog"], cwd=photos, env=env)
            fixed, _ = _run([str(rclip), "-n", "-t", "1", "a dog"], cwd=photos, env=env)
            record("rclip 3.3.0 (ONNX Runtime fp32)", wall=wall, cpu=cpu, fixed=fixed, query=fixed)
            for number, (label, spec) in enumerate((
                    ("clipforge, torch (the open_clip checkpoint)", specs["open_clip"]),
                    ("clipforge, its export (onnx:, precision auto)", specs["export"]))):
                print(f"round {round_ + 1}/{rounds}: {label} ...", file=sys.stderr, flush=True)
                collection = Path(tmp) / f"round{round_}-{number}"  # new each time: nothing to reuse
                index = [*clipforge, "index", str(photos), "-c", str(collection), "--model", spec]
                wall, cpu = _run(index)
                fixed, _ = _run(index)
                query, _ = _run([*clipforge, "search", "-c", str(collection), "a dog", "-k", "1", "--local"])
                record(label, wall=wall, cpu=cpu, fixed=fixed, query=query)
    _print(rows, n, rounds)


def _print(rows: dict[str, dict[str, list[float]]], n: int, rounds: int) -> None:
    medians = {name: {k: statistics.median(v) for k, v in row.items()} for name, row in rows.items()}
    base = medians["rclip 3.3.0 (ONNX Runtime fp32)"]
    base_rate = n / (base["wall"] - base["fixed"])
    print(f"\n{n} photos, the same random ViT-B-32-256 weights in both tools, medians of {rounds} alternating rounds")
    print(f"{'':<48}{'index wall':>11}{'CPU-s':>8}{'x rclip':>9}{'img/s':>8}{'x rclip':>9}{'no-index run':>14}"
          f"{'query run':>11}")
    for name, m in medians.items():
        rate = n / (m["wall"] - m["fixed"])
        print(f"{name:<48}{m['wall']:>10.2f}s{m['cpu']:>8.1f}{base['wall'] / m['wall']:>8.2f}x{rate:>8.1f}"
              f"{rate / base_rate:>8.2f}x{m['fixed']:>13.2f}s{m['query']:>10.2f}s")
    print("index wall: the whole indexing process (rclip's includes its query); img/s: N / (index wall - no-index run);\n"
          "no-index run: rclip -n (start-up + query), clipforge: the same index command on the unchanged folder;\n"
          "query run: a whole `search` process (rclip: the -n run again)")
