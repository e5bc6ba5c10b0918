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
import shutil
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
    from ..train.models import resolve_tower

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


def export_builtin(model_dir: str | Path, out: str | Path, text_package: str) -> Path:
    """Write a trained dual-encoder checkpoint (a ``clipforge train`` final/ directory whose
    text tower is ``text_package``'s) as a builtin model folder."""
    import torch
    from safetensors.torch import load_file, save_file

    model_dir, out = Path(model_dir), Path(out)
    state = load_file(model_dir / "model.safetensors")
    trained = {k: v.to(torch.float16).contiguous() for k, v in state.items() if k.startswith(TRAINED_PREFIXES)}
    if not any(k.startswith("vision_model.") for k in trained):
        raise ModelLoadError(f"{model_dir} holds no vision tower weights")
    out.mkdir(parents=True, exist_ok=True)
    save_file(trained, out / WEIGHTS, metadata={"format": "pt"})
    config = json.loads((model_dir / "config.json").read_text())
    # Name where the text tower comes from, not the training machine's path to it.
    config["text_config"]["_name_or_path"] = f"package:{text_package}"
    config["vision_config"].pop("_name_or_path", None)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    shutil.copyfile(model_dir / "preprocessor_config.json", out / "preprocessor_config.json")
    (out / MANIFEST).write_text(json.dumps({"text_package": text_package}, indent=2) + "\n")
    return out


def write_text_memory(name: str, captions_dataset: str | Path, split: str = "train", image_mix: float = 0.0) -> Path:
    """Ship, beside builtin model ``name``, a text memory of a dataset split's captions (its
    training captions: no labels), encoded by the model's text tower; ``image_mix``: see
    ``search.text_memory``."""
    from ..eval.formats import load_retrieval_dataset
    from ..search.text_memory import MEMORY_FILE, TextMemory
    from . import load_encoder

    captions = load_retrieval_dataset(captions_dataset, split=split).captions
    encoder = load_encoder(f"builtin:{name}", device="cpu", precision="fp32")
    memory = TextMemory.from_texts(encoder, captions, image_mix=image_mix)
    return memory.save(builtin_dir(name) / MEMORY_FILE)
