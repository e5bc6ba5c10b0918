"""open_clip checkpoints against open_clip's own outputs.

The fixtures under fixtures/open_clip/ were made by scripts/make_open_clip_fixtures.py with
open_clip itself (which clipforge does not depend on): tiny random models of the ViT and
ConvNeXt families, their checkpoints in open_clip's hub layout, and open_clip's tokens,
preprocessed pixels and features for fixed inputs.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from clipforge.errors import InputError, ModelLoadError
from clipforge.models import load_encoder, parse_spec
from clipforge.models.convert import convert_to_hf

FIXTURES = Path(__file__).parent / "fixtures" / "open_clip"
FAMILIES = ("vit", "convnext")


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _reference(family: str):
    return np.load(FIXTURES / family / "reference.npz")


def _assert_matches_open_clip(encoder, family: str) -> None:
    ref = _reference(family)
    image_cos = (encoder.encode_pixels(ref["pixels"]) * _unit(ref["image_features"])).sum(1)
    text_cos = (encoder.encode_texts(list(ref["texts"])) * _unit(ref["text_features"])).sum(1)
    assert image_cos.min() >= 0.9999, image_cos
    assert text_cos.min() >= 0.9999, text_cos
    assert encoder.logit_scale == pytest.approx(float(np.exp(ref["logit_scale"])), rel=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_features_match_open_clip(family):
    encoder = load_encoder(f"open_clip:{FIXTURES / family}", device="cpu", precision="fp32")
    _assert_matches_open_clip(encoder, family)


@pytest.mark.parametrize("family", FAMILIES)
def test_tokens_and_pixels_match_open_clip(family):
    encoder = load_encoder(f"open_clip:{FIXTURES / family}", device="cpu", precision="fp32")
    ref = _reference(family)
    for text, expected in zip(ref["texts"], ref["tokens"]):
        ids = encoder.tokenizer(str(text))["input_ids"]
        assert ids == expected[: len(ids)].tolist() and not expected[len(ids):].any()  # open_clip pads with 0
    pixels = encoder.preprocess(Image.open(FIXTURES / family / "sample.png"))
    np.testing.assert_allclose(pixels, ref["pixels"][0], atol=1e-4)


def test_training_checkpoint_with_a_config_file_beside_it(tmp_path):
    # A checkpoint as open_clip's training writes it: {"epoch", "state_dict"} with DDP's prefix.
    folder = tmp_path / "run"
    folder.mkdir()
    state = load_file(FIXTURES / "vit" / "open_clip_model.safetensors")
    torch.save({"epoch": 3, "name": "run", "state_dict": {f"module.{k}": v for k, v in state.items()}},
               folder / "epoch_3.pt")
    for name in ("open_clip_config.json", "bpe_simple_vocab_16e6.txt.gz"):
        shutil.copy(FIXTURES / "vit" / name, folder / name)
    encoder = load_encoder(f"open_clip:{folder}", device="cpu", precision="fp32")
    _assert_matches_open_clip(encoder, "vit")


def test_named_config_spec_is_parsed_to_an_absolute_checkpoint(tmp_path, monkeypatch):
    (tmp_path / "ckpt.pt").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    spec = parse_spec("open_clip:ViT-B-32/ckpt.pt")
    assert str(spec) == f"open_clip:ViT-B-32/{tmp_path.resolve() / 'ckpt.pt'}"
    assert spec.open_clip_parts == ("ViT-B-32", str(tmp_path.resolve() / "ckpt.pt"))
    monkeypatch.chdir("/")
    assert parse_spec(str(spec)) == spec


@pytest.mark.parametrize("name", ["ViT-B-32", "ViT-H-14", "ViT-bigG-14", "convnext_base", "convnext_xxlarge"])
def test_named_configs_fit_open_clips_own_parameters(name):
    # open_clip's parameter names and shapes for its named configs (built by the fixture script
    # on the meta device): each must land, with its shape, on a parameter of the model clipforge builds.
    from clipforge.models.openclip.build import build_model
    from clipforge.models.openclip.config import check_supported, named_config
    from clipforge.models.openclip.weights import check_fit, to_transformers

    shapes = json.loads(gzip.open(FIXTURES / "named_shapes.json.gz").read())[name]
    cfg = named_config(name, name)
    tower = check_supported(name, cfg)
    with torch.device("meta"):
        _, model = build_model(cfg, tower, bos_id=49406, eos_id=49407)
        state = {k: torch.empty(v) for k, v in shapes.items()}
    check_fit(name, model, to_transformers(name, state, tower))


def _one_line_error(spec: str, match: str) -> str:
    with pytest.raises(ModelLoadError, match=match) as caught:
        load_encoder(spec, device="cpu", precision="fp32")
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_missing_checkpoint_is_one_line(tmp_path):
    message = _one_line_error(f"open_clip:ViT-B-32/{tmp_path}/nope.pt", "does not exist")
    assert "open_clip:ViT-B-32" in message


def test_unknown_config_name_is_one_line():
    message = _one_line_error(f"open_clip:ViT-Q-99/{FIXTURES / 'vit' / 'open_clip_model.safetensors'}",
                              "unknown open_clip config 'ViT-Q-99'")
    assert "ViT-B-32" in message  # it suggests the ViT configs it knows


def test_checkpoint_of_another_config_is_one_line():
    _one_line_error(f"open_clip:ViT-B-32/{FIXTURES / 'vit' / 'open_clip_model.safetensors'}",
                    "does not fit its config")


def test_corrupt_checkpoint_is_one_line(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"\x80\x02 not a checkpoint at all" * 10)
    shutil.copy(FIXTURES / "vit" / "bpe_simple_vocab_16e6.txt.gz", tmp_path)
    _one_line_error(f"open_clip:ViT-B-32/{bad}", "cannot read checkpoint model.pt")


def test_unsupported_setting_is_refused_by_name(tmp_path):
    folder = tmp_path / "siglip"
    shutil.copytree(FIXTURES / "vit", folder)
    config = json.loads((folder / "open_clip_config.json").read_text())
    config["model_cfg"]["init_logit_bias"] = -10
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    _one_line_error(f"open_clip:{folder}", r"setting model.init_logit_bias=-10 is not supported")


def test_checkpoint_without_a_vocabulary_is_one_line(tmp_path):
    from clipforge.models.openclip.tokenizer import _cached_openai_tokenizer_dir, _installed_open_clip_bpe

    if _installed_open_clip_bpe() or _cached_openai_tokenizer_dir():
        pytest.skip("this machine has a CLIP vocabulary to fall back on")
    shutil.copy(FIXTURES / "vit" / "open_clip_model.safetensors", tmp_path)
    _one_line_error(f"open_clip:ViT-B-32/{tmp_path / 'open_clip_model.safetensors'}", "no CLIP BPE vocabulary found")


def test_folder_without_config_is_one_line(tmp_path):
    _one_line_error(f"open_clip:{tmp_path}", "not an open_clip model folder")


@pytest.mark.parametrize("family", FAMILIES)
def test_converted_checkpoint_loads_in_transformers_alone(tmp_path, family):
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    out = convert_to_hf(f"open_clip:{FIXTURES / family}", f"hf:{tmp_path / 'hf'}")
    model = AutoModel.from_pretrained(out).eval()
    tokenizer, processor = AutoTokenizer.from_pretrained(out), AutoImageProcessor.from_pretrained(out)
    ref = _reference(family)
    with torch.no_grad():
        image = model.get_image_features(**processor(Image.open(FIXTURES / family / "sample.png"), return_tensors="pt"))
        text = model.get_text_features(**tokenizer(list(ref["texts"]), padding=True, return_tensors="pt"))
    image, text = (getattr(f, "pooler_output", f).numpy() for f in (image, text))
    assert (_unit(image[0]) @ _unit(ref["image_features"][0])) >= 0.9999
    assert (_unit(text) * _unit(ref["text_features"])).sum(1).min() >= 0.9999
    _assert_matches_open_clip(load_encoder(f"hf:{out}", device="cpu", precision="fp32"), family)


def test_convert_refuses_a_used_directory(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("keep me")
    with pytest.raises(InputError, match="already exists"):
        convert_to_hf(f"open_clip:{FIXTURES / 'vit'}", f"hf:{tmp_path / 'out'}")
    with pytest.raises(InputError, match="hf:<dir>"):
        convert_to_hf(f"open_clip:{FIXTURES / 'vit'}", str(tmp_path / "elsewhere"))


def test_convert_command(run_cli, tmp_path):
    result = run_cli("convert", f"open_clip:{FIXTURES / 'convnext'}", f"hf:{tmp_path / 'hf'}", "--json", check=True)
    assert result.json()["spec"] == f"hf:{(tmp_path / 'hf').resolve()}"
    assert (tmp_path / "hf" / "config.json").is_file()
    bad = run_cli("convert", f"open_clip:ViT-B-32/{tmp_path}/missing.pt", f"hf:{tmp_path / 'x'}")
    assert bad.returncode == 4 and bad.stderr.count("\n") == 1, bad
