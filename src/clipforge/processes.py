"""Helper processes (decode and data loader workers) that end with the process that started them,
and how many cores they may use.

An orphaned worker sits on its share of its parent's memory forever, and may hold what the
parent had open. Linux can kill a child when its parent dies; elsewhere, and as a net under
that, a worker can watch for the moment it is adopted by another process.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_PARENT_POLL_SECONDS = 0.2


def die_with_parent() -> bool:
    """Ask the kernel to SIGKILL this process when the thread that forked it ends. That is
    the parent's death only where the parent forked from its main thread. False where the
    platform offers no such request."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def exit_when_orphaned(parent: int) -> None:
    """End this process at once if ``parent`` is gone, and from a watching thread as soon as it goes."""
    if os.getppid() != parent:  # the parent died before the watch began
        os._exit(1)
    threading.Thread(target=_watch, args=(parent,), name="parent-watch", daemon=True).start()


def _watch(parent: int) -> None:
    # An orphan is adopted (by init or a subreaper), so its parent id changes.
    while os.getppid() == parent:
        time.sleep(_PARENT_POLL_SECONDS)
    os._exit(1)


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, which containers and taskset
    narrow), not the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1
