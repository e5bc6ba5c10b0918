"""Contrastive training and fine-tuning of dual encoders, on one CPU or under torchrun.

    from clipforge.train import load_config, train
    result = train(load_config("examples/shapes-tiny.yaml", {"out": "runs/shapes"}))
    # result.checkpoint is a Hugging Face model directory: load_encoder(f"hf:{result.checkpoint}")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import TrainConfig, load_config

if TYPE_CHECKING:
    from .trainer import TrainResult

__all__ = ["TrainConfig", "TrainResult", "load_config", "train"]


def train(config: TrainConfig) -> "TrainResult":
    from .trainer import train as _train  # torch and transformers load only when training runs

    return _train(config)


def __getattr__(name: str):
    if name == "TrainResult":
        from .trainer import TrainResult

        return TrainResult
    raise AttributeError(name)
