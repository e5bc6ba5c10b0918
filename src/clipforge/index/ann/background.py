"""Index maintenance in a background thread, for a server: searches go on with the index
they have while a new one is built, and pick the new one up when its manifest is renamed
into place (the next search after that loads it, memory-mapped).

The thread works through a handle of its own on each collection (its own SQLite
connection), so the serving handle is never held for longer than a search; it asks the
serving handle what is due (from what that handle has loaded, without counting) in turn
with other reads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from ...errors import ClipforgeError

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 5.0


class BackgroundIndexer:
    def __init__(self, targets: list[tuple[Path, Callable]], open_collection: Callable[[Path], object],
                 interval: float | None = None):
        """``targets``: (collection path, ``read``), where ``read(fn)`` runs ``fn`` on the
        serving handle in turn with its searches."""
        self.targets = targets
        self.open_collection = open_collection
        self.interval = INTERVAL_SECONDS if interval is None else interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="clipforge-index", daemon=True)
        self._handles: dict[Path, object] = {}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1.0)  # a build in progress ends with the process
        for handle in self._handles.values():
            handle.close()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            for path, read in self.targets:
                try:
                    self.tend(path, read)
                except ClipforgeError as e:  # a budget that no longer fits, a read-only copy: say so, go on
                    log.warning("index of %s not maintained: %s", path.name, e)
                except Exception:  # a bug: keep serving, and say where it was
                    log.exception("index maintenance of %s failed", path.name)

    def tend(self, path: Path, read: Callable) -> list:
        """Do what is due for one collection; return the jobs done."""
        due = read(lambda c: c.indexes.due_in_memory())
        if not due:
            return []
        handle = self._handles.get(path)
        if handle is None:
            handle = self._handles[path] = self.open_collection(path)
        done = handle.update_index([job.kind for job in due])
        if done:
            read(lambda c: [c.search_index(job.kind) for job in done])  # load the new one now, not in a request
        return done
