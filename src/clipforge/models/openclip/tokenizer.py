"""The tokenizer of an open_clip checkpoint, as a transformers CLIPTokenizer.

open_clip's native text towers use OpenAI's CLIP BPE vocabulary, which open_clip ships as
``bpe_simple_vocab_16e6.txt.gz`` and transformers as ``vocab.json`` + ``merges.txt`` (the
same tokens at the same ids). A checkpoint file does not carry it, and nothing is downloaded
for a local checkpoint, so it is looked for, in order:

1. beside the weights: tokenizer files of transformers (``tokenizer.json`` or
   ``vocab.json`` + ``merges.txt``), or open_clip's ``bpe_simple_vocab_16e6.txt.gz``;
2. in an installed open_clip package (found without importing it);
3. in the Hugging Face cache, as ``openai/clip-vit-base-patch32``'s tokenizer.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

from ...errors import ModelLoadError
from ..bpe import clip_tokenizer

BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
# open_clip reads this many merges of the file (its vocabulary is 49408 tokens).
_MERGES = 49152 - 256 - 2


def bpe_file_tokenizer(path: Path, context_length: int):
    lines = gzip.open(path, "rt", encoding="utf-8").read().split("\n")
    merges = [line for line in lines[1 : _MERGES + 1] if line.strip()]
    return clip_tokenizer(merges, context_length)


def _installed_open_clip_bpe() -> Path | None:
    try:
        found = importlib.util.find_spec("open_clip")
    except (ImportError, ValueError):
        return None
    if found is None or not found.origin:
        return None
    path = Path(found.origin).parent / BPE_FILE
    return path if path.is_file() else None


def _cached_openai_tokenizer_dir() -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    files = [try_to_load_from_cache("openai/clip-vit-base-patch32", name) for name in ("vocab.json", "merges.txt")]
    if all(isinstance(f, str) for f in files):
        return Path(files[0]).parent
    return None


def load_tokenizer(spec, folder: Path, context_length: int):
    from transformers import AutoTokenizer, CLIPTokenizer

    if (folder / "tokenizer_config.json").is_file() or (folder / "tokenizer.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(folder)
    elif (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    elif (folder / BPE_FILE).is_file():
        tokenizer = bpe_file_tokenizer(folder / BPE_FILE, context_length)
    elif bpe := _installed_open_clip_bpe():
        tokenizer = bpe_file_tokenizer(bpe, context_length)
    elif cached := _cached_openai_tokenizer_dir():
        tokenizer = CLIPTokenizer(str(cached / "vocab.json"), str(cached / "merges.txt"))
    else:
        raise ModelLoadError(
            f"{spec}: no CLIP BPE vocabulary found: put open_clip's {BPE_FILE} (or transformers' vocab.json and "
            f"merges.txt) beside the checkpoint, or install open_clip_torch, or cache "
            f"openai/clip-vit-base-patch32 once with network access"
        )
    tokenizer.model_max_length = context_length
    return tokenizer
