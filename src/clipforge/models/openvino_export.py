"""The OpenVINO variants of an ONNX export (``clipforge export onnx --openvino``).

- ``openvino-int8``: NNCF's post-training quantisation of the fp32 tower (static int8:
  activation ranges measured on calibration inputs, with its bias correction; transformer
  preset, which leaves softmax and layer norms in float). On this project's AMD CPU (VNNI, no
  AMX) a ViT-B/32-256 image tower ran 64 img/s this way, against 47 for ONNX Runtime's dynamic
  int8 and 15 for fp32 (cosine to fp32 0.9998).
- ``openvino-bf16``: the fp32 file itself, run by OpenVINO with bf16 matrix products where the
  CPU has them natively: no calibration, nearly fp32's agreement.

Calibration inputs are never the probes the agreement is measured on.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import sys
from pathlib import Path

import numpy as np

from ..errors import ModelLoadError

# Captions for calibrating the text tower: varied subjects, places and lengths.
_SUBJECTS = ("a dog", "two children", "an old man", "a red car", "a cup of tea", "a small white cat",
             "a crowd of people", "a wooden boat", "a plate of food", "a tall building", "a bicycle", "a bird")
_SETTINGS = ("", "on a beach", "in the snow at night", "next to a window in a quiet kitchen", "in a busy street",
             "under a blue sky with clouds")
CALIBRATION_TEXTS = [f"{subject} {setting}".strip() for subject, setting in itertools.product(_SUBJECTS, _SETTINGS)]


def require_openvino() -> None:
    try:
        import nncf  # noqa: F401
        import openvino  # noqa: F401
    except ImportError:
        raise ModelLoadError("--openvino needs OpenVINO and NNCF: pip install 'clipforge[openvino]'") from None


def quantize_int8(fp32: Path, out: Path, calibration: list[dict[str, np.ndarray]]) -> None:
    """Write ``out`` (an OpenVINO .xml beside its .bin): ``fp32`` quantised on ``calibration``,
    a list of single-item feeds."""
    import nncf
    import openvino as ov

    nncf.set_log_level(logging.ERROR)  # its per-layer notes are not for a user's terminal
    model = ov.Core().read_model(str(fp32))
    # NNCF draws its progress bars on stdout, which is the command's output (`--json`): stderr.
    with contextlib.redirect_stdout(sys.stderr):
        quantized = nncf.quantize(model, nncf.Dataset(calibration), model_type=nncf.ModelType.TRANSFORMER,
                                  subset_size=len(calibration))
    ov.save_model(quantized, str(out), compress_to_fp16=False)


def variants(tower: str, folder: Path, calibration: list[dict[str, np.ndarray]]) -> dict[str, dict]:
    """The OpenVINO variants of ``tower`` (files written into ``folder``), not yet measured."""
    quantize_int8(folder / f"{tower}.onnx", folder / f"{tower}_openvino_int8.xml", calibration)
    return {
        "openvino-int8": {"file": f"{tower}_openvino_int8.xml", "runtime": "openvino"},
        "openvino-bf16": {"file": f"{tower}.onnx", "runtime": "openvino", "inference_precision": "bf16"},
    }
