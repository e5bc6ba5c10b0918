"""How `clipforge train` ends when it is told to: SIGTERM (a scheduler, `kill`) and Ctrl-C
(SIGINT to the whole foreground process group) save a checkpoint at the step reached and
exit 128 + the signal's number, losing nothing, and under torchrun every process stops at
the same step; the data loader processes die with the trainer, however it ends."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from clipforge.train.checkpoint import STATE_FILE
from reliability_support import CLI, cli_env, survivors
from train_support import check_checkpoints, logged_steps, shapes_32px, start, train_args, wait_until  # noqa: F401 (a fixture)

# Below the 5 s after which PyTorch's loader workers notice on their own that their parent died.
GRACE_S = 3.0


def _start_and_wait(tmp_path, data, steps: int, save_every: int):
    out = tmp_path / "run"
    env = cli_env(tmp_path / "home")
    proc = start(train_args(data, out, max_steps=200, save_every=save_every), env, tmp_path / "stderr.txt")
    assert wait_until(proc, lambda: len(logged_steps(out)) >= steps), (tmp_path / "stderr.txt").read_text()
    return proc, out


@pytest.mark.parametrize(
    ("sig", "group"), [(signal.SIGTERM, False), (signal.SIGINT, True)], ids=["sigterm", "ctrl-c-to-the-group"]
)
def test_a_stop_signal_saves_the_step_reached_and_exits_with_its_number(shapes_32px, tmp_path, sig, group):
    # save_every 0: the only step checkpoint there can be is the one the signal asks for.
    proc, out = _start_and_wait(tmp_path, shapes_32px, steps=3, save_every=0)
    os.killpg(proc.pid, sig) if group else proc.send_signal(sig)
    assert proc.wait(timeout=120) == 128 + sig, (tmp_path / "stderr.txt").read_text()
    assert survivors(proc.pid, GRACE_S) == []
    reached = logged_steps(out)[-1]
    assert check_checkpoints(out) == {f"step-{reached:07d}": reached}
    assert os.readlink(out / "last") == f"step-{reached:07d}"
    assert f"stopped at step {reached}/200 by {sig.name}" in proc.stdout.read().decode()


def test_ctrl_c_under_torchrun_stops_every_process_at_the_same_step(shapes_32px, tmp_path):
    out, stderr = tmp_path / "run", tmp_path / "stderr.txt"
    torchrun = [str(Path(CLI).with_name("torchrun")), "--standalone", "--nproc-per-node", "2", "-m", "clipforge"]
    # Two processes x 8 samples: the same global batch as one process x 16.
    args = [*train_args(shapes_32px, out, max_steps=200, save_every=0), "--batch-size", "8", "--device", "cpu"]
    env = dict(cli_env(tmp_path / "home"), OMP_NUM_THREADS="1")
    with open(stderr, "wb") as err:
        proc = subprocess.Popen([*torchrun, *args], env=env, stdout=subprocess.PIPE, stderr=err, start_new_session=True)
    assert wait_until(proc, lambda: len(logged_steps(out)) >= 3), stderr.read_text()
    os.killpg(proc.pid, signal.SIGINT)  # the agent gets it, passes it on, and so do the workers themselves
    proc.wait(timeout=120)  # torchrun reports the signal as its own failure; what matters is the run
    assert survivors(proc.pid, GRACE_S) == []
    reached = logged_steps(out)[-1]
    assert check_checkpoints(out) == {f"step-{reached:07d}": reached}, stderr.read_text()[-3000:]
    state = torch.load(out / f"step-{reached:07d}" / STATE_FILE, weights_only=False)
    assert len(state["rng"]) == 2  # both processes reached the save together
    assert f"stopped at step {reached}/200 by SIGINT" in proc.stdout.read().decode()


def test_the_loader_processes_die_with_a_killed_trainer(shapes_32px, tmp_path):
    proc, out = _start_and_wait(tmp_path, shapes_32px, steps=2, save_every=0)
    proc.send_signal(signal.SIGKILL)  # as the kernel's out-of-memory killer does: the trainer alone
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert survivors(proc.pid, GRACE_S) == []
