"""Real data-parallel training: torchrun, 2 CPU processes, gloo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from clipforge.train import train
from clipforge.train.logs import LOG_FILE, read_log
from train_helpers import shapes_small, tiny_config  # noqa: F401 (a fixture)


def run_torchrun(data: Path, out: Path, *extra: str) -> list[float]:
    """Train tiny for 4 steps as 2 CPU processes of batch 8 under torchrun; the logged losses."""
    torchrun = Path(sys.executable).with_name("torchrun")
    args = ["--train", data, "--out", out, "--preset", "tiny", "--batch-size", "8",
            "--max-steps", "4", "--save-every", "2", "--log-every", "1", "--workers", "1",
            "--precision", "fp32", "--device", "cpu", "--warmup-steps", "2", "--lr", "1e-3", "--json", *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "clipforge", "train", *map(str, args)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)  # printed once, by the main process
    assert summary["finished"] and summary["step"] == 4
    return [r["loss"] for r in read_log(out)]


def test_torchrun_two_processes_match_one_process_with_twice_the_batch(shapes_small, tmp_path, clipforge_home):
    ddp_losses = run_torchrun(shapes_small, tmp_path / "ddp")

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
