"""Making ``builtin:`` models: a trained checkpoint shipped into the package, with a text memory.

``scripts/train_demo_model.sh`` runs these after training builtin:demo; the library itself
only loads builtin models (``models.builtin``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..errors import ModelLoadError
from ..eval.formats import load_retrieval_dataset
from ..models import load_encoder
from ..models.builtin import MANIFEST, TRAINED_PREFIXES, WEIGHTS, builtin_dir
from ..models.text_memory import MEMORY_FILE, TextMemory


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
    ``models.text_memory``."""
    captions = load_retrieval_dataset(captions_dataset, split=split).captions
    encoder = load_encoder(f"builtin:{name}", device="cpu", precision="fp32")
    memory = TextMemory.from_texts(encoder, captions, image_mix=image_mix)
    return memory.save(builtin_dir(name) / MEMORY_FILE)
