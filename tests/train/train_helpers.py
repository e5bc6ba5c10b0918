"""Shared pieces for training tests: a small shapes dataset and tiny run configs.

Not a conftest.py: the suite's tests import helpers with ``from conftest import ...``,
which a second conftest module would shadow.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clipforge.data.shapes import write_shapes
from clipforge.train.config import TrainConfig, build_config


@pytest.fixture(scope="session")
def shapes_small(tmp_path_factory) -> Path:
    """160 train, 20 val and 20 test scenes."""
    root = tmp_path_factory.mktemp("shapes") / "shapes"
    write_shapes(root, n=200)
    return root


def tiny_config(out: Path, data: Path, **overrides) -> TrainConfig:
    values = {
        "out": str(out), "train": str(data), "preset": "tiny", "batch_size": 16, "max_steps": 6,
        "workers": 0, "precision": "fp32", "log_every": 1, "val_every": 0, "save_every": 3,
        "warmup_steps": 2, "lr": 1e-3, "device": "cpu",
    }
    values.update(overrides)
    return build_config(values)
