"""Text search under load, with query batching on and off, measured in one run.

    python benchmarks/serve_load.py [--preset base] [--requests 240] [--concurrency 1 8 32]
    python benchmarks/serve_load.py --model builtin:demo --items 100000 --query-model onnx \
                                    --client wrk --seconds 30 --concurrency 32

Builds a randomly initialised model of the preset ("base" has the shape of ViT-B/32; "small"
and "tiny" are quicker), indexes a small collection of generated photos with it, then starts
``clipforge serve`` twice as a separate process on loopback: with text query batching (the
default) and with ``--no-batching`` (the baseline). Against each it sends a bounded number
of ``POST /search`` text queries at each concurrency and prints QPS, p50 and p99 latency,
and the batched/unbatched ratios. Every query is a distinct text.

``--model SPEC --items N [--index TYPE]`` serves instead a collection of that model holding N
clustered unit vectors (builtin:demo has a MiniLM-L6 text tower); ``--query-model onnx`` exports
the model (int8, and OpenVINO's variants where installed) and keeps the export as the
collection's query model. ``--client wrk`` loads the server with wrk (Debian's ``wrk``; one
thread, a Lua script making each query distinct) for ``--seconds``, instead of the Python
client: wrk costs the shared cores far less, so more of them is left to the server.

The client runs on the same machine as the server and takes some of the same cores; both
modes pay that equally.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

WORDS = "dog cat bird car apple beach night red blue green yellow small large photo picture".split()


def make_collection(root: Path, preset: str, n_images: int) -> Path:
    from clipforge.index.collection import Collection
    from clipforge.models.presets import build_random_clip

    model = build_random_clip(root / "model", preset)
    rng = np.random.default_rng(0)
    photos = root / "photos"
    photos.mkdir()
    for i in range(n_images):
        pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).resize((320, 240), Image.Resampling.BILINEAR).save(photos / f"p{i:04d}.jpg")
    with Collection.create(root / "pics", model=f"hf:{model}") as collection:
        collection.add_images([photos])
    return root / "pics"


ADJECTIVES = "red blue green yellow small large old new wet dark bright quiet busy empty tall tiny".split()
NOUNS = "dog cat bird car apple boat house tree bicycle child woman man horse flower train chair".split()
PLACES = ("on a beach", "at night", "in the snow", "in a kitchen", "on a street", "in a forest", "by a river",
          "under a blue sky", "in the rain", "on a table", "in a garden", "at the station")


def captions(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct captions of a few words, in the manner of an image collection's texts."""
    rng = np.random.default_rng(seed)
    out: dict[str, None] = {}
    while len(out) < n:
        a, b = rng.choice(ADJECTIVES, 2)
        noun, other, place = rng.choice(NOUNS), rng.choice(NOUNS), rng.choice(PLACES)
        out[f"a {a} {noun} and a {b} {other} {place} {int(rng.integers(1000))}"] = None
    return list(out)


def make_vector_collection(root: Path, model: str, items: int, query_model: str | None, index: str) -> Path:
    """A collection of ``model`` holding ``items`` captions as text items, encoded by the query
    model: real text embeddings, clustered as real collections are, which an approximate
    index relies on."""
    from clipforge.index.collection import Collection
    from clipforge.index.store import NewItem

    with Collection.create(root / "pics", model=model, index=index) as collection:
        if query_model == "onnx":
            from clipforge.models.onnx_export import export_onnx

            openvino = all(importlib.util.find_spec(m) for m in ("openvino", "nncf"))
            export_onnx(model, root / "export", int8=True, openvino=openvino)
            collection.set_query_model(f"onnx:{root / 'export'}")
            print(f"query model: onnx:{root / 'export'} (text variant "
                  f"{collection.query_encoder.variants['text']})", flush=True)
        texts = captions(items)
        print(f"encoding {items:,} captions ...", flush=True)
        vectors = np.concatenate([collection.query_encoder.encode_texts(texts[i : i + 1024])
                                  for i in range(0, items, 1024)])
        with collection.writing():
            first = collection.append_vectors(vectors)
            collection.commit([NewItem(kind="text", key=f"t{i}", text=t, vector_row=first + i)
                               for i, t in enumerate(texts)])
        collection.update_index()
        print(f"index: {collection.indexes.describe()['text']}", flush=True)
    return root / "pics"


WRK_SCRIPT = """
local words = {%s}
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  local a, b, c = words[n %% #words + 1], words[(n * 7) %% #words + 1], words[(n * 13) %% #words + 1]
  return wrk.format(nil, "/search", nil, string.format('{"text": "a %%s %%s %%s %%d", "k": 10, "target": "%s"}',
                                                      a, b, c, n))
end
"""


def wrk_load(url: str, concurrency: int, seconds: int, script: Path) -> Figures:
    """QPS and latency from wrk; refuses a run with any error or non-200 answer."""
    done = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--latency", "-s", str(script), url],
                          capture_output=True, text=True, check=True)
    out = done.stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")

    def ms(label: str) -> float:
        value = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return float(value.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[value.group(2)]

    requests = int(re.search(r"(\d+) requests in", out).group(1))
    qps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return Figures(concurrency, requests, qps, ms("50%"), ms("99%"))


def queries(n: int, seed: int) -> list[str]:
    """Distinct short texts, so no two requests are the same query."""
    rng = np.random.default_rng(seed)
    return [f"a {' '.join(rng.choice(WORDS, size=3))} {i}" for i in range(n)]


class Server:
    """``clipforge serve`` in its own process, on a free loopback port."""

    def __init__(self, collection: Path, extra: list[str]):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "clipforge", "serve", "-c", str(collection), "--port", str(self.port), *extra]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("the server exited")
            try:
                if httpx.get(self.url + "/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the server did not become ready")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


@dataclass
class Figures:
    concurrency: int
    requests: int
    qps: float
    p50_ms: float
    p99_ms: float


async def load(url: str, texts: list[str], concurrency: int, target: str = "image") -> Figures:
    latencies: list[float] = []
    pending = iter(texts)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def worker() -> None:
            for text in pending:  # one shared iterator: each text is sent once
                started = time.perf_counter()
                response = await client.post("/search", json={"text": text, "k": 10, "target": target})
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(f"{response.status_code}: {response.text}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    ms = sorted(x * 1000 for x in latencies)
    p99 = ms[min(len(ms) - 1, int(round(0.99 * (len(ms) - 1))))]
    return Figures(concurrency, len(ms), len(ms) / wall, statistics.median(ms), p99)


def measure(collection: Path, mode: str, extra: list[str], concurrencies: list[int], n: int,
            wrk_seconds: int | None = None, target: str = "image") -> list[Figures]:
    server = Server(collection, extra)
    try:
        server.wait_ready()
        asyncio.run(load(server.url, queries(16, seed=99), 4))  # warm-up: first-call costs, connections
        results = []
        script = collection.parent / "queries.lua"
        script.write_text(WRK_SCRIPT % (", ".join(f'"{w}"' for w in WORDS), target))
        for c in concurrencies:
            if wrk_seconds:
                figures = wrk_load(server.url, c, wrk_seconds, script)
            else:
                figures = asyncio.run(load(server.url, queries(n, seed=c), c, target))
            print(f"{mode:>10} c={c:<3} {figures.requests:>5} req  {figures.qps:8.1f} QPS  "
                  f"p50 {figures.p50_ms:8.1f} ms  p99 {figures.p99_ms:8.1f} ms", flush=True)
            results.append(figures)
        return results
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="base", choices=["tiny", "small", "base"])
    parser.add_argument("--requests", type=int, default=240, help="requests per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--images", type=int, default=64, help="images in the collection")
    parser.add_argument("--model", help="serve a collection of this model spec holding --items imported vectors")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--query-model", choices=["own", "onnx"], default="own")
    parser.add_argument("--index", default="auto", help="with --model: the collection's index type")
    parser.add_argument("--client", choices=["python", "wrk"], default="python")
    parser.add_argument("--seconds", type=int, default=30, help="with --client wrk: seconds per concurrency level")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.path.insert(0, str(Path(__file__).resolve().parent))

    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            print(f"building a collection of {args.model} with {args.items:,} imported vectors ...", flush=True)
            collection = make_vector_collection(Path(tmp), args.model, args.items, args.query_model, args.index)
        else:
            print(f"building a random '{args.preset}' CLIP and a collection of {args.images} images ...", flush=True)
            collection = make_collection(Path(tmp), args.preset, args.images)
        print(f"cores: {os.cpu_count()}; server and client ({args.client}) share them\n", flush=True)
        seconds = args.seconds if args.client == "wrk" else None
        target = "text" if args.model else "image"  # --model: a collection of captions
        batched = measure(collection, "batched", [], args.concurrency, args.requests, seconds, target)
        baseline = measure(collection, "unbatched", ["--no-batching"], args.concurrency, args.requests, seconds,
                           target)
    print("\nbatched / unbatched (same run):")
    for b, u in zip(batched, baseline, strict=True):
        print(f"  c={b.concurrency:<3} QPS x{b.qps / u.qps:5.2f}   p50 x{b.p50_ms / u.p50_ms:5.2f}   "
              f"p99 x{b.p99_ms / u.p99_ms:5.2f}")


if __name__ == "__main__":
    main()
