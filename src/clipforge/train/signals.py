"""How a run ends when it is told to, and how its helper processes end with it.

SIGTERM (a scheduler's preemption, ``kill``, torchrun passing on its own) and SIGINT
(Ctrl-C) do not kill the trainer mid-step: they ask it to finish the step in hand, save a
checkpoint there and exit, so a resume loses nothing. A second SIGINT is the user insisting
and acts at once, as it would have without this handler; a repeated SIGTERM is ignored,
since schedulers escalate with SIGKILL anyway. Under torchrun a worker sees one Ctrl-C twice
(from the terminal, and passed on by the agent), so there repeats are all ignored and the
agent escalates (SIGKILL after its 30 s).

Data loader workers ignore both signals, which a terminal and most schedulers send to every
process of the job: the trainer still needs them for the step in hand and shuts them down
itself. Where Linux allows, they also ask the kernel to kill them the moment the trainer
dies, so a SIGKILLed trainer leaves no workers behind (PyTorch's own check comes every 5
s, and only between batches).
"""

from __future__ import annotations

import logging
import signal
import threading

from ..processes import die_with_parent

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopOnSignals:
    """While active (on the main thread only, where Python delivers signals), SIGTERM and
    SIGINT set ``received`` instead of ending the process; the previous handlers come back
    on exit. With ``repeat_interrupts`` false a second SIGINT is ignored too."""

    def __init__(self, repeat_interrupts: bool = True):
        self.received: signal.Signals | None = None
        self.repeat_interrupts = repeat_interrupts
        self._previous: dict[signal.Signals, object] = {}

    def __enter__(self) -> "StopOnSignals":
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, number: int, frame) -> None:
        sig = signal.Signals(number)
        if self.received is None:
            self.received = sig
            again = " (Ctrl-C again to quit at once)" if self.repeat_interrupts else ""
            log.warning("%s: stopping after this step, with a checkpoint%s", sig.name, again)
        elif sig == signal.SIGINT and self.repeat_interrupts:
            previous = self._previous[sig]
            signal.signal(sig, previous)
            if callable(previous):
                previous(number, frame)  # Python's own: KeyboardInterrupt
            else:
                signal.raise_signal(sig)


def loader_worker_init(worker_id: int) -> None:
    """``worker_init_fn`` of the training data loader. A forked worker inherits the trainer's
    handlers, but a spawned one would die of the first SIGTERM sent to the group, and
    PyTorch then fails the trainer's next fetch. A worker that dies with the trainer may
    ignore SIGTERM; one that cannot must stay stoppable by it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if die_with_parent():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
