"""A training step frees and re-allocates its activations every step. With glibc's default
settings the freed memory at the top of the heap goes back to the kernel and every step
faults it in again, page by page (hundreds of thousands of minor faults and about a sixth of
the step's CPU time at ViT-B/32 scale). The trainer keeps freed memory in the process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from train_helpers import shapes_small  # noqa: F401 (a fixture)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")

# Allocate and free 640 MB of 16 MB tensors, as a step's activations are, and count the minor
# page faults of the rounds after the first.
_CHURN = textwrap.dedent("""
    import resource, sys, torch
    def churn():
        tensors = [torch.ones(4 << 20) for _ in range(40)]
        del tensors
    {setup}
    churn()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        churn()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def _faults(setup: str) -> int:
    code = _CHURN.format(setup=setup)
    return int(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)


def test_freed_tensor_memory_is_reused_without_page_faults_once_training_has_started(shapes_small, tmp_path):
    pages = 5 * 640 * (1 << 20) // 4096
    assert _faults("") > pages // 5  # the default: each round faults its memory in again
    setup = textwrap.dedent(f"""
        from clipforge.train import train
        sys.path.insert(0, {str(__file__.rsplit('/', 1)[0])!r})
        from train_helpers import tiny_config
        train(tiny_config({str(tmp_path / 'run')!r}, {str(shapes_small)!r}, max_steps=1, save_every=0))
    """)
    assert _faults(setup) < pages // 50
