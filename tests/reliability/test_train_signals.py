"""How `clipforge train` ends when it is killed: the data loader processes die with the
trainer."""

from __future__ import annotations

import signal

from reliability_support import cli_env, survivors
from train_support import logged_steps, shapes_32px, start, train_args, wait_until  # noqa: F401 (a fixture)

# Below the 5 s after which PyTorch's loader workers notice on their own that their parent died.
GRACE_S = 3.0


def _start_and_wait(tmp_path, data, steps: int, save_every: int):
    out = tmp_path / "run"
    env = cli_env(tmp_path / "home")
    proc = start(train_args(data, out, max_steps=200, save_every=save_every), env, tmp_path / "stderr.txt")
    assert wait_until(proc, lambda: len(logged_steps(out)) >= steps), (tmp_path / "stderr.txt").read_text()
    return proc, out


def test_the_loader_processes_die_with_a_killed_trainer(shapes_32px, tmp_path):
    proc, out = _start_and_wait(tmp_path, shapes_32px, steps=2, save_every=0)
    proc.send_signal(signal.SIGKILL)  # as the kernel's out-of-memory killer does: the trainer alone
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert survivors(proc.pid, GRACE_S) == []
