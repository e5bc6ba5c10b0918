"""Named prompt-template sets for zero-shot evaluation.

``openai-imagenet-80`` is the ensemble the CLIP authors used for ImageNet (CLIP repository,
"Prompt_Engineering_for_ImageNet"); published ImageNet zero-shot numbers, and
CLIP_benchmark's ``imagenet1k`` task, use it. ``openai-imagenet-7`` is the subset of 7 the
same notebook found best, and the default of ``clipforge classify``.

Templates use a ``{}`` slot for the class name. CLIP_benchmark's template files write the
slot as ``{c}``; those are accepted and converted.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError, NotFoundError
from ..search.classify import DEFAULT_TEMPLATES, check_templates, load_templates

OPENAI_IMAGENET_TEMPLATES = (
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a plushie {}.",
    "a photo of the nice {}.",
    "a photo of the small {}.",
    "a photo of the weird {}.",
    "the cartoon {}.",
    "art of the {}.",
    "a drawing of the {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "the plushie {}.",
    "a dark photo of a {}.",
    "itap of a {}.",
    "graffiti of the {}.",
    "a toy {}.",
    "itap of my {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "a tattoo of the {}.",
)

TEMPLATE_SETS: dict[str, tuple[str, ...]] = {
    "openai-imagenet-80": OPENAI_IMAGENET_TEMPLATES,
    "openai-imagenet-7": DEFAULT_TEMPLATES,
}
# Published ImageNet-style zero-shot numbers use the full ensemble.
DEFAULT_TEMPLATE_SET = "openai-imagenet-80"
_CLIP_BENCHMARK_SLOT = "{c}"


def from_clip_benchmark(templates: list[str], source: str) -> list[str]:
    """CLIP_benchmark's ``{c}`` slot -> ``{}``, then the usual checks."""
    converted = [t.replace(_CLIP_BENCHMARK_SLOT, "{}") for t in templates]
    try:
        return check_templates(converted)
    except InputError as e:
        raise InputError(f"{source}: {e}") from None


def read_template_file(path: Path) -> list[str]:
    if not path.is_file():
        raise NotFoundError(f"templates file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    if _CLIP_BENCHMARK_SLOT not in text:
        try:
            return load_templates(path)
        except InputError as e:
            raise InputError(f"{path}: {e}") from None
    lines = [ln.strip() for ln in text.splitlines()]
    return from_clip_benchmark([ln for ln in lines if ln and not ln.startswith("#")], str(path))


def resolve_templates(choice: str | None, shipped: list[str] | None = None) -> tuple[str, list[str]]:
    """(name to report, templates): a set name or file if given, else the dataset's own
    templates, else the default set."""
    if choice:
        if choice in TEMPLATE_SETS:
            return choice, list(TEMPLATE_SETS[choice])
        path = Path(choice)
        if not path.exists() and not path.suffix and "/" not in choice:
            names = ", ".join(TEMPLATE_SETS)
            raise InputError(f"unknown template set '{choice}'; use one of {names}, or a file")
        return str(path), read_template_file(path)
    if shipped:
        return "dataset", list(shipped)
    return DEFAULT_TEMPLATE_SET, list(TEMPLATE_SETS[DEFAULT_TEMPLATE_SET])
