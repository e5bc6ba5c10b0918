"""It learns: a tiny CLIP trained from scratch on the shapes dataset, on CPU, retrieves
held-out scenes by their captions."""

from __future__ import annotations

import time
from pathlib import Path

from clipforge.data.pairs import load_pairs
from clipforge.data.shapes import write_shapes
from clipforge.models import load_encoder
from clipforge.train.validate import load_val_data, recall_at_k

EXAMPLE = Path(__file__).parents[2] / "examples" / "shapes-tiny.yaml"


def test_a_tiny_model_learns_the_shapes_dataset(run_cli, tmp_path, record_property):
    start = time.monotonic()
    data = tmp_path / "shapes"
    write_shapes(data, n=2500)  # 2,000 training scenes, 250 held-out test scenes
    # The example config, on a smaller dataset for more epochs: the same 40k samples seen.
    result = run_cli(
        "train", "--config", EXAMPLE, "--out", tmp_path / "run", "--train", data, "--val", "",
        "--epochs", "20", "--save-every", "0", "--device", "cpu", "--json", timeout=600,
    )
    assert result.returncode == 0, result
    encoder = load_encoder(f"hf:{tmp_path}/run/final", device="cpu", precision="fp32")
    test = load_val_data(load_pairs(data, "test"), encoder.preprocess, 1000)
    metrics = recall_at_k(encoder, test, (1, 5))
    elapsed = time.monotonic() - start
    record_property("text_to_image_R@1", metrics["image_retrieval_recall@1"])
    record_property("seconds", round(elapsed, 1))
    print(f"\nshapes test split ({len(test.pixels)} scenes): {metrics}; {elapsed:.0f} s")
    assert metrics["image_retrieval_recall@1"] >= 0.6, metrics
