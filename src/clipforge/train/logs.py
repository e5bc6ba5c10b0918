"""Where a run reports: ``log.jsonl`` (one JSON object per line, appended across resumes),
TensorBoard event files when ``tensorboard`` is installed, and a rich progress bar with
samples/s on a terminal. Only the main process reports; elsewhere this is silent.

A run that starts at step S (a resume, or a fresh run over one that died before its first
checkpoint) redoes every step after S, so whatever an earlier start logged past S is dropped
first: each step is in ``log.jsonl`` once, for any reader, and TensorBoard is told to hide
its older events past S.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path

from ..errors import InputError
from ..progress import progress_bar

log = logging.getLogger(__name__)

LOG_FILE = "log.jsonl"


def _tensorboard_writer(folder: Path, start_step: int):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional at run time
        log.info("tensorboard is not installed; logging to %s only", LOG_FILE)
        return None
    # Event files are append-only, one per start; a purge marker makes TensorBoard drop the
    # events an earlier start wrote at steps this one redoes.
    earlier = sorted(folder.glob("events.out.tfevents.*")) if folder.is_dir() else []
    # TensorBoard reads a folder's event files in name order, and a name is
    # events.out.tfevents.<second>.<host>.<pid>.<writer number>: two starts within one second
    # of one process would sort by that number as text ("10" before "9"), the purge marker
    # landing before the events it should drop. A start within the second of the last waits.
    latest = max((int(p.name.split(".")[3]) for p in earlier if p.name.split(".")[3].isdigit()), default=0)
    while int(time.time()) <= latest:
        time.sleep(0.05)
    return SummaryWriter(str(folder), purge_step=start_step + 1 if earlier else None)


def _records(path: Path):
    """``(line, record)`` pairs of the log at ``path``. A kill can tear only the line being
    written, the last one, which has no newline yet: it comes as ``(line, None)``; any other
    line that is not JSON is an error."""
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            try:
                yield line, json.loads(line)
            except json.JSONDecodeError:
                if line.endswith("\n"):
                    raise InputError(f"{path}, line {number}, is not a JSON record") from None
                yield line, None


def drop_records_after(path: Path, step: int) -> int:
    """Keep only the records of steps up to ``step`` in the log at ``path``; returns how many
    were dropped. The kept lines go to a new file that replaces the log in one rename, so a
    kill during the rewrite leaves the old log whole."""
    if not path.exists():
        return 0
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    dropped = mended = 0
    try:
        with open(tmp, "w", encoding="utf-8") as new:
            for line, record in _records(path):
                if record is None or record.get("step", 0) > step:
                    dropped += 1
                    continue
                if not line.endswith("\n"):  # whole, but the kill came before its newline
                    line, mended = line + "\n", 1
                new.write(line)
            new.flush()
            os.fsync(new.fileno())
        if dropped or mended:
            os.replace(tmp, path)
            log.info("dropped %d records past step %d from %s", dropped, step, path)
    finally:
        tmp.unlink(missing_ok=True)
    return dropped


class RunLog:
    def __init__(self, out: Path, enabled: bool, start_step: int, total_steps: int):
        self.enabled = enabled
        self.jsonl = self.tensorboard = self.progress = None
        if not enabled:
            return
        drop_records_after(out / LOG_FILE, start_step)
        self.jsonl = open(out / LOG_FILE, "a", encoding="utf-8")
        self.tensorboard = _tensorboard_writer(out / "tensorboard", start_step)
        self._bar = contextlib.ExitStack()
        self.progress = self._bar.enter_context(progress_bar("train", unit="steps"))
        self._total_steps, self._note = total_steps, ""
        self.progress(start_step, total_steps)

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        record = {"time": round(time.time(), 3), **record}
        self.jsonl.write(json.dumps(record) + "\n")
        self.jsonl.flush()
        # A data record describes one start, not a point on a curve.
        if self.tensorboard is not None and record.get("kind") != "data":
            step = record["step"]
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("step", "time"):
                    self.tensorboard.add_scalar(f"{record.get('kind', 'train')}/{key}", value, step)

    def advance(self, step: int, samples_per_s: float | None = None, loss: float | None = None) -> None:
        if self.progress is None:
            return
        if samples_per_s is not None and loss is not None:
            self._note = f"{samples_per_s:.1f} samples/s  loss {loss:.4f}"
        self.progress(step, self._total_steps, note=self._note)

    def close(self) -> None:
        if self.progress is not None:
            self._bar.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
        if self.jsonl is not None:
            self.jsonl.close()


def peak_memory(device) -> dict[str, float]:
    """The run's peak memory so far, in MB: this process's resident set (on Linux, the most it
    ever held), and on a GPU the most its tensors took."""
    import resource
    import sys

    import torch

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux, bytes on macOS
    peak = {"peak_rss_mb": round(rss / (1 << 20 if sys.platform == "darwin" else 1 << 10), 1)}
    if getattr(device, "type", None) == "cuda":
        peak["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(device) / (1 << 20), 1)
    return peak


def read_log(out: Path, kind: str = "train") -> list[dict]:
    """The records of one kind, in step order. Should a step appear twice (a log written
    before resumes dropped the records they redo), the last record wins."""
    by_step: dict[int, dict] = {}
    path = out / LOG_FILE
    if not path.exists():
        return []
    for _, record in _records(path):
        if record is not None and record.get("kind", "train") == kind:
            by_step[record["step"]] = record
    return [by_step[s] for s in sorted(by_step)]
