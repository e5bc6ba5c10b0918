"""A model built from scratch leaves chance within a few steps (``models.init``), where the
same model with Hugging Face's default initialisation is still near it: the ``small`` preset
on 960 shapes scenes, batch 32, lr 5e-4 with 10 warm-up steps, as open_clip's recipe for a
short run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from clipforge.data.shapes import write_shapes
from clipforge.models.presets import make_clip
from clipforge.train.config import build_config
from clipforge.train.logs import read_log
from clipforge.train.trainer import train

STEPS, BATCH = 30, 32
CHANCE = math.log(BATCH)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes-960") / "shapes"
    write_shapes(root, n=1200)  # 960 training scenes
    return root


def _save(parts, folder: Path) -> Path:
    for part in parts:
        part.save_pretrained(folder)
    return folder


def _losses(model_dir: Path, shapes: Path, out: Path) -> list[float]:
    config = build_config({
        "out": str(out), "train": str(shapes), "init": f"hf:{model_dir}", "batch_size": BATCH,
        "max_steps": STEPS, "lr": 5e-4, "warmup_steps": 10, "weight_decay": 0.2, "precision": "fp32",
        "log_every": 1, "val_every": 0, "save_every": 0, "crop_scale": 1.0, "flip": False, "jitter": 0.0,
        "device": "cpu",
    })
    train(config)
    return [record["loss"] for record in read_log(out)]


def test_from_scratch_it_leaves_chance_where_the_default_init_does_not(shapes, tmp_path):
    from transformers import CLIPModel

    ours = make_clip("small", seed=0)
    default = (CLIPModel(ours[0].config), *ours[1:])  # the same model, as transformers initialises it
    losses = {name: _losses(_save(parts, tmp_path / name), shapes, tmp_path / f"run-{name}")
              for name, parts in (("ours", ours), ("default", default))}
    late = {name: sum(values[-5:]) / 5 for name, values in losses.items()}
    print(f"\nmean loss of the last 5 of {STEPS} steps (chance {CHANCE:.2f}): {late}")
    assert late["ours"] < CHANCE - 1.0, losses["ours"]
    assert late["ours"] < late["default"] - 0.3, losses
