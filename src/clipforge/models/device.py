"""Device and precision choice.

bf16 weights and inputs are the default wherever the hardware runs them natively: on the
project's 2-core AVX512-BF16 CPU a ViT-B/32-shaped image tower (transformers, batch 32) ran
26-29 img/s in bf16 against 13-15 img/s in fp32, and retrieval results stay within a tested
tolerance of fp32 (tests/models/test_encoders.py).
"""

from __future__ import annotations

import functools

import torch

from ..errors import InputError
from .options import DEVICES, PRECISIONS

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def choose_device(preference: str = "auto") -> torch.device:
    if preference not in DEVICES:
        raise InputError(f"unknown device {preference!r}; choose one of {', '.join(DEVICES)}")
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if preference == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' requested but no CUDA GPU is available")
    return torch.device(preference)


def choose_dtype(device: torch.device, preference: str = "auto") -> torch.dtype:
    if preference not in PRECISIONS:
        raise InputError(f"unknown precision {preference!r}; choose one of {', '.join(PRECISIONS)}")
    if preference == "int8":
        raise InputError("int8 runs through ONNX Runtime: export the model with `clipforge export onnx SPEC DIR "
                         "--int8` and use --model onnx:DIR")
    if preference != "auto":
        if preference == "fp16" and device.type == "cpu":
            raise InputError("fp16 is not supported on CPU; use bf16 or fp32")
        return _DTYPES[preference]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


def precision_name(dtype: torch.dtype) -> str:
    return {v: k for k, v in _DTYPES.items()}[dtype]
