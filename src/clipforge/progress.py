"""The one progress bar: indexing, encoding, evaluation, imports and training all show it.

It draws on stderr only when stderr is a terminal (or when asked to), so piped output and
logs stay clean. Callers get ``update(done, total, note="")``: ``total`` may be unknown
(None) at first, and ``note`` is a short extra such as training's current loss.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

Update = Callable[..., None]

_console = Console(stderr=True)


def _quiet(done: int, total: int | None = None, note: str = "") -> None:
    return None


@contextmanager
def progress_bar(description: str, unit: str = "img", *, enabled: bool | None = None,
                 transient: bool = False) -> Iterator[Update]:
    """A bar with rate and ETA. ``enabled``: None = only on a terminal. Yields ``update``."""
    if not (_console.is_terminal if enabled is None else enabled):
        yield _quiet
        return
    columns = (
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[note]}"), TimeRemainingColumn(),
    )
    with Progress(*columns, console=_console, transient=transient) as progress:
        task = progress.add_task(description, total=None, rate="", note="")
        started = [None]  # the first update's elapsed time: a resumed run counts from there

        def update(done: int, total: int | None = None, note: str = "") -> None:
            elapsed = progress.tasks[0].elapsed or 0.0
            if started[0] is None:
                started[0] = (elapsed, done)
            since, first = started[0]
            rate = (done - first) / (elapsed - since) if elapsed > since and done > first else 0.0
            progress.update(task, completed=done, total=total, note=note,
                            rate=f"{rate:.1f} {unit}/s" if rate else "")

        yield update
