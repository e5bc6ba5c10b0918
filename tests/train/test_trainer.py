"""The training loop on real data: checkpoints, exact resume, precision and accumulation
options, and the model directory it leaves behind."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from clipforge.models import load_encoder
from clipforge.train import train
from clipforge.train.checkpoint import STATE_FILE
from clipforge.train.logs import read_log
from train_helpers import shapes_small, tiny_config  # noqa: F401 (a fixture)


def _losses(out) -> list[float]:
    return [r["loss"] for r in read_log(out)]


@pytest.fixture(scope="module")
def full_run(shapes_small, tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "run"
    result = train(tiny_config(out, shapes_small, val="", workers=1))
    return out, result


def test_a_run_leaves_a_loadable_model_directory_and_checkpoints(full_run):
    out, result = full_run
    assert result.finished and result.step == 6 and result.checkpoint == out / "final"
    assert os.readlink(out / "last") == "final"
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("step-")) == ["step-0000003"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary leftovers
    for name in ("config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json", STATE_FILE):
        assert (out / "final" / name).is_file(), name
    encoder = load_encoder(f"hf:{out}/final", device="cpu", precision="fp32")
    assert encoder.encode_texts(["a small red circle left of a large blue square"]).shape == (1, 16)
    records = read_log(out)
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6] and all(np.isfinite(r["loss"]) for r in records)
    assert records[0]["lr"] < records[1]["lr"] and records[-1]["samples_per_s"] > 0
    assert (out / "tensorboard").is_dir()


def test_peak_memory_is_logged_and_reported(full_run):
    import resource

    out, result = full_run
    peaks = [r["peak_rss_mb"] for r in read_log(out)]
    assert peaks == sorted(peaks) and peaks[0] > 50  # a peak only grows; torch alone is more than 50 MB
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # this process ran the training
    assert peaks[-1] <= result.memory["peak_rss_mb"] <= own + 1
    assert "peak_gpu_mb" not in result.memory  # on a CPU


def test_an_interrupted_and_resumed_run_has_the_same_loss_curve(full_run, shapes_small, tmp_path):
    out, _ = full_run
    part = train(tiny_config(tmp_path / "run", shapes_small, workers=1, run_steps=4))
    assert not part.finished and part.step == 4 and os.readlink(tmp_path / "run" / "last") == "step-0000004"
    resumed = train(tiny_config(tmp_path / "run", shapes_small, workers=1, resume=str(tmp_path / "run" / "last")))
    assert resumed.finished and resumed.step == 6
    assert _losses(tmp_path / "run") == _losses(out)  # bit for bit: same data, RNG and optimizer state


def test_validation_accumulation_bf16_and_checkpointing(shapes_small, tmp_path):
    config = tiny_config(
        tmp_path / "run", shapes_small, val=str(shapes_small), val_every=2, accum_steps=2, batch_size=8,
        precision="bf16", grad_checkpointing=True, max_steps=2, recall_k="1,5",
    )
    result = train(config)
    assert set(result.val) >= {"image_retrieval_recall@1", "text_retrieval_recall@5"}
    val = read_log(tmp_path / "run", "val")
    assert [r["step"] for r in val] == [2] and 0 <= val[0]["image_retrieval_recall@1"] <= 1
    assert np.isfinite(_losses(tmp_path / "run")).all()


@pytest.mark.parametrize("arch", ["siglip", "dual"])
def test_siglip_and_dual_encoder_runs(shapes_small, tmp_path, arch):
    result = train(tiny_config(tmp_path / "run", shapes_small, arch=arch, max_steps=2, save_every=0, lock_image=True))
    loss = _losses(tmp_path / "run")
    assert result.finished and len(loss) == 2 and np.isfinite(loss).all()
    saved = json.loads((tmp_path / "run" / "final" / "config.json").read_text())
    assert saved["model_type"] == {"siglip": "siglip", "dual": "vision-text-dual-encoder"}[arch]
    load_encoder(f"hf:{tmp_path}/run/final", device="cpu").encode_texts(["a red circle"])


def test_dual_encoder_locked_text_with_trainable_projection_runs(shapes_small, tmp_path):
    config = tiny_config(
        tmp_path / "run", shapes_small, arch="dual", max_steps=2, save_every=0, lock_text=True, train_text_projection=True
    )
    result = train(config)
    loss = _losses(tmp_path / "run")
    assert result.finished and len(loss) == 2 and np.isfinite(loss).all()
    load_encoder(f"hf:{tmp_path}/run/final", device="cpu").encode_texts(["a red circle"])
