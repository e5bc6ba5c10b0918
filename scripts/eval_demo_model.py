"""Measure builtin:demo against its quality bar, beside a random-initialised twin.

    .venv/bin/python scripts/eval_demo_model.py data/emoji data/clipart [--out results.json]
        [--model hf:runs/demo/step-250] [--no-baseline]

The twin has the same architecture and the same frozen text tower; only the trained parts
(image tower, projections) are left at their random initialisation.
"""

from __future__ import annotations

import argparse
import json

import torch

from clipforge.recipes.demo_eval import BAR, below_bar, demo_metrics
from clipforge.models import load_encoder


# The bar's metrics, and beside them the ones a constant guess of the largest group cannot inflate.
ROWS = [(task, metric) for task, bars in BAR.items() for metric in bars] + [
    ("emoji_groups", "mean_per_class_recall"),
    ("emoji_groups_prompts_only", "acc1"),
    ("emoji_groups_prompts_only", "mean_per_class_recall"),
]


def random_twin(encoder, seed: int = 0):
    from transformers import VisionTextDualEncoderModel

    torch.manual_seed(seed)
    fresh = VisionTextDualEncoderModel(config=encoder.model.config, text_model=encoder.model.text_model)
    encoder.model = fresh.to(encoder.device, encoder.dtype).eval()
    return encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("emoji")
    parser.add_argument("clipart")
    parser.add_argument("--out")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--model", default="builtin:demo", help="a checkpoint of the same shape, e.g. hf:runs/demo/final")
    parser.add_argument("--no-baseline", action="store_true", help="skip the random-initialised twin")
    args = parser.parse_args()
    table = {}
    for name in ("trained",) if args.no_baseline else ("trained", "random-init"):
        encoder = load_encoder(args.model, precision=args.precision)
        if name == "random-init":
            encoder = random_twin(encoder)
        results = demo_metrics(encoder, args.emoji, args.clipart)
        table[name] = {task: r.metrics for task, r in results.items()}
        print(name, "below the bar:", below_bar(results) or "none")
    print("| task | metric | bar | " + " | ".join(table) + " |\n|---|---|---|" + "---|" * len(table))
    for task, metric in ROWS:
        bar = BAR.get(task, {}).get(metric, "")
        print(f"| {task} | {metric} | {bar} | " + " | ".join(f"{t[task][metric]:.3f}" for t in table.values()) + " |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(table, f, indent=2)


if __name__ == "__main__":
    main()
