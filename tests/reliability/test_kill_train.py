"""Kill `clipforge train` at seeded random points, in its default configuration (default data
workers), with SIGKILL and SIGTERM, to the trainer alone or to its whole session, some of
them in the middle of a checkpoint write, and resume it each time as docs/training.md says.

After each kill: no process of the killed run is left, every checkpoint the run directory
lists loads, SIGTERM lost no step, SIGKILL at most the steps since the last checkpoint.
After the last resume: the run finished, its final model loads, and log.jsonl holds every
step exactly once, in order."""

from __future__ import annotations

import os
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from reliability_support import cli_env, survivors
from train_support import (  # noqa: F401 (shapes_32px is a fixture)
    check_checkpoints, checkpoint_step, logged_steps, resume_args, shapes_32px, start, train_args, wait_until,
)

SEED = 20250607
MAX_STEPS = 100
SAVE_EVERY = 3
GRACE_S = 3.0  # below the 5 s after which PyTorch's loader workers notice a dead parent themselves


@dataclass
class Kill:
    signal: signal.Signals
    group: bool  # to the whole session, as a scheduler or Ctrl-C does; else the trainer alone, as the OOM killer
    after_steps: int | None = None  # once this start has logged this many steps
    in_save: bool = False  # once this start begins writing a checkpoint...
    delay: float = 0.0  # ... and this many seconds more: in the write, the renames, the pruning

    def __str__(self) -> str:
        if self.in_save:
            when = f"{self.delay * 1000:.0f} ms into a checkpoint write"
        else:
            when = f"after {self.after_steps} new steps"
        return f"{self.signal.name} to the {'session' if self.group else 'trainer'} {when}"


def plan_kills(rng: random.Random) -> list[Kill]:
    # The first kill comes before the first checkpoint: there is nothing to resume yet.
    kills = [Kill(signal.SIGKILL, group=False, after_steps=1)]
    kinds = [  # (signal, to the session, in a checkpoint write)
        (signal.SIGKILL, False, True), (signal.SIGKILL, False, True), (signal.SIGKILL, False, False),
        (signal.SIGKILL, False, False), (signal.SIGKILL, True, False),
        (signal.SIGTERM, False, True), (signal.SIGTERM, True, True), (signal.SIGTERM, False, False),
        (signal.SIGTERM, True, False),
    ] * 2 + [(signal.SIGKILL, True, True)]  # 19, with the first: 20 kills
    rng.shuffle(kinds)
    for sig, group, in_save in kinds:
        kills.append(Kill(sig, group, None if in_save else rng.randint(1, 5), in_save, rng.uniform(0, 0.15) * in_save))
    return kills


def _new_steps(out: Path, since: float) -> int:
    """Training steps this start has logged (an earlier start's records are there until the
    new one drops them, and carry earlier times)."""
    return len([s for s, t in logged_steps(out, with_time=True) if t >= since])


def _kill_once(kill: Kill, args: list[str], env: dict, out: Path, stderr: Path) -> dict | None:
    """Start (or resume) the run, kill it as planned and check what it left; None if the run
    finished before the kill."""
    since = time.time() - 0.01
    proc = start(resume_args(args, out), env, stderr)

    def ready() -> bool:
        if kill.in_save:
            return any(out.glob(f".tmp-step-*-{proc.pid}"))
        return _new_steps(out, since) >= kill.after_steps

    if not wait_until(proc, ready, poll=0.002):
        assert proc.wait() == 0, stderr.read_text()[-3000:]
        return None
    time.sleep(kill.delay)
    (os.killpg if kill.group else os.kill)(proc.pid, kill.signal)
    status = proc.wait(timeout=120)
    assert survivors(proc.pid, GRACE_S) == [], f"{kill}: processes of the killed run are alive"
    check_checkpoints(out)
    reached = max(logged_steps(out), default=0)
    saved = checkpoint_step(out / "last") if (out / "last").is_symlink() else 0
    if kill.signal == signal.SIGTERM:
        assert status == 128 + signal.SIGTERM, stderr.read_text()[-3000:]
        assert saved == reached, f"{kill}: stopped at step {reached} but saved step {saved}"
    else:
        assert status == -signal.SIGKILL
        assert reached - saved <= SAVE_EVERY, f"{kill}: lost steps {saved + 1}..{reached}"
    return {"kill": str(kill), "reached": reached, "resumes_at": saved}


def test_train_survives_kills_at_random_points(shapes_32px, tmp_path):
    began = time.monotonic()
    out, env, stderr = tmp_path / "run", cli_env(tmp_path / "home"), tmp_path / "stderr.txt"
    args = train_args(shapes_32px, out, MAX_STEPS, SAVE_EVERY)
    done = []
    for kill in plan_kills(random.Random(SEED)):
        result = _kill_once(kill, args, env, out, stderr)
        if result is None:
            break
        done.append(result)

    print(f"\n{len(done)} kills survived:")
    for row in done:
        print(f"  {row['kill']}: reached step {row['reached']}, resumed at {row['resumes_at']}")
    assert len(done) >= 16, "the run finished before most kills: raise MAX_STEPS"

    final = start(resume_args(args, out), env, stderr)
    assert final.wait(timeout=300) == 0, stderr.read_text()[-3000:]
    assert survivors(final.pid, GRACE_S) == []
    assert logged_steps(out) == list(range(1, MAX_STEPS + 1)), "each step once, none missing"
    assert check_checkpoints(out)["final"] == MAX_STEPS  # final/ loads with load_encoder("hf:OUT/final")
    assert (out / "last").readlink().name == "final"
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "a killed run's temporary files are left"
    print(f"the run finished at step {MAX_STEPS}, {time.monotonic() - began:.0f} s in all")
