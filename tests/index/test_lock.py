"""The write lock belongs to the process that took it: forked children never hold it."""

import multiprocessing
import os
import subprocess
import sys
import time

import pytest

from clipforge.errors import CollectionError
from clipforge.index.lock import write_lock

TRY_LOCK = """
import sys, time
from clipforge.errors import CollectionError
from clipforge.index.lock import write_lock
from pathlib import Path
try:
    with write_lock(Path(sys.argv[1]), "c", wait=0):
        print("got it", flush=True)
        time.sleep(float(sys.argv[2]))
except CollectionError as e:
    print(e)
"""


def _other_process_tries(directory) -> str:
    return subprocess.run([sys.executable, "-c", TRY_LOCK, str(directory), "0"], capture_output=True, text=True,
                          timeout=60).stdout.strip()


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def test_a_forked_child_does_not_keep_the_lock(tmp_path):
    child = multiprocessing.get_context("fork").Process(target=_sleep, args=(30,))
    with write_lock(tmp_path, "c"):
        child.start()  # forked while the lock is held, as decode workers are
        assert _other_process_tries(tmp_path) == "collection c is being written by another process"
    try:
        assert child.is_alive()
        assert _other_process_tries(tmp_path) == "got it"
    finally:
        child.kill()
        child.join()


def test_the_lock_dies_with_its_holder(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", TRY_LOCK, str(tmp_path), "60"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "got it"
    assert _other_process_tries(tmp_path).endswith("being written by another process")
    holder.kill()
    holder.wait()
    assert _other_process_tries(tmp_path) == "got it"


def test_two_threads_of_one_process_exclude_each_other(tmp_path):
    with write_lock(tmp_path, "c"):
        with pytest.raises(CollectionError, match="another process"):
            with write_lock(tmp_path, "c", wait=0.1):
                pass
    with write_lock(tmp_path, "c", wait=0):  # released: free again
        assert os.path.exists(tmp_path / ".write.lock")
