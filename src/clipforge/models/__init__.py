"""Model loading: one encoder API over every supported checkpoint family."""

from __future__ import annotations

import os
import threading

from typing import TYPE_CHECKING

from .spec import ModelSpec, parse_spec

if TYPE_CHECKING:
    from .hf import Encoder

__all__ = ["Encoder", "ModelSpec", "load_encoder", "parse_spec"]

_cache: dict[tuple, "Encoder"] = {}
_lock = threading.Lock()


def _local_stamp(spec: ModelSpec) -> tuple:
    """Size and mtime of a local model's files, so a directory overwritten in place is reloaded."""
    if not spec.is_local:
        return ()
    stamp = []
    for entry in sorted(os.scandir(spec.target), key=lambda e: e.name):
        if entry.is_file():
            st = entry.stat()
            stamp.append((entry.name, st.st_size, st.st_mtime_ns))
    return tuple(stamp)


def load_encoder(spec: str | ModelSpec, device: str = "auto", precision: str = "auto") -> "Encoder":
    """Load (once per process) the encoder that ``spec`` names.

    ``spec`` is ``hf:<hub id>``, ``hf:<local dir>`` or ``builtin:<name>``. ``device`` is
    auto/cpu/cuda/mps and ``precision`` auto/fp32/bf16/fp16; auto picks bf16 where the
    hardware runs it natively.
    """
    parsed = spec if isinstance(spec, ModelSpec) else parse_spec(spec)
    key = (str(parsed), device, precision, _local_stamp(parsed))
    with _lock:
        if key not in _cache:
            from .hf import load_hf_encoder  # torch is imported only when a model is loaded

            _cache[key] = load_hf_encoder(parsed, device=device, precision=precision)
        return _cache[key]


def __getattr__(name: str):
    if name == "Encoder":
        from .hf import Encoder

        return Encoder
    raise AttributeError(name)
