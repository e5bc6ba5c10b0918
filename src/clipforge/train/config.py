"""Training configuration: dataclasses, read from YAML and overridden by flags.

A YAML file may use sections (``optim: {lr: 1e-3}``) or bare key names (``lr: 1e-3``):
every key name is unique across sections, and each is also a command-line flag
(``--lr 1e-3``, ``--batch-size 64``) and a ``--set key=value`` target. An unknown key is
refused with the nearest valid one suggested. Values from YAML and from flags go through the
same typed conversion, so ``lr: 1e-4`` (a string to YAML 1.1) is read as a float.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, NotFoundError


def _doc(help_text: str, default: Any = dataclasses.MISSING, **kwargs) -> Any:
    return field(default=default, metadata={"help": help_text}, **kwargs)


@dataclass
class ModelConfig:
    arch: str = _doc("clip, siglip or dual (a VisionTextDualEncoderModel)", "clip")
    preset: str = _doc("size preset of towers built from scratch: tiny, mini, small or base", "tiny")
    init: str | None = _doc("fine-tune this CLIP/SigLIP/dual checkpoint (hf:<dir or hub id>)", None)
    text_tower: str | None = _doc("dual: pretrained text encoder, a directory or package:<name>", None)
    vision_tower: str | None = _doc("dual: pretrained vision encoder directory (default: preset)", None)
    vision_arch: str = _doc(
        "dual, image tower built from scratch: vit (CLIP's) or convnext (a ConvNeXt of the preset's size)", "vit"
    )
    text_pooling: str = _doc(
        "dual: text features from the tower's pooler or the mean of its token states "
        "(auto: mean for a sentence-transformers tower, else pooler)", "auto"
    )
    lock_image: bool = _doc("freeze the image tower (LiT)", False)
    lock_image_unlocked_layers: int = _doc("with lock_image: leave the last N layers trainable", 0)
    lock_text: bool = _doc("freeze the text tower", False)
    lock_text_unlocked_layers: int = _doc("with lock_text: leave the last N layers trainable", 0)
    train_text_projection: bool = _doc(
        "with lock_text: keep the text projection trainable (the frozen tower's pooled features are cached)", False
    )
    long_text: int | None = _doc(
        "Long-CLIP: stretch the text tower of model.init to this many tokens (248 for CLIP's 77) and "
        "fine-tune on long captions, keeping short ones with a loss on the images' principal components", None
    )
    long_text_components: int = _doc("with long_text: principal components the short-caption loss keeps", 32)
    text_projection: str = _doc(
        "dual: random, or identity (the embedding width becomes the text tower's, and a locked text "
        "tower keeps its own embedding space)", "random"
    )


@dataclass
class DataConfig:
    train: str = _doc("training pairs: dataset folder, table, shard pattern or pipe:", "")
    val: str | None = _doc("validation pairs (may be the same dataset folder as train)", None)
    train_split: str = _doc("split to train on, where the source has splits", "train")
    val_split: str = _doc("split to validate on, where the source has splits", "val")
    image_column: str = _doc("image column of a CSV/TSV/Parquet table", "image")
    caption_column: str = _doc("caption column of a CSV/TSV/Parquet table", "caption")
    workers: int = _doc("data loader worker processes (0: load in the training process)", 2)
    crop_scale: float = _doc("random resized crop keeps at least this fraction of the area (1: off)", 0.8)
    flip: bool = _doc("random horizontal flips (off: captions may say left and right)", False)
    jitter: float = _doc("colour jitter strength, brightness/contrast/saturation (0: off)", 0.1)
    val_max_images: int = _doc("validate on at most this many images", 1000)


@dataclass
class OptimConfig:
    lr: float = _doc("peak learning rate", 5e-4)
    weight_decay: float = _doc("AdamW weight decay (never on biases, norms, logit scale)", 0.2)
    beta1: float = _doc("AdamW beta1", 0.9)
    beta2: float = _doc("AdamW beta2", 0.98)
    eps: float = _doc("AdamW epsilon", 1e-6)
    warmup_steps: int = _doc("linear warm-up steps before the cosine decay", 100)
    min_lr_ratio: float = _doc("the cosine decays to this fraction of lr", 0.0)
    grad_clip: float = _doc("clip the gradient norm to this (0: off)", 1.0)


@dataclass
class TrainConfig:
    out: str = _doc("run directory: checkpoints, logs and final/", "runs/train")
    seed: int = _doc("random seed (model init, data order, augmentation)", 0)
    epochs: int = _doc("passes over the training data", 1)
    max_steps: int | None = _doc("optimizer steps in all (overrides epochs)", None)
    run_steps: int | None = _doc("stop after this many steps in this invocation, checkpointed", None)
    batch_size: int = _doc("samples per device per micro-batch", 64)
    accum_steps: int = _doc("micro-batches per optimizer step (gradient accumulation)", 1)
    loss: str = _doc("clip (InfoNCE), siglip (sigmoid) or auto (siglip for SigLIP models)", "auto")
    label_smoothing: float = _doc("label smoothing of the clip loss", 0.0)
    precision: str = _doc("auto, fp32, bf16 (autocast) or fp16 (autocast + scaler, CUDA)", "auto")
    device: str = _doc("auto, cpu, cuda or mps", "auto")
    threads: int | None = _doc("CPU threads per process for the model (default: torch's choice)", None)
    grad_checkpointing: bool = _doc("recompute activations in backward to save memory", False)
    grad_cache_chunk: int | None = _doc(
        "GradCache: run the towers over chunks of this many samples, so memory holds one chunk's "
        "activations while the loss still sees the whole batch (must divide batch_size)", None
    )
    save_every: int = _doc("checkpoint every N steps (0: only at the end)", 500)
    keep_checkpoints: int = _doc("step checkpoints kept on disk", 2)
    val_every: int = _doc("validate every N steps (0: only at the end)", 500)
    recall_k: tuple[int, ...] = _doc("K values of validation Recall@K", (1, 5, 10))
    log_every: int = _doc("log every N steps", 10)
    resume: str | None = _doc("continue from this checkpoint directory (runs/x/last)", None)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SECTIONS = {"model": ModelConfig, "data": DataConfig, "optim": OptimConfig}
CHOICES = {
    "model.arch": ("clip", "siglip", "dual"),
    "model.text_pooling": ("auto", "pooler", "mean"),
    "model.text_projection": ("random", "identity"),
    "model.vision_arch": ("vit", "convnext"),
    "loss": ("auto", "clip", "siglip"),
    "precision": ("auto", "fp32", "bf16", "fp16"),
    "device": ("auto", "cpu", "cuda", "mps"),
}


def leaf_fields() -> dict[str, tuple[str, dataclasses.Field, Any]]:
    """Every settable key: leaf name -> (dotted path, field, resolved type)."""
    out: dict[str, tuple[str, dataclasses.Field, Any]] = {}
    for prefix, cls in [("", TrainConfig), *((f"{name}.", c) for name, c in SECTIONS.items())]:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name not in SECTIONS:
                out[f.name] = (prefix + f.name, f, hints[f.name])
    return out


def _suggest(key: str) -> str:
    leaf = key.rsplit(".", 1)[-1]
    if leaf in leaf_fields():  # the right key in the wrong section
        return f"; did you mean '{leaf_fields()[leaf][0]}'?"
    names = list(leaf_fields()) + [path for path, _, _ in leaf_fields().values()]
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


def resolve_key(key: str) -> str:
    """A leaf name or dotted path -> the leaf name; unknown keys are refused."""
    fields = leaf_fields()
    name = key.replace("-", "_")
    leaf = name.rsplit(".", 1)[-1]
    if leaf in fields and (name == leaf or fields[leaf][0] == name):
        return leaf
    raise InputError(f"unknown config key '{key}'{_suggest(name)}")


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _ints(value: Any) -> tuple[int, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(int(str(v).strip()) for v in items)


def coerce(key: str, value: Any) -> Any:
    """Convert ``value`` (from YAML or a flag) to the type of config key ``key``."""
    path, _, kind = leaf_fields()[key]
    args = typing.get_args(kind)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), kind) if optional else kind
    try:
        if value is None or (optional and isinstance(value, str) and value.strip().lower() in ("null", "none", "")):
            if not optional:
                raise ValueError("a value is required")
            return None
        if base is bool:
            return value if isinstance(value, bool) else _bool(str(value))
        if base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(f"expected an integer, got {value!r}")
            return int(value)
        if base is float:
            return float(value)
        if typing.get_origin(base) is tuple:
            return _ints(value)
        return str(value)
    except (TypeError, ValueError) as e:
        raise InputError(f"config key '{path}': {e}") from None


def _flatten(raw: dict, where: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        key = str(key)
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise InputError(f"{where}: '{key}' must be a mapping of keys to values")
            items = {f"{key}.{k}": v for k, v in value.items()}
        else:
            items = {key: value}
        for name, v in items.items():
            leaf = resolve_key(name)
            if leaf in flat:
                raise InputError(f"{where}: key '{leaf}' is given twice")
            flat[leaf] = v
    return flat


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    import yaml

    file = Path(path)
    if not file.is_file():
        raise NotFoundError(f"config file {file} does not exist")
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise InputError(f"{file}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise InputError(f"{file}: expected a mapping of config keys to values")
    try:
        return _flatten(raw, str(file))
    except InputError as e:
        raise InputError(f"{file}: {e}") from None


def parse_assignments(assignments: list[str]) -> dict[str, str]:
    """``["lr=1e-4", "data.workers=0"]`` -> ``{"lr": "1e-4", "workers": "0"}``."""
    out = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--set expects key=value, got {item!r}")
        out[resolve_key(key.strip())] = value
    return out


def build_config(values: dict[str, Any]) -> TrainConfig:
    """A validated TrainConfig from leaf-name -> value (anything ``coerce`` accepts)."""
    config = TrainConfig()
    sections = {"": config, **{name: getattr(config, name) for name in SECTIONS}}
    for key, value in values.items():
        leaf = resolve_key(key)
        path = leaf_fields()[leaf][0]
        owner = sections[path.split(".")[0] if "." in path else ""]
        setattr(owner, leaf, coerce(leaf, value))
    validate(config)
    return config


def load_config(path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """YAML file (optional) with ``overrides`` (leaf name -> value) applied on top."""
    values = read_yaml(path) if path else {}
    values.update({resolve_key(k): v for k, v in (overrides or {}).items()})
    return build_config(values)


def validate(config: TrainConfig) -> None:
    flat = {path: value for path, value in _dotted(config)}
    for path, choices in CHOICES.items():
        if flat[path] not in choices:
            raise InputError(f"config key '{path}': {flat[path]!r} is not one of {', '.join(choices)}")
    if not config.data.train:
        raise InputError("no training data: set data.train (--train PATH)")
    positive = ["batch_size", "accum_steps", "epochs", "log_every", "keep_checkpoints"]
    for key in positive:
        if flat[key] < 1:
            raise InputError(f"config key '{key}' must be at least 1, got {flat[key]}")
    for key in ("max_steps", "run_steps"):
        if flat[key] is not None and flat[key] < 1:
            raise InputError(f"config key '{key}' must be at least 1, got {flat[key]}")
    if config.model.text_projection != "random" and (config.model.arch != "dual" or config.model.init):
        raise InputError(
            "model.text_projection applies to a dual encoder built from towers (arch dual, no init): "
            "CLIP, SigLIP and --init checkpoints keep their own projections"
        )
    if config.model.vision_arch != "vit" and (
        config.model.arch != "dual" or config.model.init or config.model.vision_tower
    ):
        raise InputError(
            "model.vision_arch applies to an image tower built from scratch in a dual encoder "
            "(arch dual, no init, no vision_tower)"
        )
    chunk = config.grad_cache_chunk
    if chunk is not None and not (1 <= chunk < config.batch_size and config.batch_size % chunk == 0):
        raise InputError(
            f"config key 'grad_cache_chunk' must divide batch_size ({config.batch_size}) and be smaller, got {chunk}"
        )
    if config.model.long_text is not None:
        if not config.model.init:
            raise InputError("model.long_text stretches a trained text tower: give the checkpoint as model.init")
        if config.grad_cache_chunk:
            raise InputError("model.long_text and grad_cache_chunk cannot be combined yet: leave one out")
        if config.model.long_text_components < 1:
            raise InputError("config key 'model.long_text_components' must be at least 1")
    if not 0 < config.data.crop_scale <= 1:
        raise InputError(f"config key 'data.crop_scale' must be in (0, 1], got {config.data.crop_scale}")
    if config.optim.lr <= 0 or not config.recall_k or min(config.recall_k) < 1:
        raise InputError("optim.lr must be positive and recall_k a list of positive integers")


def _dotted(config: TrainConfig):
    for leaf, (path, _, _) in leaf_fields().items():
        section, _, name = path.rpartition(".")
        yield path, getattr(getattr(config, section) if section else config, name)


def config_from_dict(data: dict) -> TrainConfig:
    """The inverse of ``TrainConfig.to_dict``, for configs stored in checkpoints."""
    return build_config({k: v for k, v in _flatten(data, "stored config").items()})
