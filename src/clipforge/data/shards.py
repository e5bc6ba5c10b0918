"""WebDataset tar shards: naming them, listing their members, and reading a member back.

Training's pair reader (``pairs``) and evaluation's CLIP_benchmark reader
(``eval.webdataset``) both come here, so that a shard is opened, keyed and read back by
offset in one way.

A member's key is its name up to the first dot of its file name (``dir/a.b.jpg`` has key
``dir/a`` and extension ``b.jpg``), as webdataset groups samples; a member without an
extension, or whose file name starts with a dot, belongs to no sample and is passed over.
Members of a local shard are located by offset and read only when needed, so a shard is
never held in memory; a ``pipe:`` shard cannot be seeked, so its members are kept in memory.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import tarfile
from collections.abc import Container, Iterator
from dataclasses import dataclass, field

from ..errors import ImageDecodeError, InputError, NotFoundError

_BRACE = re.compile(r"\{([^{}]*)\}")
_KEY = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")


def expand_braces(pattern: str) -> list[str]:
    """``a-{000..002}.tar`` -> ``a-000.tar a-001.tar a-002.tar``; ``{x,y}`` lists alternatives."""
    match = _BRACE.search(pattern)
    if not match:
        return [pattern]
    body, head, tail = match.group(1), pattern[: match.start()], pattern[match.end() :]
    ranged = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if ranged:
        lo, hi = ranged.groups()
        width = len(lo) if lo.startswith("0") else 0
        options = [str(i).zfill(width) for i in range(int(lo), int(hi) + 1)]
    else:
        options = body.split(",")
    return [expanded for option in options for expanded in expand_braces(head + option + tail)]


def expand_shards(spec: str) -> list[str]:
    shards = expand_braces(spec)
    for shard in shards:
        if not shard.startswith("pipe:") and not os.path.isfile(shard):
            raise NotFoundError(f"shard {shard} does not exist")
    return shards


@dataclass(frozen=True)
class Member:
    """One file in a shard, with the sample key and extension its name gives it."""

    shard: str  # a path or a pipe: command
    name: str
    key: str
    ext: str  # lower case, without the leading dot
    offset: int
    size: int
    data: bytes | None = field(default=None, repr=False)  # held for pipe: shards and kept extensions

    def read(self) -> bytes:
        return self.data if self.data is not None else read_member(self.shard, self.offset, self.size, self.name)


def read_member(shard: str, offset: int, size: int, member: str) -> bytes:
    """``size`` bytes at ``offset`` of a local shard. Raises ImageDecodeError with a short reason."""
    where = f"{shard}:{member}"
    try:
        with open(shard, "rb") as f:
            f.seek(offset)
            data = f.read(size)
    except OSError as e:
        raise ImageDecodeError(f"cannot read shard ({e.strerror or e})", where) from None
    if len(data) != size:
        raise ImageDecodeError("shard is truncated", where)
    return data


def iter_members(shard: str, keep: Container[str] = ()) -> Iterator[Member]:
    """The keyed file members of a shard, in tar order.

    Members whose extension is in ``keep`` come with their bytes, read in the same pass, so
    that small text entries cost no second open of the shard. A shard with no keyed member
    is an error, as is one that cannot be read.
    """
    if shard.startswith("pipe:"):
        yield from _pipe_members(shard)
        return
    try:
        if os.path.getsize(shard) == 0:
            raise InputError(f"empty shard: {shard}")
        # Offsets index the file itself only when the tar is not compressed, hence "r:".
        with tarfile.open(shard, "r:") as tar:
            yield from _keyed_members(tar, shard, keep, in_memory=False)
    except (OSError, tarfile.TarError) as e:
        raise InputError(f"{shard}: not a readable tar shard ({e})") from None


def _pipe_members(spec: str) -> Iterator[Member]:
    proc = subprocess.run(spec[len("pipe:") :], shell=True, capture_output=True)
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip().splitlines()
        raise InputError(f"{spec}: command failed ({message[-1] if message else f'exit {proc.returncode}'})")
    if not proc.stdout:
        raise InputError(f"empty shard: {spec} wrote nothing")
    try:
        with tarfile.open(fileobj=io.BytesIO(proc.stdout), mode="r|*") as tar:
            yield from _keyed_members(tar, spec, (), in_memory=True)
    except tarfile.TarError as e:
        raise InputError(f"{spec}: not a readable tar stream ({e})") from None


def _keyed_members(tar: tarfile.TarFile, shard: str, keep: Container[str], in_memory: bool) -> Iterator[Member]:
    found = False
    for info in tar:
        match = _KEY.match(info.name) if info.isfile() else None
        if match is None:
            continue
        found = True
        key, ext = match.group(1), match.group(2).lower()
        data = tar.extractfile(info).read() if in_memory or ext in keep else None
        yield Member(shard, info.name, key, ext, info.offset_data, info.size, data)
    if not found:
        raise InputError(f"empty shard: {shard} holds no files named key.ext")
