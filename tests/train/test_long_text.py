"""Long-CLIP: the stretch is the paper's, the stretched model trains, saves and loads like
any other, and bad lengths and towers are one line."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from clipforge.errors import InputError
from clipforge.models import load_encoder
from clipforge.models.presets import build_random_clip, build_random_dual_encoder, make_clip
from clipforge.train import train
from clipforge.train.long_text import (
    KEEP, first_sentence, long_and_short, long_text_loss, principal_components, stretch_positions, stretched,
)
from clipforge.train.losses import clip_loss, normalize
from train_helpers import shapes_small, tiny_config  # noqa: F401 (a fixture)

TINY_POSITIONS = 32  # the tiny preset's context length
LONG = 68  # the paper's 4x stretch past the first 20: 20 + 4 x (32 - 20)


def _paper_stretch(old: torch.Tensor, keep: int = KEEP) -> torch.Tensor:
    """Long-CLIP's own loop (its model_longclip.py), written out as the reference."""
    length = old.shape[0]
    new = torch.zeros(4 * length - 3 * keep, old.shape[1])
    new[:keep] = old[:keep]
    for i in range(length - 1 - keep):
        for k in range(4):
            new[4 * i + k + keep] = old[i + keep] * (4 - k) / 4 + old[i + 1 + keep] * k / 4
    for k in range(4):
        new[4 * length - 3 * keep - 4 + k] = old[-1] + (old[-1] - old[-2]) * k / 4
    return new


def test_the_stretch_is_the_papers_for_77_to_248():
    old = torch.randn(77, 8, dtype=torch.float64)
    new = stretched(old, 248)
    assert new.shape == (248, 8)
    torch.testing.assert_close(new, _paper_stretch(old).to(torch.float64))


def test_a_stretched_model_reads_long_texts_and_keeps_its_first_positions():
    model, tokenizer, _ = make_clip("tiny", seed=0)
    before = model.text_model.embeddings.position_embedding.weight.detach().clone()
    assert stretch_positions(model, tokenizer, LONG, batch_size=4) == TINY_POSITIONS
    after = model.text_model.embeddings.position_embedding.weight
    assert after.shape[0] == LONG and tokenizer.model_max_length == LONG
    torch.testing.assert_close(after[:KEEP], before[:KEEP])
    ids = torch.randint(1, 40, (2, LONG))
    assert model.get_text_features(input_ids=ids) is not None
    with pytest.raises(Exception):  # the original model has no position 32
        make_clip("tiny", seed=0)[0].get_text_features(input_ids=ids)


def test_long_and_short_captions():
    assert long_and_short(("a dog", "a brown dog asleep on a red sofa")) == ("a brown dog asleep on a red sofa", "a dog")
    assert long_and_short(("A dog on a sofa. It sleeps; the sofa is red.",)) == (
        "A dog on a sofa. It sleeps; the sofa is red.", "A dog on a sofa.")
    assert first_sentence("no full stop here") == "no full stop here"


def test_the_short_loss_sees_principal_components_and_passes_gradients():
    torch.manual_seed(0)
    image = normalize(torch.randn(12, 16)).requires_grad_()
    text = normalize(torch.randn(24, 16))
    reduced = principal_components(image, 3)
    # Every row is a multiple of (mean + a point in the span of 3 directions).
    assert torch.linalg.matrix_rank(reduced.detach(), atol=1e-5) == 4
    torch.testing.assert_close(reduced.norm(dim=1), torch.ones(12))
    loss = long_text_loss(lambda i, t, s, b: clip_loss(i, t, s), 3)(image, text, torch.tensor(2.0), None)
    loss.backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    plain = clip_loss(image, text[:12], torch.tensor(2.0))
    assert float(loss.detach()) > float(plain.detach())  # the short loss is added


def _long_captions(data: Path, out: Path) -> Path:
    """A table of the shapes scenes, each with its short caption and a long one that goes
    past the tiny preset's 32 tokens."""
    rows = list(csv.DictReader(open(data / "pairs.csv", encoding="utf-8")))
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "caption"])
        for row in rows[::2]:
            image = str(data / row["image"])
            long = (f"{row['caption']}. the picture is drawn flat, with no shading, no outline and no text, "
                    f"on a plain background that fills the frame; in words: {row['caption']}")
            writer.writerows([[image, row["caption"]], [image, long]])
    return out


def test_long_text_training_saves_a_model_that_indexes_long_texts(shapes_small, tmp_path):
    start = build_random_clip(tmp_path / "start", "tiny")
    table = _long_captions(shapes_small, tmp_path / "long.csv")
    result = train(tiny_config(tmp_path / "run", table, init=f"hf:{start}", long_text=LONG, workers=2, max_steps=3))
    assert result.finished
    encoder = load_encoder(f"hf:{result.checkpoint}", device="cpu", precision="fp32")
    assert encoder.max_text_length == LONG
    long_text = "a small red circle left of a large blue square " * 8
    vectors = encoder.encode_texts([long_text, long_text[:60]])
    assert vectors.shape[0] == 2 and np.isfinite(vectors).all()
    assert float(vectors[0] @ vectors[1]) < 0.9999  # words past 32 tokens change the vector


def _cli_error(tmp_path: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "clipforge", "train", "--out", str(tmp_path / "run"), *args],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_bad_long_text_settings_are_one_line(shapes_small, tmp_path):
    clip = build_random_clip(tmp_path / "clip", "tiny")
    dual = build_random_dual_encoder(tmp_path / "dual", "tiny")
    data = ["--train", str(shapes_small), "--batch-size", "8", "--max-steps", "1"]
    assert "longer than the text tower's 32" in _cli_error(tmp_path, *data, "--init", f"hf:{clip}", "--long-text", "20")
    assert "none to stretch" in _cli_error(tmp_path, *data, "--init", f"hf:{dual}", "--long-text", "248")
    assert "machine allows" in _cli_error(tmp_path, *data, "--init", f"hf:{clip}", "--long-text", "400000")
    assert "model.init" in _cli_error(tmp_path, *data, "--long-text", "248")
    assert "cannot be combined" in _cli_error(
        tmp_path, *data, "--init", f"hf:{clip}", "--long-text", "68", "--grad-cache-chunk", "4")
    assert not (tmp_path / "run").exists()  # a refused run leaves no folder behind
    with pytest.raises(InputError, match="model.init"):
        tiny_config(tmp_path / "x", shapes_small, long_text=248)
