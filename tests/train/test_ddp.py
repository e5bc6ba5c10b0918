"""Real data-parallel training: torchrun, 2 CPU processes, gloo, on one node or as two nodes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clipforge.train import train
from clipforge.train.logs import LOG_FILE, read_log
from train_helpers import shapes_small, tiny_config  # noqa: F401 (a fixture)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launches(nodes: int) -> list[list[str]]:
    """torchrun's arguments for 2 processes: one node of two, or two nodes of one that meet
    through a c10d rendezvous on loopback, as nodes on a network do."""
    if nodes == 1:
        return [["--standalone", "--nproc-per-node", "2"]]
    endpoint = f"127.0.0.1:{_free_port()}"
    return [["--nnodes", "2", "--nproc-per-node", "1", "--node-rank", str(rank), "--rdzv-backend", "c10d",
             "--rdzv-endpoint", endpoint, "--rdzv-id", "clipforge-test"] for rank in range(nodes)]


def run_torchrun(data: Path, out: Path, *extra: str, nodes: int = 1) -> list[float]:
    """Train tiny for 4 steps as 2 CPU processes of batch 8 under torchrun; the logged losses."""
    torchrun = Path(sys.executable).with_name("torchrun")
    args = ["--train", data, "--out", out, "--preset", "tiny", "--batch-size", "8",
            "--max-steps", "4", "--save-every", "2", "--log-every", "1", "--workers", "1",
            "--precision", "fp32", "--device", "cpu", "--warmup-steps", "2", "--lr", "1e-3", "--json", *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [
        subprocess.Popen([str(torchrun), *launch, "-m", "clipforge", "train", *map(str, args)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for launch in _launches(nodes)
    ]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    for proc, (_, stderr) in zip(procs, outputs):
        assert proc.returncode == 0, stderr[-3000:]
    printed = [stdout for stdout, _ in outputs if stdout.strip()]
    assert len(printed) == 1  # the summary is printed once, by the main process
    summary = json.loads(printed[0])
    assert summary["finished"] and summary["step"] == 4
    return [r["loss"] for r in read_log(out)]


@pytest.mark.parametrize("nodes", [1, 2], ids=["one-node", "two-nodes"])
def test_torchrun_two_processes_match_one_process_with_twice_the_batch(shapes_small, tmp_path, clipforge_home, nodes):
    ddp_losses = run_torchrun(shapes_small, tmp_path / "ddp", nodes=nodes)

    single = train(tiny_config(tmp_path / "one", shapes_small, batch_size=16, max_steps=4, save_every=2))
    assert single.finished
    one_losses = [r["loss"] for r in read_log(tmp_path / "one")]
    # The same samples in the same order, the same loss; only summation order differs.
    np.testing.assert_allclose(ddp_losses, one_losses, rtol=2e-4)

    lines = (tmp_path / "ddp" / LOG_FILE).read_text().splitlines()
    assert len([line for line in lines if '"kind": "train"' in line]) == 4  # one writer
    assert os.readlink(tmp_path / "ddp" / "last") == "final"
    state = __import__("torch").load(tmp_path / "ddp" / "final" / "trainer_state.pt", weights_only=False)
    assert state["global_batch"] == 16 and len(state["rng"]) == 2
