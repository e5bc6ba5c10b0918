"""Make the open_clip reference fixtures under tests/models/fixtures/open_clip/.

open_clip needs torchvision, which pulls a CUDA build of torch, so it is not one of
clipforge's dependencies. Run this once, in a throwaway virtual environment, whenever the
fixtures must change:

    python -m venv /some/where/oc && /some/where/oc/bin/pip install torch torchvision open_clip_torch
    /some/where/oc/bin/python scripts/make_open_clip_fixtures.py

For each family (a ViT with QuickGELU, and a timm ConvNeXt) it builds a tiny random
open_clip model from a small config, randomises every parameter (so that each one shows in
the outputs: ConvNeXt's layer scales start at 1e-6, which would hide whole blocks), and
writes, in open_clip's own hub layout:

- ``open_clip_config.json``: the model config and the preprocessing config;
- ``open_clip_model.safetensors``: the weights, in float16 (the references are computed
  from the same float16 values, in float32);
- ``bpe_simple_vocab_16e6.txt.gz``: a tiny BPE vocabulary in the format of open_clip's own;
- ``reference.npz``: open_clip's tokens, preprocessed pixels, and image and text features
  for fixed inputs.

It also writes ``named_shapes.json.gz``: the parameter names and shapes of some of open_clip's
named configs (built on the meta device, no weights), so that the tests can check the mapping
of a named config without a checkpoint of hundreds of megabytes.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

import numpy as np
import open_clip
import torch
from PIL import Image
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from clipforge.models.bpe import word_merges  # noqa: E402  (imports nothing beyond the standard library)

WORDS = (
    "a an the of on in at and photo picture image dog cat bird car red blue green yellow "
    "circle square triangle small large left right beach night day fruit apple"
).split()
TEXTS = ["a photo of a dog", "a red car on the beach at night", "cat", "", "a small green apple and a large blue bird"]
CONTEXT = 32
OPENAI_MEAN, OPENAI_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)

TEXT_CFG = {"context_length": CONTEXT, "width": 32, "heads": 2, "layers": 2}
FAMILIES = {
    "vit": {
        "model_cfg": {
            "embed_dim": 16,
            "quick_gelu": True,
            "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
            "text_cfg": TEXT_CFG,
        },
        "preprocess_cfg": {"mean": OPENAI_MEAN, "std": OPENAI_STD, "interpolation": "bicubic", "resize_mode": "shortest"},
    },
    "convnext": {
        "model_cfg": {
            "embed_dim": 16,
            "vision_cfg": {
                "timm_model_name": "convnext_tiny",
                "timm_model_pretrained": False,
                "timm_pool": "",
                "timm_proj": "linear",
                "timm_drop": 0.0,
                "timm_model_kwargs": {"depths": [1, 1, 2, 1], "dims": [8, 16, 24, 32]},
                "image_size": 32,
            },
            "text_cfg": TEXT_CFG,
        },
        # ImageNet statistics and a squash resize, so that both preprocessing settings are read.
        "preprocess_cfg": {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225),
                           "interpolation": "bicubic", "resize_mode": "squash"},
    },
}
NAMED = ["ViT-B-32", "ViT-H-14", "ViT-bigG-14", "convnext_base", "convnext_xxlarge"]


def write_bpe(path: Path) -> None:
    # No newline after the last merge: open_clip would read the empty line after it as a merge.
    text = "#version: 0.2\n" + "\n".join(word_merges(WORDS))
    with gzip.GzipFile(path, "wb", mtime=0) as f:
        f.write(text.encode())


def randomise(model: torch.nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    norms = {name for name, m in model.named_modules() if isinstance(m, torch.nn.LayerNorm)}
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            owner, _, leaf = name.rpartition(".")
            if owner in norms or leaf == "gamma":
                p.copy_(1.0 + 0.2 * noise if leaf in ("weight", "gamma") else 0.1 * noise)
            elif name == "logit_scale":
                p.fill_(float(np.log(1 / 0.07)))
            else:
                fan_in = p.shape[-1] if p.ndim > 1 else p.numel()
                p.copy_(noise / max(fan_in, 1) ** 0.5)
            p.copy_(p.half().float())  # float16 on disk: the references use exactly the stored values


def sample_image() -> Image.Image:
    rng = np.random.default_rng(7)
    h, w = 30, 46  # resized to 32 x 49 by 'shortest': the 17 extra columns are cropped 8 left, 9 right
    ramp = np.linspace(0, 255, w)[None, :, None]
    array = np.clip(ramp * 0.6 + rng.normal(90, 40, (h, w, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(array, "RGB")


def build(folder: Path, spec: dict):
    """An open_clip model (random weights) and its eval preprocessing, from the folder's config.

    open_clip releases up to 3.3 do not read ``timm_model_kwargs`` (later ones pass them to
    timm.create_model): build the named timm model, then put in its place the trunk and
    projection that the kwargs describe, exactly as open_clip's TimmModel makes them.
    """
    vision = spec["model_cfg"]["vision_cfg"]
    kwargs = vision.get("timm_model_kwargs")
    if kwargs is None:
        model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}", load_weights=False)
        return model.eval(), preprocess
    import timm

    cfg = json.loads(json.dumps(spec["model_cfg"]))
    del cfg["vision_cfg"]["timm_model_kwargs"]
    model = open_clip.model.CLIP(**cfg)
    trunk = timm.create_model(vision["timm_model_name"], pretrained=False, **kwargs)
    trunk.reset_classifier(0)
    model.visual.trunk = trunk
    model.visual.head.proj = torch.nn.Linear(trunk.num_features, cfg["embed_dim"], bias=False)
    pp = spec["preprocess_cfg"]
    preprocess = open_clip.image_transform(vision["image_size"], is_train=False, mean=pp["mean"], std=pp["std"],
                                           interpolation=pp["interpolation"], resize_mode=pp["resize_mode"])
    return model.eval(), preprocess


def make_family(name: str, spec: dict, out: Path, seed: int) -> None:
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(json.dumps(spec, indent=2) + "\n")
    write_bpe(folder / "bpe_simple_vocab_16e6.txt.gz")
    tokenizer = open_clip.tokenizer.SimpleTokenizer(str(folder / "bpe_simple_vocab_16e6.txt.gz"), context_length=CONTEXT)
    spec["model_cfg"]["text_cfg"]["vocab_size"] = tokenizer.vocab_size
    (folder / "open_clip_config.json").write_text(json.dumps(spec, indent=2) + "\n")

    model, preprocess = build(folder, spec)
    randomise(model, seed)
    save_file({k: v.half().contiguous() for k, v in model.state_dict().items()}, folder / "open_clip_model.safetensors")

    # Load back through open_clip's own loader: the references come from what it reads.
    model, preprocess = build(folder, spec)
    open_clip.load_checkpoint(model, str(folder / "open_clip_model.safetensors"))
    image = sample_image()
    image.save(folder / "sample.png")
    generator = torch.Generator().manual_seed(seed + 1)
    pixels = torch.cat([preprocess(image)[None], torch.randn((3, 3, 32, 32), generator=generator)])
    tokens = tokenizer(TEXTS, context_length=CONTEXT)
    with torch.no_grad():
        image_features = model.encode_image(pixels)
        text_features = model.encode_text(tokens)
    np.savez_compressed(
        folder / "reference.npz",
        texts=np.array(TEXTS),
        tokens=tokens.numpy().astype(np.int32),
        pixels=pixels.numpy(),
        image_features=image_features.numpy(),
        text_features=text_features.numpy(),
        logit_scale=model.logit_scale.detach().numpy(),
    )


def named_shapes() -> dict:
    shapes = {}
    for name in NAMED:
        with torch.device("meta"):
            model = open_clip.create_model(name, load_weights=False, device="meta")
        shapes[name] = {k: list(v.shape) for k, v in model.state_dict().items()}
    return shapes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "tests/models/fixtures/open_clip")
    args = parser.parse_args()
    for seed, (name, spec) in enumerate(FAMILIES.items()):
        make_family(name, json.loads(json.dumps(spec)), args.out, seed)
    with gzip.GzipFile(args.out / "named_shapes.json.gz", "wb", mtime=0) as f:
        f.write(json.dumps(named_shapes(), separators=(",", ":")).encode())
    print(f"open_clip {open_clip.__version__}: fixtures written to {args.out}")


if __name__ == "__main__":
    main()
