"""Bad input: each case is a clear error (or a counted skip), and no checkpoint is left
half-written."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clipforge.errors import InputError, ModelLoadError, NotFoundError
from clipforge.train import train
from clipforge.train.checkpoint import STATE_FILE
from clipforge.train.logs import read_log
from train_helpers import shapes_small, tiny_config  # noqa: F401 (a fixture)


def _nothing_written(out: Path) -> bool:
    return not out.exists() or not any(p.name in ("last", "final") or p.name.startswith((".tmp", "step-")) for p in out.iterdir())


def _table(path: Path, rows: list[list[str]], header=("image", "caption")) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([list(header), *rows])
    return path


def test_missing_data_path(tmp_path):
    with pytest.raises(NotFoundError, match="does not exist"):
        train(tiny_config(tmp_path / "run", tmp_path / "nowhere"))
    assert _nothing_written(tmp_path / "run")


def test_a_model_that_cannot_load_leaves_no_run_folder(shapes_small, tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        train(tiny_config(tmp_path / "runs" / "x", shapes_small, init=f"hf:{tmp_path / 'nowhere'}"))
    assert not (tmp_path / "runs" / "x").exists()


def test_table_without_the_named_columns(shapes_small, tmp_path):
    table = _table(tmp_path / "t.csv", [["shapes/images/000002.png", "x"]], header=("file", "text"))
    with pytest.raises(InputError, match="no column 'image', 'caption'"):
        train(tiny_config(tmp_path / "run", table))
    assert _nothing_written(tmp_path / "run")


def test_empty_shard(tmp_path):
    (tmp_path / "data-000.tar").write_bytes(b"")
    with pytest.raises(InputError, match="empty shard"):
        train(tiny_config(tmp_path / "run", str(tmp_path / "data-{000..000}.tar")))
    assert _nothing_written(tmp_path / "run")


def test_null_captions_and_broken_images_are_skipped_and_counted(shapes_small, tmp_path):
    rows = [[str(shapes_small / "images" / f"{i:06d}.png"), f"caption {i}"] for i in range(2, 30)]
    rows += [[str(shapes_small / "images" / "000031.png"), ""], [str(shapes_small / "images" / "000032.png"), ""]]
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    rows += [[str(tmp_path / "broken.png"), "a broken picture"], [str(tmp_path / "gone.png"), "a missing one"]]
    table = _table(tmp_path / "t.csv", rows)
    result = train(tiny_config(tmp_path / "run", table, batch_size=10, max_steps=3, save_every=0))
    assert result.finished and result.bad_samples >= 1
    assert read_log(tmp_path / "run")[-1]["bad_samples"] == result.bad_samples
    assert read_log(tmp_path / "run", "data")[0]["skipped_rows"] == {"empty caption": 2}


def test_batch_larger_than_the_dataset(shapes_small, tmp_path):
    with pytest.raises(InputError, match=r"larger than the training set \(160 images\)"):
        train(tiny_config(tmp_path / "run", shapes_small, batch_size=161))
    assert _nothing_written(tmp_path / "run")


def test_resume_from_a_checkpoint_of_another_model(shapes_small, tmp_path):
    first = train(tiny_config(tmp_path / "a", shapes_small, max_steps=1, arch="siglip"))
    with pytest.raises(InputError, match="checkpoint of another model .*arch: 'siglip' in the checkpoint, 'clip' now"):
        train(tiny_config(tmp_path / "b", shapes_small, resume=str(first.checkpoint)))
    assert _nothing_written(tmp_path / "b")
    with pytest.raises(InputError, match="already holds a run"):
        train(tiny_config(tmp_path / "a", shapes_small))


def test_a_killed_run_leaves_only_whole_checkpoints(shapes_small, tmp_path, clipforge_home):
    out = tmp_path / "run"
    args = ["train", "--train", shapes_small, "--out", out, "--preset", "tiny", "--batch-size", "8",
            "--max-steps", "500", "--save-every", "1", "--keep-checkpoints", "3", "--workers", "0",
            "--precision", "fp32", "--device", "cpu"]
    exe = Path(sys.executable).with_name("clipforge")
    proc = subprocess.Popen([exe, *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(list(out.glob("step-*"))) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(0.3)  # land somewhere inside a later save, or between two
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    steps = sorted(out.glob("step-*"))
    assert steps, "the run never checkpointed"
    for step in steps:  # every checkpoint that has its final name is complete
        assert (step / STATE_FILE).is_file() and (step / "model.safetensors").is_file(), step
    assert (out / "last").resolve() in [s.resolve() for s in steps]
    resumed = train(tiny_config(out, shapes_small, batch_size=8, max_steps=500, save_every=1,
                                resume=str(out / "last"), run_steps=1))
    assert resumed.step == int(os.readlink(out / "last").split("-")[1])
