"""open_clip checkpoints, read without open_clip: ``open_clip:<config>/<checkpoint>``,
``open_clip:<dir>`` and ``open_clip:hf-hub:<org>/<name>``.

A checkpoint becomes a transformers model in memory (CLIPModel for a ViT,
VisionTextDualEncoderModel with a ConvNextModel for a ConvNeXt), with a CLIPTokenizer and a
CLIPImageProcessor set as open_clip preprocesses, so the rest of clipforge runs it like any
``hf:`` model, and ``clipforge convert`` saves it as one.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import ModelLoadError
from ..spec import OPEN_CLIP_HUB, ModelSpec
from .config import check_supported, named_config, read_config_file

CONFIG_FILE = "open_clip_config.json"
# open_clip's own preference among the weight files of a hub-layout folder.
WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors", "open_clip_pytorch_model.bin",
                "open_clip_pytorch_model.pth", "model.safetensors", "pytorch_model.bin", "pytorch_model.pth", "model.pth")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json")


def _weights_in(spec, folder: Path) -> Path:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    found = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".pth"))
    if len(found) == 1:
        return found[0]
    what = "no weight file" if not found else f"{len(found)} weight files and none named {WEIGHT_FILES[0]}"
    raise ModelLoadError(f"{spec}: {folder} holds {what}")


def _download_hub(spec, repo: str) -> Path:
    """The snapshot folder of an open_clip hub repository: its config, its tokenizer files and
    one weight file (repositories often hold the same weights twice, as .bin and .safetensors)."""
    from huggingface_hub import list_repo_files, snapshot_download

    from ..hf import _hub_reachable

    wanted = [CONFIG_FILE, *TOKENIZER_FILES]
    try:  # a repository already in the cache loads without the network
        return Path(snapshot_download(repo, allow_patterns=wanted + list(WEIGHT_FILES), local_files_only=True))
    except Exception:
        if not _hub_reachable():
            raise ModelLoadError(f"{spec}: not in the local cache and the hub cannot be reached; "
                                 f"download it once with network access") from None
    try:
        files = list_repo_files(repo)
        weights = next((n for n in WEIGHT_FILES if n in files), None)
        if weights is None:
            raise ModelLoadError(f"{spec}: the hub repository has no open_clip weight file")
        return Path(snapshot_download(repo, allow_patterns=wanted + [weights]))
    except ModelLoadError:
        raise
    except Exception as e:
        raise ModelLoadError(f"{spec}: cannot download from the hub: {str(e).strip().splitlines()[0]}") from None


def locate(spec: ModelSpec) -> tuple[dict, dict, Path, Path]:
    """(model config, preprocessing config, weight file, folder holding the tokenizer)."""
    name, where = spec.open_clip_parts
    if name is not None:
        checkpoint = Path(where)
        return named_config(spec, name), {}, checkpoint, checkpoint.parent
    folder = _download_hub(spec, where[len(OPEN_CLIP_HUB):]) if where.startswith(OPEN_CLIP_HUB) else Path(where)
    if not (folder / CONFIG_FILE).is_file():
        raise ModelLoadError(f"{spec}: {folder} is not an open_clip model folder (no {CONFIG_FILE})")
    cfg, preprocess = read_config_file(spec, folder / CONFIG_FILE)
    return cfg, preprocess, _weights_in(spec, folder), folder


def load_open_clip_parts(spec: ModelSpec):
    """(family, model, tokenizer, image processor), as ``hf.load_parts`` returns them."""
    from .build import build_model, image_processor
    from .tokenizer import load_tokenizer
    from .weights import load_into, read_state_dict, to_transformers

    cfg, preprocess, checkpoint, folder = locate(spec)
    tower = check_supported(spec, cfg)
    context = int(cfg["text_cfg"].get("context_length", 77))
    tokenizer = load_tokenizer(spec, folder, context)
    family, model = build_model(cfg, tower, bos_id=tokenizer.bos_token_id, eos_id=tokenizer.eos_token_id)
    load_into(spec, model, to_transformers(spec, read_state_dict(spec, checkpoint), tower))
    vocab = model.config.text_config.vocab_size if hasattr(model.config, "text_config") else None
    if vocab is not None and len(tokenizer) > vocab:
        raise ModelLoadError(f"{spec}: the tokenizer has {len(tokenizer)} tokens but the text tower only {vocab}")
    return family, model.eval(), tokenizer, image_processor(spec, cfg, preprocess)
