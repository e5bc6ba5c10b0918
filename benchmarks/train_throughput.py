"""Training throughput: samples/s and peak memory per preset, with and without gradient
checkpointing and bf16 autocast, all in one run.

    python benchmarks/train_throughput.py [--device cpu|cuda] [--presets tiny,base] [--steps 3]

Each configuration trains a randomly initialised CLIP on synthetic batches (no data loading:
this measures the model, loss and optimizer step) for a warm-up step plus ``--steps`` timed
steps. Figures are ratios against the fp32 run of the same preset, measured in this run.
Peak memory is CUDA's max_memory_allocated on a GPU; on CPU it is the peak RSS growth of a
forked process that runs just that configuration (allocator caching included).
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext

import torch

from clipforge.models.presets import get_preset, make_clip
from clipforge.train.losses import clip_loss
from clipforge.train.models import ContrastiveModel, enable_checkpointing
from clipforge.train.config import OptimConfig
from clipforge.train.optim import build_optimizer

BATCH = {"tiny": 256, "mini": 256, "small": 64, "base": 32}


def _batch(preset: str, size: int, vocab: int, device: torch.device):
    p = get_preset(preset)
    pixels = torch.randn(size, 3, p.image_size, p.image_size, device=device)
    ids = torch.randint(0, vocab - 2, (size, min(p.context_length, 24)), device=device)
    return pixels, {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def _peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def measure(preset: str, device: torch.device, bf16: bool, checkpointing: bool, steps: int, size: int) -> dict:
    model, tokenizer, _ = make_clip(preset, seed=0)
    if checkpointing:
        enable_checkpointing(model)
    net = ContrastiveModel(model).to(device).train()
    optimizer = build_optimizer(model, OptimConfig(), device)
    pixels, text = _batch(preset, size, len(tokenizer), device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    before = _rss_bytes() if device.type == "cpu" else 0

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            image, txt, scale, _ = net(pixels, **text)
        clip_loss(image.float(), txt.float(), scale.float()).backward()
        optimizer.step()

    step()  # warm-up: allocator, kernels, lazy initialisation
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    peak = _peak_bytes(device) - before
    return {"samples_per_s": steps * size / elapsed, "peak_mib": max(peak, 0) / 2**20, "batch": size}


def _isolated(preset: str, device: torch.device, bf16: bool, checkpointing: bool, steps: int, size: int) -> dict:
    if device.type == "cuda":  # CUDA cannot be forked; its peak counter is per run anyway
        return measure(preset, device, bf16, checkpointing, steps, size)
    # On CPU each configuration runs in a forked process, so that its peak RSS is its own.
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        return pool.submit(measure, preset, device, bf16, checkpointing, steps, size).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--presets", default="tiny,base")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=None, help="samples per step (default: per preset)")
    args = parser.parse_args()
    import transformers

    transformers.utils.logging.set_verbosity_error()  # no per-model notices between the rows
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"training throughput on {where}; {args.steps} timed steps after one warm-up")
    print(f"{'preset':<7} {'batch':>5} {'precision':<9} {'ckpt':<4} {'samples/s':>10} {'vs fp32':>8} {'peak MiB':>9}")
    for preset in args.presets.split(","):
        baseline = None
        for bf16 in (False, True):
            for checkpointing in (False, True):
                size = args.batch or BATCH.get(preset, 32)
                r = _isolated(preset, device, bf16, checkpointing, args.steps, size)
                gc.collect()
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                baseline = baseline or r["samples_per_s"]
                print(
                    f"{preset:<7} {r['batch']:>5} {'bf16' if bf16 else 'fp32':<9} {'on' if checkpointing else 'off':<4} "
                    f"{r['samples_per_s']:>10.1f} {r['samples_per_s'] / baseline:>7.2f}x {r['peak_mib']:>9.0f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
