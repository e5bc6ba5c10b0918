"""A resumed run's logs: the steps redone after the checkpoint are logged once, in
log.jsonl and in the TensorBoard event files, for readers other than ``read_log``."""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from clipforge.errors import InputError
from clipforge.train import train
from clipforge.train.logs import LOG_FILE, drop_records_after, read_log
from train_helpers import shapes_small, tiny_config  # noqa: F401 (a fixture)


def _raw_steps(out: Path, kind: str) -> list[int]:
    """Steps as the file holds them, read the way pandas or jq would: every line counts."""
    lines = (out / LOG_FILE).read_text(encoding="utf-8").splitlines()
    return [r["step"] for r in map(json.loads, lines) if r["kind"] == kind]


def _tensorboard_steps(out: Path, tag: str) -> list[int]:
    """Steps of one scalar as TensorBoard itself shows them."""
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    return [e.step for e in events.Scalars(tag)]


def test_a_resume_logs_the_steps_after_its_checkpoint_once(shapes_small, tmp_path):
    out = tmp_path / "run"
    val = {"val": str(shapes_small), "val_every": 2}
    # A run that got 2 steps past its step-3 checkpoint before it died, then resumed there.
    train(tiny_config(out, shapes_small, run_steps=5, keep_checkpoints=5, **val))
    assert _raw_steps(out, "train") == [1, 2, 3, 4, 5]
    # TensorBoard reads its event files in name order, and a name holds the whole second it
    # was made in and then a counter of this process: in the same second, writer 10 would sort
    # before writer 9. A resume by hand never comes within the second of its run's start.
    time.sleep(1.0 - time.time() % 1.0)
    resumed = train(tiny_config(out, shapes_small, resume=str(out / "step-0000003"), keep_checkpoints=5, **val))
    assert resumed.finished

    assert _raw_steps(out, "train") == [1, 2, 3, 4, 5, 6]
    assert _raw_steps(out, "val") == [2, 4, 6]
    assert _raw_steps(out, "data") == [0, 3]  # one per start: where each start began
    assert _tensorboard_steps(out, "train/loss") == [1, 2, 3, 4, 5, 6]
    assert _tensorboard_steps(out, "val/image_retrieval_recall@1") == [2, 4, 6]
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_a_fresh_run_replaces_the_log_of_a_run_that_died_before_its_first_checkpoint(shapes_small, tmp_path):
    out = tmp_path / "run"
    train(tiny_config(out, shapes_small, run_steps=2, save_every=0))
    # What a kill at step 2 leaves when save_every is larger: a log, no checkpoint.
    (out / "last").unlink()
    shutil.rmtree(out / "step-0000002")
    assert train(tiny_config(out, shapes_small)).finished
    counts = Counter(_raw_steps(out, "train"))
    assert sorted(counts) == [1, 2, 3, 4, 5, 6] and set(counts.values()) == {1}
    assert _tensorboard_steps(out, "train/loss") == [1, 2, 3, 4, 5, 6]


def test_a_line_torn_by_a_kill_is_dropped_and_any_other_bad_line_is_an_error(tmp_path):
    records = [{"kind": "train", "step": s, "loss": 1.0} for s in (1, 2, 3)]
    whole = "".join(json.dumps(r) + "\n" for r in records)
    (tmp_path / LOG_FILE).write_text(whole + '{"kind": "train", "st')
    assert [r["step"] for r in read_log(tmp_path)] == [1, 2, 3]
    assert drop_records_after(tmp_path / LOG_FILE, 2) == 2
    assert _raw_steps(tmp_path, "train") == [1, 2]

    (tmp_path / LOG_FILE).write_text('{"kind": "train", "st\n' + whole)
    with pytest.raises(InputError, match="line 1, is not a JSON record"):
        read_log(tmp_path)
