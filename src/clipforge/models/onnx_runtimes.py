"""The runtimes an ONNX export's variants run on: ONNX Runtime, and OpenVINO where installed.

A variant in the manifest names its ``file`` and, optionally, its ``runtime``:

- ``onnxruntime`` (the default): ``image.onnx``, ``image_int8.onnx`` (dynamic quantisation);
- ``openvino``: ``image_openvino_int8.xml`` (static int8, calibrated by NNCF), or the fp32
  ``image.onnx`` run with ``inference_precision`` ``bf16`` (OpenVINO lowers the matrix
  products to bf16 where the CPU has native bf16).

``open_runner`` gives one callable for all of them: ``run(feeds) -> features``. The export
measures each variant through it, and the encoder runs them through it, so what was measured
is what runs.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import InputError, ModelLoadError

Runner = Callable[[dict[str, np.ndarray]], np.ndarray]
RUNTIMES = ("onnxruntime", "openvino")


def runtime_of(variant: dict) -> str:
    return variant.get("runtime", "onnxruntime")


def available(runtime: str) -> bool:
    """Whether ``runtime`` is installed, without importing it (a text query must not pay for
    importing the image tower's runtime)."""
    return importlib.util.find_spec(runtime) is not None


def open_runner(spec, path: Path, device: str, variant: dict) -> Runner:
    """A callable running the model at ``path`` as ``variant`` says; ModelLoadError in one line."""
    runtime = runtime_of(variant)
    if runtime not in RUNTIMES:
        raise ModelLoadError(f"{spec}: unknown runtime {runtime!r} in the export's manifest")
    if not path.is_file():
        raise ModelLoadError(f"{spec}: {path.name} is missing from the export")
    if runtime == "openvino":
        return _openvino(spec, path, device, variant.get("inference_precision", "f32"))
    return _onnxruntime(spec, path, device)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def _onnxruntime(spec, path: Path, device: str) -> Runner:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelLoadError(f"{spec}: ONNX Runtime is not installed: pip install 'clipforge[onnx]'") from None
    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise InputError(f"{spec}: device 'cuda' asked for, but this ONNX Runtime has no CUDA provider")
        providers.insert(0, "CUDAExecutionProvider")
    elif device not in ("auto", "cpu"):
        raise InputError(f"{spec}: ONNX exports run on cpu or cuda, not {device}")
    options = ort.SessionOptions()
    # ONNX Runtime's threads spin while they wait for work by default: in indexing, the decode
    # workers share the cores with them and would lose that time.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as e:  # ONNX Runtime raises its own Fail/InvalidProtobuf/... kinds
        raise ModelLoadError(f"{spec}: cannot load {path.name}: {_first_line(e)}") from None
    return lambda feeds: session.run(None, feeds)[0]


def _openvino(spec, path: Path, device: str, precision: str) -> Runner:
    try:
        import openvino as ov
    except ImportError:
        raise ModelLoadError(f"{spec}: this variant runs on OpenVINO, which is not installed: "
                             f"pip install 'clipforge[openvino]', or choose --precision fp32") from None
    if device not in ("auto", "cpu"):
        raise InputError(f"{spec}: the export's OpenVINO variants run on cpu, not {device}")
    # LATENCY: one stream using every core for one request, which is how the encoder calls it.
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision}
    try:
        compiled = ov.Core().compile_model(str(path), "CPU", config)
    except Exception as e:  # OpenVINO raises RuntimeError with a multi-line report
        raise ModelLoadError(f"{spec}: cannot load {path.name} with OpenVINO: {_first_line(e)}") from None
    request, lock = compiled.create_infer_request(), threading.Lock()
    output = compiled.output(0)

    def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
        with lock:  # an infer request serves one call at a time
            return np.array(request.infer(feeds)[output], dtype=np.float32)

    return run
