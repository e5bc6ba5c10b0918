"""What a training step costs the kernel: minor page faults, system time and samples/s of a
ViT-B/32-sized CLIP (bf16 autocast, batch 32, 77 tokens), with glibc's default allocator
settings and with the trainer's (``clipforge.allocator``), and with AdamW fused or not.

    python benchmarks/train_step_faults.py [--steps 6] [--rounds 2]

Each setting runs in a fresh process on the same random weights and inputs, rounds alternating.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

_STEP = r"""
import json, resource, sys, time
import torch, torch.nn.functional as F
from pathlib import Path
keep, fused, steps, model_dir = sys.argv[1] == "1", sys.argv[2] == "1", int(sys.argv[3]), sys.argv[4]
if keep:
    from clipforge.allocator import keep_freed_memory
    keep_freed_memory()
from transformers import CLIPModel
from clipforge.models.hf import pooled_features
torch.manual_seed(0)
model = CLIPModel.from_pretrained(model_dir).train()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2, fused=fused)
text_config = model.config.text_config
pixels = torch.randn(32, 3, 224, 224)
ids = torch.randint(1, text_config.vocab_size - 1, (32, min(77, text_config.max_position_embeddings)))
labels = torch.arange(32)
def step():
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        image = F.normalize(pooled_features(model.get_image_features(pixel_values=pixels)), dim=-1)
        text = F.normalize(pooled_features(model.get_text_features(input_ids=ids)), dim=-1)
    logits = model.logit_scale.exp() * image.float() @ text.float().T
    ((F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
for _ in range(2):
    step()  # the allocator's and the optimizer's state grow to their size
before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for _ in range(steps):
    step()
wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"samples_per_s": 32 * steps / wall, "sys_s_per_step": (after.ru_stime - before.ru_stime) / steps,
                  "minflt_per_step": (after.ru_minflt - before.ru_minflt) / steps, "peak_rss_gb": after.ru_maxrss / 2**20}))
"""

SETTINGS = {  # name -> (keep freed memory, fused AdamW)
    "glibc default, AdamW for-loop": (False, False),
    "freed memory kept": (True, False),
    "freed memory kept, AdamW fused": (True, True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    from clipforge.models.presets import build_random_clip

    with tempfile.TemporaryDirectory() as work:
        model_dir = build_random_clip(f"{work}/base", "base", seed=0)
        results: dict[str, list[dict]] = {name: [] for name in SETTINGS}
        for _ in range(args.rounds):
            for name, (keep, fused) in SETTINGS.items():
                proc = subprocess.run([sys.executable, "-c", _STEP, str(int(keep)), str(int(fused)), str(args.steps),
                                       str(model_dir)], capture_output=True, text=True, check=True)
                results[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    base = sum(r["samples_per_s"] for r in results["glibc default, AdamW for-loop"]) / args.rounds
    print(f"{'setting':<32} {'samples/s':>9} {'ratio':>6} {'sys s/step':>10} {'faults/step':>11} {'peak GB':>7}")
    for name, runs in results.items():
        mean = {k: sum(r[k] for r in runs) / len(runs) for k in runs[0]}
        print(f"{name:<32} {mean['samples_per_s']:9.2f} {mean['samples_per_s'] / base:5.2f}x "
              f"{mean['sys_s_per_step']:10.2f} {mean['minflt_per_step']:11.0f} {mean['peak_rss_gb']:7.2f}")


if __name__ == "__main__":
    main()
