"""``clipforge embed``: vectors of a whole source, written as clip-retrieval's layout, in this
process or on a Ray cluster (``embed_ray``).

The vectors are those ``clipforge index`` stores for the same files: the same reader
(``reading.read_for_index``), resize and model. Either engine hands back one result per image
and this module groups them into blocks (``embed_blocks``), so resuming, skipping bad images
and the output layout do not depend on where the vectors were computed. The folder can then be
imported into a collection (``clipforge import-embeddings``) or served by any tool that reads the layout.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..models import load_encoder
from ..models.pipeline import decode_images
from .embed_blocks import BlockFolder, Plan, list_sources
from .listed import Listed, merged_metadata
from .reading import ReadImage, read_for_index

DEFAULT_BLOCK_SIZE = 10_000


@dataclass
class Result:
    """One image's outcome: its vector and metadata row, or why it has none."""

    block: int
    position: int  # within the block
    row: dict | None = None
    vector: np.ndarray | None = None
    error: str | None = None


@dataclass
class EmbedReport:
    out: str
    engine: str
    items: int = 0
    blocks: int = 0
    blocks_done_before: int = 0  # found finished and left alone
    embedded: int = 0
    skipped: int = 0
    seconds: float = 0.0
    failures: list[dict] = field(default_factory=list)  # listed rows that name no image

    def to_dict(self) -> dict:
        return {**asdict(self), "seconds": round(self.seconds, 3)}


def image_row(listed: Listed, read_metadata: dict, sha256: str | None) -> dict:
    """An embedded image's metadata row: its key, what was read from it and what listed it."""
    return {"image_path": listed.key, **merged_metadata(read_metadata, listed.metadata), "sha256": sha256}


def result_of(read: ReadImage, listed: Listed, block: int, position: int) -> Result:
    """A read image as a result still missing its vector (an error is final)."""
    if read.error:
        return Result(block, position, error=read.error)
    return Result(block, position, row=image_row(listed, read.metadata, read.sha256))


class _Blocks:
    """Results gathered per block; a block is written the moment its last image arrives."""

    def __init__(self, folder: BlockFolder, plan: Plan, report: EmbedReport, on_block: Callable[[int], None]):
        self.folder, self.plan, self.report, self.on_block = folder, plan, report, on_block
        self.open: dict[int, dict[int, Result]] = {}

    def add(self, result: Result) -> None:
        got = self.open.setdefault(result.block, {})
        got[result.position] = result  # a retried task's second answer replaces the first
        if len(got) == len(self.plan.block(result.block)):
            self._write(result.block, [got[i] for i in range(len(got))])
            del self.open[result.block]

    def _write(self, number: int, results: list[Result]) -> None:
        good = [r for r in results if r.error is None]
        items = self.plan.block(number)
        skipped = [{"image_path": items[r.position].key, "reason": r.error} for r in results if r.error is not None]
        vectors = np.stack([r.vector for r in good]) if good else np.zeros((0, self.plan.dim), np.float32)
        self.folder.write(number, [r.row for r in good], vectors, skipped)
        self.report.embedded += len(good)
        self.report.skipped += len(skipped)
        self.on_block(number)


def embed_locally(plan: Plan, blocks: Sequence[int], spec: str, *, device: str, precision: str,
                  batch_size: int, workers: int | None) -> Iterable[Result]:
    """The results of ``blocks``, computed by a decode pool in this process's machine and the model here."""
    encoder = load_encoder(spec, device=device, precision=precision)
    order = [(number, position, item) for number in blocks for position, item in enumerate(plan.block(number))]
    decoded = decode_images([item.source for _, _, item in order], encoder.preprocess, read=read_for_index,
                            workers=workers)
    waiting: list[tuple[Result, np.ndarray]] = []
    for (number, position, item), read in zip(order, decoded):
        result = result_of(read, item, number, position)
        if result.error:
            yield result
            continue
        waiting.append((result, read.pixels))
        if len(waiting) >= batch_size:
            yield from _encoded(encoder, waiting)
            waiting = []
    yield from _encoded(encoder, waiting)


def _encoded(encoder, waiting: list[tuple[Result, np.ndarray]]) -> Iterable[Result]:
    if not waiting:
        return
    vectors = encoder.encode_decoded([pixels for _, pixels in waiting], batch_size=len(waiting))
    for (result, _), vector in zip(waiting, vectors):
        result.vector = vector
        yield result


def embed(sources: Sequence[str], out: str | Path, model: str, *, ray: str | None = None,
          block_size: int = DEFAULT_BLOCK_SIZE, image_column: str = "image", batch_size: int = 64,
          workers: int | None = None, device: str = "auto", precision: str = "auto",
          on_block: Callable[[int, int], None] | None = None) -> EmbedReport:
    """Embed every image of ``sources`` into ``out``; ``ray``: a cluster address, or "auto"
    (a running local cluster, else a new one), or None to run in this process. A rerun into the
    same folder does only the blocks not yet written. ``on_block(done, total)`` after each block."""
    started = time.perf_counter()
    if block_size < 1:
        raise InputError(f"block size must be at least 1, got {block_size}")
    if ray:
        from . import embed_ray  # Ray is imported only when asked for

        embed_ray.connect(ray)  # before anything is written: an unreachable cluster changes nothing
    items, failures = list_sources(sources, image_column)
    if not items:
        raise InputError(f"no images found in {', '.join(sources)}")
    encoder = load_encoder(model, device=device, precision=precision)
    plan = Plan(items, block_size, model, encoder.dim)
    folder = BlockFolder(Path(out).expanduser().resolve(), plan)
    pending = folder.pending()
    report = EmbedReport(str(folder.out), "ray" if ray else "local", items=len(items), blocks=plan.blocks,
                         blocks_done_before=plan.blocks - len(pending), failures=failures)
    done = report.blocks_done_before
    if on_block:
        on_block(done, plan.blocks)

    def block_written(_: int) -> None:
        nonlocal done
        done += 1
        if on_block:
            on_block(done, plan.blocks)

    gathered = _Blocks(folder, plan, report, block_written)
    if ray:
        results = embed_ray.embed_on_ray(plan, pending, model, device=device, precision=precision,
                                         batch_size=batch_size)
    else:
        results = embed_locally(plan, pending, model, device=device, precision=precision, batch_size=batch_size,
                                workers=workers)
    for result in results:
        gathered.add(result)
    report.seconds = time.perf_counter() - started
    return report
