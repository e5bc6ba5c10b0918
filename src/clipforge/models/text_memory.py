"""A text memory: zero-shot classification that reads an image through known captions.

Image and text vectors of a dual encoder sit in different regions of the shared space (the
"modality gap"). Retrieval only compares one image with another image's score for the same
query, so the gap cancels; zero-shot classification compares one image with several class
prompts, and there the gap's direction can outweigh the small margins between prompts. A
small locked-text model (builtin:demo) suffers most: its image vectors land near the right
captions, yet rank blunt group prompts ("people & body") poorly.

The memory holds the text vectors of a caption corpus, typically the model's own training
captions (no labels). An image vector is replaced by the softmax-weighted mean of its
``top_k`` most similar captions (weights ``exp(temperature * cosine)``), renormalised: a
point in text space that says what the image looks like in words. The class prompts are
then compared with that, text against text. This is the projection of DeCap (Li et al.,
ICLR 2023), used for classification. DeCap weighs the whole memory; keeping only the
``top_k`` nearest matters at a low temperature, where thousands of far captions, each with a
small weight, would otherwise pull every image towards the corpus mean.

A memory may also take part in the model's image vectors themselves: with ``image_mix`` =
a > 0, the encoder returns ``(1 - a) * v + a * project(v)``, renormalised, for every image,
so indexes, image queries and retrieval see it too. Captions an image sits near then help
find it: for builtin:demo, a = 0.25 raised validation text-to-image recall (model card). The
memory is then part of the weights, and changing it marks collections built before stale.

A memory is a safetensors file: ``vectors`` (captions x dim, float16) and ``top_k``,
``temperature`` and ``image_mix`` in its metadata. It belongs to one text tower: the vectors
must be that tower's, which ``check_fits`` can only verify by dimension.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, ModelLoadError, NotFoundError

MEMORY_FILE = "text_memory.safetensors"
DEFAULT_TOP_K = 20
DEFAULT_TEMPERATURE = 10.0
_BLOCK = 1024  # images projected at once: bounds the (images x captions) score matrix


@dataclass
class TextMemory:
    vectors: np.ndarray  # (captions, dim), L2-normalised float32
    top_k: int = DEFAULT_TOP_K
    temperature: float = DEFAULT_TEMPERATURE
    source: str = ""  # where it was loaded from, for reports
    image_mix: float = 0.0  # share of the projection in the model's own image vectors

    def __post_init__(self):
        vectors = np.asarray(self.vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) == 0:
            raise InputError("a text memory needs at least one caption vector")
        if not np.isfinite(vectors).all():
            raise InputError("a text memory holds non-finite vectors")
        if self.top_k < 1:
            raise InputError(f"text memory top_k must be at least 1, got {self.top_k}")
        if not self.temperature > 0:
            raise InputError(f"text memory temperature must be positive, got {self.temperature}")
        if not 0 <= self.image_mix <= 1:
            raise InputError(f"text memory image_mix must be between 0 and 1, got {self.image_mix}")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)
        self.vectors = np.ascontiguousarray(vectors / norms)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def describe(self) -> dict:
        return {"captions": len(self.vectors), "top_k": self.top_k, "temperature": self.temperature,
                "image_mix": self.image_mix, "source": self.source}

    def mismatch(self, dim: int, what: str = "the model makes") -> str | None:
        if dim == self.dim:
            return None
        name = f"text memory {self.source}" if self.source else "the text memory"
        return f"{name} has {self.dim}-d vectors, but {what} {dim}-d ones"

    def check_fits(self, dim: int, what: str = "the model makes") -> None:
        if (problem := self.mismatch(dim, what)) is not None:
            raise InputError(problem)

    def project(self, image_emb: np.ndarray) -> np.ndarray:
        """Each image vector as the weighted mean of its nearest captions, L2-normalised."""
        image_emb = np.asarray(image_emb, dtype=np.float32)
        self.check_fits(image_emb.shape[-1], "these image vectors are")
        k = min(self.top_k, len(self.vectors))
        out = np.empty((len(image_emb), self.dim), np.float32)
        for start in range(0, len(image_emb), _BLOCK):
            scores = image_emb[start : start + _BLOCK] @ self.vectors.T
            nearest = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            logits = np.take_along_axis(scores, nearest, axis=1) * self.temperature
            weights = np.exp(logits - logits.max(axis=1, keepdims=True))
            weights /= weights.sum(axis=1, keepdims=True)
            out[start : start + len(scores)] = np.einsum("ik,ikd->id", weights, self.vectors[nearest])
        return out / np.linalg.norm(out, axis=1, keepdims=True).clip(min=1e-12)

    def blend(self, image_emb: np.ndarray) -> np.ndarray:
        """The model's image vectors: ``image_emb`` moved ``image_mix`` of the way to their
        projection, renormalised; unchanged when ``image_mix`` is 0."""
        if self.image_mix == 0 or len(image_emb) == 0:
            return image_emb
        mixed = (1 - self.image_mix) * image_emb + self.image_mix * self.project(image_emb)
        return mixed / np.linalg.norm(mixed, axis=1, keepdims=True).clip(min=1e-12)

    def save(self, path: str | Path) -> Path:
        import torch
        from safetensors.torch import save_file

        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        save_file({"vectors": torch.from_numpy(self.vectors).to(torch.float16)}, tmp,
                  metadata={"top_k": str(self.top_k), "temperature": repr(float(self.temperature)),
                            "image_mix": repr(float(self.image_mix))})
        tmp.replace(path)  # a killed write leaves the old memory, never half of a new one
        return path

    @classmethod
    def load(cls, path: str | Path) -> "TextMemory":
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise NotFoundError(f"text memory {path} does not exist")
        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                vectors = f.get_tensor("vectors")
            return cls(vectors, int(meta.get("top_k", DEFAULT_TOP_K)),
                       float(meta.get("temperature", DEFAULT_TEMPERATURE)), str(path),
                       float(meta.get("image_mix", 0.0)))
        except (SafetensorError, OSError, KeyError, ValueError) as e:
            raise ModelLoadError(f"cannot read text memory {path}: {str(e).strip().splitlines()[0]}") from None

    @classmethod
    def from_texts(cls, encoder, texts: Sequence[str], top_k: int = DEFAULT_TOP_K,
                   temperature: float = DEFAULT_TEMPERATURE, source: str = "", image_mix: float = 0.0) -> "TextMemory":
        """Encode a caption corpus (duplicates and blanks dropped) with ``encoder``'s text tower."""
        unique = sorted({t.strip() for t in texts if t and t.strip()})
        if not unique:
            raise InputError(f"no captions to build a text memory from {source}".strip())
        return cls(encoder.encode_texts(unique), top_k, temperature, source, image_mix)


def load_captions(path: str | Path) -> list[str]:
    """One caption per line of a UTF-8 text file."""
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise NotFoundError(f"captions file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read captions file {path}: {e}") from None


def resolve_text_memory(encoder, choice: "TextMemory | str | Path | None" = "auto") -> TextMemory | None:
    """The memory a classification uses. ``auto``: the one the model ships, if any; ``off``
    (or None): none, the plain prompt classifier; a ``.safetensors`` file: that memory; any
    other file: captions, one per line, encoded now with this model's text tower; a
    ``TextMemory``: itself."""
    if isinstance(choice, TextMemory):
        return choice
    if choice is None or str(choice) == "off":
        return None
    if str(choice) == "auto":
        return getattr(encoder, "text_memory", None)
    path = Path(choice)
    if not path.exists():
        raise NotFoundError(f"text memory {str(choice)!r} is neither auto, off nor an existing file")
    if path.suffix == ".safetensors":
        memory = TextMemory.load(path)
    else:
        memory = TextMemory.from_texts(encoder, load_captions(path), source=str(path))
    memory.check_fits(encoder.dim)
    return memory


def read_through(memory: TextMemory | None, image_emb: np.ndarray) -> np.ndarray:
    """What a classifier compares with the prompts: the projection, or the vectors as they are."""
    return image_emb if memory is None else memory.project(image_emb)


def find_model_memory(folder: str | Path | None, dim: int) -> TextMemory | None:
    """The text memory a model folder ships (``text_memory.safetensors``), if any."""
    if folder is None or not (Path(folder) / MEMORY_FILE).is_file():
        return None
    memory = TextMemory.load(Path(folder) / MEMORY_FILE)
    if (problem := memory.mismatch(dim)) is not None:
        raise ModelLoadError(problem)
    return memory
