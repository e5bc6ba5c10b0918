"""How a run's helper processes end with it.

Where Linux allows, data loader workers ask the kernel to kill them the moment the trainer
dies, so a SIGKILLed trainer leaves no workers behind (PyTorch's own check comes every 5 s,
and only between batches).
"""

from __future__ import annotations

import ctypes
import signal
import sys

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _die_with_parent() -> bool:
    """Ask the kernel to SIGKILL this process when the process that started it dies."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def loader_worker_init(worker_id: int) -> None:
    """``worker_init_fn`` of the training data loader."""
    _die_with_parent()
