"""Wall time of whole `clipforge` commands, against bare Python in the same run.

    python benchmarks/cli_latency.py [--preset base] [--images 300] [--rounds 5]

Builds a randomly initialised model of the preset ("base" has the shape of ViT-B/32) and a
collection of generated photos, then times, as separate processes in alternating rounds:
`python -c pass` and `python -c "import torch"` (the baselines), `clipforge --help`,
`clipforge info`, and `clipforge search` answered in its own process (`--local`, which loads
torch and the model; with ``--onnx``, also through an ONNX export of the model, without torch,
named by ``--model`` and kept as the collection's query model). Then it starts `clipforge
serve` for the collection and times `clipforge search` again, now handed to the server.
Prints the median and the spread of each, and the ratios that matter.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from serve_load import Server, make_collection

from clipforge import Collection

CLIPFORGE = [sys.executable, "-m", "clipforge"]


def timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-500:]}")
    return wall, done.stdout


def rounds(commands: dict[str, list[str]], n: int) -> dict[str, list[float]]:
    """Each command once per round, in the same order: a noisy moment hits every row alike."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(n):
        for name, command in commands.items():
            times[name].append(timed(command)[0])
    return times


def report(times: dict[str, list[float]]) -> dict[str, float]:
    medians = {}
    for name, values in times.items():
        medians[name] = statistics.median(values)
        print(f"  {name:<44} median {medians[name]:6.2f} s   (min {min(values):.2f}, max {max(values):.2f})",
              flush=True)
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="base")
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--onnx", action="store_true",
                        help="also time a search whose query an ONNX export of the model encodes (needs the [onnx] extra)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        collection = make_collection(Path(tmp), args.preset, args.images)
        c = str(collection)
        print(f"collection: {args.images} photos, a random {args.preset} model; {args.rounds} rounds\n", flush=True)
        onnx = []
        if args.onnx:
            from clipforge.models.onnx_export import export_onnx

            with Collection.open(collection) as opened:
                export_onnx(opened.model_spec, Path(tmp) / "onnx")
            onnx = [*CLIPFORGE, "search", "-c", c, "a dog on a beach", "--model", f"onnx:{Path(tmp) / 'onnx'}"]
        alone = report(rounds({
            "python -c pass": [sys.executable, "-c", "pass"],
            'python -c "import torch"': [sys.executable, "-c", "import torch"],
            "clipforge --help": [*CLIPFORGE, "--help"],
            "clipforge info": [*CLIPFORGE, "info", "-c", c],
            "clipforge search (no server: this process)": [*CLIPFORGE, "search", "-c", c, "a dog on a beach", "--local"],
            **({"clipforge search --model onnx:EXPORT (no server)": onnx} if onnx else {}),
        }, args.rounds))
        if args.onnx:  # the export kept as the collection's query model: no flag at search time
            with Collection.open(collection) as opened:
                opened.set_query_model(f"onnx:{Path(tmp) / 'onnx'}")
            report(rounds({"clipforge search (query model kept: the export)": [
                *CLIPFORGE, "search", "-c", c, "a dog on a beach", "--local"]}, args.rounds))
            with Collection.open(collection) as opened:
                opened.set_query_model("own")
        server = Server(collection, ["--log-level", "warning"])
        try:
            server.wait_ready()
            search = [*CLIPFORGE, "search", "-c", c, "a dog on a beach", "--json"]
            answered_by = json.loads(timed(search)[1])["answered_by"]
            if answered_by != server.url:
                raise RuntimeError(f"the search was not handed to the server ({answered_by})")
            handed = report(rounds({"clipforge search (a server runs)": search}, args.rounds))
        finally:
            server.stop()

    local, served = alone["clipforge search (no server: this process)"], handed["clipforge search (a server runs)"]
    bare, torch = alone["python -c pass"], alone['python -c "import torch"']
    print(f"\nsearch handed to the server: {local / served:.1f}x faster than alone; "
          f"{served - bare:.2f} s above `python -c pass`")
    print(f"search alone: {local - torch:.2f} s above importing torch")


if __name__ == "__main__":
    main()
