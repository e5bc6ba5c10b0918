"""CLIP's byte-level BPE vocabulary, built from a list of merges.

OpenAI's CLIP, open_clip and transformers' CLIPTokenizer share one vocabulary layout: the
256 byte symbols, the same with ``</w>`` (end of word), one token per merge in merge order,
then the start and end of text. Both clipforge's tiny test tokenizers and open_clip's
``bpe_simple_vocab_16e6.txt.gz`` are turned into a CLIPTokenizer through it.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

START, END = "<|startoftext|>", "<|endoftext|>"


def bytes_to_unicode() -> dict[int, str]:
    # The reversible byte -> printable-character table that GPT-2/CLIP BPE vocabularies use.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = printable[:], 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


def clip_vocab(merges: list[str]) -> dict[str, int]:
    """Token -> id for ``merges`` ("a b" lines, in rank order)."""
    symbols = list(bytes_to_unicode().values())
    vocab = {s: i for i, s in enumerate(symbols)}
    for s in symbols:
        vocab[s + "</w>"] = len(vocab)
    for merge in merges:
        vocab.setdefault(merge.replace(" ", ""), len(vocab))
    vocab[START] = len(vocab)
    vocab[END] = len(vocab)
    return vocab


def clip_tokenizer(merges: list[str], context_length: int = 77):
    """A transformers CLIPTokenizer over this vocabulary."""
    from transformers import CLIPTokenizer

    merges = list(dict.fromkeys(merges))
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.json").write_text(json.dumps(clip_vocab(merges)))
        (Path(tmp) / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
        return CLIPTokenizer(str(Path(tmp) / "vocab.json"), str(Path(tmp) / "merges.txt"),
                             model_max_length=context_length)


def word_merges(words) -> list[str]:
    """Merges that build each of ``words`` left to right into one token."""
    merges = []
    for word in dict.fromkeys(w.lower() for w in words):
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            merges.append(f"{parts[0]} {parts[1]}")
            parts = [parts[0] + parts[1]] + parts[2:]
    return list(dict.fromkeys(merges))
