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
    """Size and mtime of a local model's files, so a model overwritten in place is reloaded."""
    where = spec.local_path
    if where is None:
        return ()
    if where.is_file():
        st = where.stat()
        return ((where.name, st.st_size, st.st_mtime_ns),)
    stamp = []
    for entry in sorted(os.scandir(where), key=lambda e: e.name):
        if entry.is_file():
            st = entry.stat()
            stamp.append((entry.name, st.st_size, st.st_mtime_ns))
    return tuple(stamp)


def load_encoder(spec: str | ModelSpec, device: str = "auto", precision: str = "auto") -> "Encoder":
    """Load (once per process) the encoder that ``spec`` names.

    ``spec`` is one of the forms ``models.spec`` describes. ``device`` is auto/cpu/cuda/mps
    and ``precision`` auto/fp32/bf16/fp16/int8: auto picks bf16 where the hardware runs it
    natively for torch, and for an ``onnx:`` export the fastest variant its export measured
    to agree with fp32 (``models.onnx_encoder``). An ``onnx:`` spec never imports torch.
    """
    parsed = spec if isinstance(spec, ModelSpec) else parse_spec(spec)
    key = (str(parsed), device, precision, _local_stamp(parsed))
    with _lock:
        if key not in _cache:
            if parsed.scheme == "onnx":
                from .onnx_encoder import load_onnx_encoder

                _cache[key] = load_onnx_encoder(parsed, device=device, precision=precision)
            else:
                from .hf import load_hf_encoder  # torch is imported only when a model is loaded

                _cache[key] = load_hf_encoder(parsed, device=device, precision=precision)
        return _cache[key]


def __getattr__(name: str):
    if name == "Encoder":
        from .hf import Encoder

        return Encoder
    raise AttributeError(name)
