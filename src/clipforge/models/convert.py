"""``clipforge convert SPEC hf:OUT``: any model clipforge runs with torch, saved in Hugging Face
format (model, tokenizer, image processor), which transformers loads without clipforge."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import InputError
from .spec import parse_spec


def unused_dir(out: str | os.PathLike) -> Path:
    """``out`` as a path, if nothing is there yet but perhaps an empty directory."""
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} already exists and is not an empty directory")
    return out


@contextmanager
def written_whole(out: Path) -> Iterator[Path]:
    """A scratch directory beside ``out``, renamed into it when the block succeeds: the
    output appears whole or not at all."""
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    umask = os.umask(0o022)
    os.umask(umask)
    os.chmod(scratch, 0o777 & ~umask)  # mkdtemp's 0700 would outlive the rename
    try:
        yield scratch
        if out.exists():
            out.rmdir()
        os.replace(scratch, out)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def convert_to_hf(spec: str, target: str) -> Path:
    """Write the model ``spec`` names as a Hugging Face directory ``hf:<dir>``; returns its path."""
    from .hf import load_torch_parts

    if not target.startswith("hf:") or len(target) == 3:
        raise InputError(f"convert writes Hugging Face directories: give the output as hf:<dir>, not {target!r}")
    out = unused_dir(target[3:])
    _, model, tokenizer, image_processor = load_torch_parts(parse_spec(spec))
    with written_whole(out) as scratch:
        for part in (model, tokenizer, image_processor):
            part.save_pretrained(scratch)
    return out.resolve()
