"""The vectors of ``embed``, computed on a Ray cluster with Ray Data.

Reading and resizing run as Ray tasks on any node's CPUs; the model runs in a pool of actors,
one per GPU where the cluster has GPUs, loaded once each. Ray retries a task or restarts an
actor whose process died; the driver keys each result by (block, position), so a retried
batch's second answer replaces the first rather than adding to it, and only whole blocks are
written (``embed._Blocks``).
"""

from __future__ import annotations

import json
import logging
import math
import pickle
import socket
import warnings
from collections.abc import Iterable, Sequence

import numpy as np

from ..errors import InputError
from ..models import load_encoder
from ..processes import usable_cores
from .embed import Result, image_row
from .embed_blocks import Plan
from .listed import Listed
from .reading import read_for_index

log = logging.getLogger(__name__)
_CONNECT_TIMEOUT_S = 10


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401 (the part this module uses)
    except ImportError:
        raise InputError("--ray needs Ray Data: pip install 'clipforge[ray]'") from None
    return ray


def connect(address: str) -> None:
    """Join the cluster at ``address``; "auto": the one ``ray start`` left running here, else a new local one."""
    ray = _ray()
    if ray.is_initialized():
        return
    if address == "auto":
        try:
            ray.init(address="auto", log_to_driver=False, logging_level=logging.WARNING)
            return
        except ConnectionError:
            pass  # none running: start one
    _check_reachable(address)
    try:
        with warnings.catch_warnings():  # Ray's client warns of a timeout before raising it: one line is enough
            warnings.simplefilter("ignore")
            _init(ray, address)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise InputError(f"cannot reach the Ray cluster at {address}: {str(e).splitlines()[0]}") from None


def _check_reachable(address: str) -> None:
    """One line at once for an address nothing answers at: Ray itself retries for minutes."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"Ray address {address!r}: expected HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=_CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise InputError(f"cannot reach the Ray cluster at {address}: {e.strerror or e}") from None


def _init(ray, address: str) -> None:
    if address == "auto":  # no cluster running here: start one
        ray.init(num_cpus=usable_cores(), include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    else:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)


def _read_batch(batch: dict[str, np.ndarray], preprocess) -> dict[str, np.ndarray]:
    """A Ray task: read, hash, decode and resize each image of a batch (never raises for one)."""
    reads = [read_for_index(pickle.loads(source), preprocess) for source in batch["source"]]
    listed = [pickle.loads(entry) for entry in batch["listed"]]
    shape = (*preprocess.output_size[::-1], 3)
    pixels = np.stack([r.pixels if r.pixels is not None else np.zeros(shape, np.uint8) for r in reads])
    rows = [{} if r.error else {"metadata": r.metadata, "sha256": r.sha256} for r in reads]
    return {
        "block": batch["block"], "position": batch["position"], "pixels": pixels,
        "error": np.array([r.error or "" for r in reads], dtype=object),
        "read": np.array([json.dumps(row) for row in rows], dtype=object),
        "listed": np.array([pickle.dumps(e) for e in listed], dtype=object),
    }


class _Embedder:
    """A Ray actor: the model, loaded once, encoding batches of resized pixels."""

    def __init__(self, spec: str, device: str, precision: str):
        self.encoder = load_encoder(spec, device=device, precision=precision)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ok = np.array([not error for error in batch["error"]], dtype=bool)
        vectors = np.zeros((len(ok), self.encoder.dim), np.float32)
        if ok.any():
            vectors[ok] = self.encoder.encode_decoded(batch["pixels"][ok], batch_size=int(ok.sum()))
        out = {k: v for k, v in batch.items() if k != "pixels"}
        out["vector"] = vectors
        return out


def _results(batch: dict[str, np.ndarray]) -> Iterable[Result]:
    for i in range(len(batch["block"])):
        block, position, error = int(batch["block"][i]), int(batch["position"][i]), batch["error"][i]
        if error:
            yield Result(block, position, error=str(error))
            continue
        read = json.loads(batch["read"][i])
        entry: Listed = pickle.loads(batch["listed"][i])
        yield Result(block, position, row=image_row(entry, read["metadata"], read["sha256"]),
                     vector=np.asarray(batch["vector"][i], np.float32))


def embed_on_ray(plan: Plan, blocks: Sequence[int], spec: str, *, device: str, precision: str, batch_size: int) -> Iterable[Result]:
    """The results of ``blocks``, on the cluster ``connect`` joined."""
    ray = _ray()
    if not blocks:
        return
    preprocess = load_encoder(spec, device=device, precision=precision).preprocess
    rows = [
        {"block": number, "position": position, "source": pickle.dumps(item.source), "listed": pickle.dumps(item)}
        for number in blocks for position, item in enumerate(plan.block(number))
    ]
    gpus = int(ray.cluster_resources().get("GPU", 0))
    actors = gpus or max(1, int(ray.cluster_resources().get("CPU", 1)) // 2)
    log.info("embedding %d images on Ray: %d model actor(s)%s", len(rows), actors, " on GPUs" if gpus else "")
    # Read tasks of one model batch each: results stream back batch by batch, and blocks are
    # written as they complete rather than all at the end.
    data = ray.data.from_items(rows, override_num_blocks=math.ceil(len(rows) / batch_size))
    data = data.map_batches(_read_batch, fn_kwargs={"preprocess": preprocess}, batch_size=batch_size,
                            batch_format="numpy")
    data = data.map_batches(
        _Embedder, fn_constructor_kwargs={"spec": spec, "device": "cuda" if gpus else device, "precision": precision},
        batch_size=batch_size, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors),
        num_gpus=1 if gpus else 0,
    )
    for batch in data.iter_batches(batch_size=None, batch_format="numpy"):
        yield from _results(batch)

