"""What the training reliability tests share: `clipforge train` as a real process in a
session of its own, waits on its log, and the checks a run directory must pass whatever
happened to the run that wrote it."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import torch

from clipforge.data.shapes import write_shapes
from clipforge.models import load_encoder
from clipforge.train.checkpoint import STATE_FILE
from clipforge.train.logs import LOG_FILE
from reliability_support import CLI


@pytest.fixture(scope="module")
def shapes_32px(tmp_path_factory) -> Path:
    """160 training scenes of 32 x 32 pixels: decoding costs next to nothing."""
    root = tmp_path_factory.mktemp("shapes") / "shapes"
    write_shapes(root, n=200, size=32)
    return root


def train_args(data: Path, out: Path, max_steps: int, save_every: int) -> list[str]:
    """A tiny run in the configuration a user gets by default (data workers included), logging
    every step so that the log shows each one."""
    return ["train", "--train", str(data), "--out", str(out), "--preset", "tiny", "--batch-size", "16",
            "--max-steps", str(max_steps), "--save-every", str(save_every), "--log-every", "1"]


def resume_args(args: list[str], out: Path) -> list[str]:
    """The same command resumed as docs/training.md says; a run that died before its first
    checkpoint has nothing to resume and starts again."""
    return [*args, "--resume", str(out / "last")] if (out / "last").is_symlink() else args


def start(args: list[str], env: dict[str, str], stderr: Path) -> subprocess.Popen:
    """``clipforge ARGS`` in a session of its own, so that every process it starts can be found."""
    with open(stderr, "ab") as err:
        return subprocess.Popen([CLI, *args], env=env, stdout=subprocess.PIPE, stderr=err, start_new_session=True)


def logged_steps(out: Path, kind: str = "train", with_time: bool = False) -> list:
    """Every record's step (and time) as the file holds it, a torn last line aside."""
    try:
        lines = (out / LOG_FILE).read_text(encoding="utf-8").splitlines(keepends=True)
    except FileNotFoundError:
        return []
    records = [r for r in (json.loads(line) for line in lines if line.endswith("\n")) if r["kind"] == kind]
    return [(r["step"], r["time"]) if with_time else r["step"] for r in records]


def wait_until(proc: subprocess.Popen, ready, timeout: float = 180, poll: float = 0.01) -> bool:
    """Poll ``ready()`` until it holds; False if the process ended first."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if ready():
            return True
        if time.monotonic() > deadline:
            raise TimeoutError("the run made no progress")
        time.sleep(poll)
    return False


def checkpoint_step(path: Path) -> int:
    return torch.load(path / STATE_FILE, map_location="cpu", weights_only=False)["step"]


def check_checkpoints(out: Path) -> dict[str, int]:
    """Every checkpoint the run directory lists, and the one ``last`` names, is whole: the
    model loads and encodes, the trainer state reads. Returns each one's step by name."""
    steps = {}
    for path in sorted([*out.glob("step-*"), *out.glob("final")]):
        load_encoder(f"hf:{path}", device="cpu").encode_texts(["a red circle"])
        steps[path.name] = checkpoint_step(path)
    if (out / "last").is_symlink():
        name = os.readlink(out / "last")
        assert name in steps, f"last points at {name}, which is not a whole checkpoint"
    return steps
