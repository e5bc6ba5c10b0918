"""Model loading: one encoder API over every supported checkpoint family."""

from __future__ import annotations

import threading

from ..errors import ModelLoadError
from .hf import Encoder, load_hf_encoder
from .spec import ModelSpec, parse_spec

__all__ = ["Encoder", "ModelSpec", "load_encoder", "parse_spec"]

_cache: dict[tuple[str, str, str], Encoder] = {}
_lock = threading.Lock()


def load_encoder(spec: str | ModelSpec, device: str = "auto", precision: str = "auto") -> Encoder:
    """Load (once per process) the encoder that ``spec`` names.

    ``spec`` is ``hf:<hub id>``, ``hf:<local dir>`` or ``builtin:<name>``. ``device`` is
    auto/cpu/cuda/mps and ``precision`` auto/fp32/bf16/fp16; auto picks bf16 where the
    hardware runs it natively.
    """
    parsed = spec if isinstance(spec, ModelSpec) else parse_spec(spec)
    key = (str(parsed), device, precision)
    with _lock:
        if key not in _cache:
            if parsed.scheme == "builtin":
                raise ModelLoadError(f"no builtin model named '{parsed.target}' is installed")
            _cache[key] = load_hf_encoder(parsed, device=device, precision=precision)
        return _cache[key]
