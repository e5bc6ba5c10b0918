"""Where a run reports: ``log.jsonl`` (one JSON object per line, appended across resumes),
TensorBoard event files when ``tensorboard`` is installed, and a rich progress bar with
samples/s on a terminal. Only the main process reports; elsewhere this is silent."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

log = logging.getLogger(__name__)

LOG_FILE = "log.jsonl"


def _tensorboard_writer(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional at run time
        log.info("tensorboard is not installed; logging to %s only", LOG_FILE)
        return None
    return SummaryWriter(str(folder))


class RunLog:
    def __init__(self, out: Path, enabled: bool, start_step: int, total_steps: int):
        self.enabled = enabled
        self.jsonl = self.tensorboard = self.progress = None
        if not enabled:
            return
        self.jsonl = open(out / LOG_FILE, "a", encoding="utf-8")
        self.tensorboard = _tensorboard_writer(out / "tensorboard")
        console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>7.1f} samples/s  loss {task.fields[loss]:.4f}"),
            TimeRemainingColumn(), console=console, disable=not console.is_terminal,
        )
        self.task = self.progress.add_task("train", total=total_steps, completed=start_step, rate=0.0, loss=float("nan"))
        self.progress.start()

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        record = {"time": round(time.time(), 3), **record}
        self.jsonl.write(json.dumps(record) + "\n")
        self.jsonl.flush()
        if self.tensorboard is not None:
            step = record["step"]
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("step", "time"):
                    self.tensorboard.add_scalar(f"{record.get('kind', 'train')}/{key}", value, step)

    def advance(self, step: int, samples_per_s: float | None = None, loss: float | None = None) -> None:
        if self.progress is None:
            return
        fields = {k: v for k, v in (("rate", samples_per_s), ("loss", loss)) if v is not None}
        self.progress.update(self.task, completed=step, **fields)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
        if self.tensorboard is not None:
            self.tensorboard.close()
        if self.jsonl is not None:
            self.jsonl.close()


def read_log(out: Path, kind: str = "train") -> list[dict]:
    """The records of one kind, the last record of each step winning (a resumed run may
    repeat the steps after its checkpoint)."""
    by_step: dict[int, dict] = {}
    path = out / LOG_FILE
    if not path.exists():
        return []
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("kind", "train") == kind:
            by_step[record["step"]] = record
    return [by_step[s] for s in sorted(by_step)]
