"""Shared fixtures: tiny random checkpoints saved with save_pretrained, and a CLI runner.

Nothing here downloads anything. Every model is opened through the same ``hf:<dir>`` spec a
user would type.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from clipforge.models.presets import build_random_clip, build_random_dual_encoder, build_random_siglip  # noqa: E402


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    return build_random_clip(tmp_path_factory.mktemp("tiny-clip"), "tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_clip_other_dir(tmp_path_factory) -> Path:
    """A second tiny CLIP: same shapes, other weights (for model-mismatch tests)."""
    return build_random_clip(tmp_path_factory.mktemp("tiny-clip-other"), "tiny", seed=1)


@pytest.fixture(scope="session")
def tiny_siglip_dir(tmp_path_factory) -> Path:
    return build_random_siglip(tmp_path_factory.mktemp("tiny-siglip"), "tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_dual_dir(tmp_path_factory) -> Path:
    return build_random_dual_encoder(tmp_path_factory.mktemp("tiny-dual"), "tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_clip_spec(tiny_clip_dir) -> str:
    return f"hf:{tiny_clip_dir}"


def make_photo(path: Path, size=(64, 48), seed: int = 0, fmt: str | None = None, **save_kwargs) -> Path:
    """A small photo-like image: a colour gradient plus noise, distinct per seed."""
    rng = np.random.default_rng(seed)
    w, h = size
    base = rng.integers(0, 256, 3)
    ramp = np.linspace(0, 1, w, dtype=np.float32)[None, :, None] * rng.integers(-120, 120, 3)
    noise = rng.normal(0, 20, (h, w, 3))
    array = np.clip(base + ramp + noise, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, "RGB").save(path, format=fmt, **save_kwargs)
    return path


@pytest.fixture
def photo_dir(tmp_path) -> Path:
    """A folder of 12 distinct small JPEG/PNG photos, one in a subfolder."""
    root = tmp_path / "photos"
    for i in range(10):
        make_photo(root / f"img_{i:02d}.jpg", seed=i)
    make_photo(root / "nested" / "deep.png", seed=100)
    make_photo(root / "wide.jpg", size=(120, 40), seed=200)
    return root


@pytest.fixture
def clipforge_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("CLIPFORGE_HOME", str(home))
    return home


class CliResult:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    def json(self):
        return json.loads(self.stdout)

    def __repr__(self) -> str:
        return f"<exit {self.returncode}\nstdout: {self.stdout[-2000:]}\nstderr: {self.stderr[-2000:]}>"


@pytest.fixture
def run_cli(clipforge_home):
    """Run the real ``clipforge`` executable in a subprocess."""
    exe = Path(sys.executable).with_name("clipforge")

    def run(*args, timeout: float = 300, check: bool | None = None, **kwargs) -> CliResult:
        env = dict(os.environ, CLIPFORGE_HOME=str(clipforge_home))
        proc = subprocess.run(
            [str(exe), *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env, **kwargs
        )
        result = CliResult(proc)
        if check is True:
            assert result.returncode == 0, result
        return result

    return run
