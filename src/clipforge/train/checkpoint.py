"""Checkpoints: complete Hugging Face model directories plus the trainer's state.

A checkpoint directory holds the model (``save_pretrained``), its tokenizer and image
processor, so ``hf:runs/x/last`` loads like any checkpoint; ``trainer_state.pt`` (optimizer,
scheduler, scaler, RNG states, step and data position) and ``train_config.json`` make it
resumable. It is written to a hidden temporary directory and renamed into place, so a crash
leaves either the previous checkpoint or the new one, never half of one. ``last`` is a
symbolic link, replaced atomically, to the newest ``step-N`` directory or to ``final``.

Whatever a kill leaves is hidden and named for what it was: ``.tmp-*`` (a write that never
got its name), ``.trash-*`` (an old checkpoint being deleted), ``.old-NAME-*`` (a checkpoint
being replaced). The next start clears it, and puts an ``.old-`` directory back where the
kill came between the two renames of a replacement, so ``last`` never points at nothing.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import InputError, NotFoundError
from .config import TrainConfig
from .models import TrainModel

log = logging.getLogger(__name__)

STATE_FILE = "trainer_state.pt"
CONFIG_FILE = "train_config.json"
STATE_VERSION = 1


@dataclass
class Resume:
    path: Path
    state: dict


def claim_run_dir(out: Path) -> None:
    """Refuse to start a fresh run over another run's checkpoints."""
    taken = [p.name for p in (out / "last", out / "final") if p.exists() or p.is_symlink()]
    if taken:
        raise InputError(
            f"{out} already holds a run ({', '.join(taken)}); resume it with --resume {out}/last "
            f"or choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True)


def open_resume(path: str, config: TrainConfig, world: int) -> Resume:
    """Read a checkpoint to resume and check that it belongs to this run's model and batch."""
    where = Path(path).expanduser()
    if not where.exists():
        raise NotFoundError(f"checkpoint {path} does not exist")
    if not (where / STATE_FILE).is_file():
        raise InputError(f"{path} is not a training checkpoint (no {STATE_FILE}); to fine-tune it use --init hf:{path}")
    try:
        state = torch.load(where / STATE_FILE, map_location="cpu", weights_only=False)
    except Exception as e:  # a damaged pickle raises many kinds of error
        raise InputError(f"cannot read {where / STATE_FILE}: {str(e).splitlines()[0]}") from None
    if state.get("version") != STATE_VERSION:
        raise InputError(f"{path}: checkpoint format {state.get('version')} is not {STATE_VERSION}")
    _check_same_model(path, state["config"]["model"], config.to_dict()["model"])
    old_batch = state["global_batch"]
    if old_batch != config.batch_size * world:
        raise InputError(
            f"{path} was trained with a global batch of {old_batch} samples; resume with "
            f"batch_size x processes = {old_batch} so that the data position stays exact"
        )
    return Resume(where.resolve(), state)


def _check_same_model(path: str, old: dict, new: dict) -> None:
    differ = [f"{k}: {old.get(k)!r} in the checkpoint, {new.get(k)!r} now" for k in new if old.get(k) != new.get(k)]
    if differ:
        raise InputError(f"{path} is a checkpoint of another model ({'; '.join(differ)})")


def tidy(out: Path) -> None:
    """Clear what runs killed mid-write left in ``out`` (see the module's docstring)."""
    if not out.is_dir():
        return
    for path in sorted(out.iterdir()):
        name = path.name
        if name.startswith(".old-"):
            original = out / name.removeprefix(".old-").rsplit("-", 1)[0]
            if not original.exists():
                path.rename(original)
                log.warning("restored %s, which a killed run was replacing", original)
                continue
        if name.startswith((".tmp-", ".trash-", ".old-", ".last-")):
            _remove(path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _write_dir(target: Path, parts: TrainModel, state: dict, config: TrainConfig) -> None:
    tmp = target.with_name(f".tmp-{target.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        parts.model.save_pretrained(tmp)
        parts.tokenizer.save_pretrained(tmp)
        parts.image_processor.save_pretrained(tmp)
        torch.save(state, tmp / STATE_FILE)
        (tmp / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2) + "\n")
        if target.exists():  # a checkpoint written again after a resume: move the old one aside first
            old = target.with_name(f".old-{target.name}-{os.getpid()}")
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old)
        else:
            tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def point_last(out: Path, name: str) -> None:
    link = out / f".last-{os.getpid()}"
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(name, link)
    os.replace(link, out / "last")


def save(out: Path, name: str, parts: TrainModel, state: dict, config: TrainConfig, keep: int) -> Path:
    """Write checkpoint ``out/name`` atomically, point ``last`` at it, prune old step dirs."""
    state = {**state, "version": STATE_VERSION, "config": config.to_dict()}
    target = out / name
    _write_dir(target, parts, state, config)
    point_last(out, name)
    steps = sorted(p for p in out.glob("step-*") if p.is_dir())
    for old in steps[: max(0, len(steps) - keep)]:
        if old.name != name:
            # Renamed first: a kill during the deletion must not leave half a checkpoint under its name.
            trash = old.with_name(f".trash-{old.name}-{os.getpid()}")
            old.rename(trash)
            shutil.rmtree(trash, ignore_errors=True)
    log.info("saved %s", target)
    return target


def rng_state() -> dict:
    import random

    import numpy as np

    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    import random

    import numpy as np

    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
