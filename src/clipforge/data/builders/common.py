"""The pair-dataset writer shared by every builder: fixed splits, atomic output, dataset.json.

A build writes into a sibling folder ``OUT.tmp-<pid>-<random>`` and renames it to ``OUT``
only after ``pairs.csv`` and ``dataset.json`` are complete, so a killed build never leaves
something that looks like a finished dataset. ``dataset.json`` is written last and is the
mark of a complete dataset. Leftover folders of builds whose process is gone are removed
by the next build of the same ``OUT``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from ...errors import InputError, NotFoundError

log = logging.getLogger(__name__)

FORMAT = "clipforge-pairs"
FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
BASE_COLUMNS = ("image", "caption", "split", "label", "lang", "kind")
# Buckets of sha1(key) mod 100: [0, 80) train, [80, 90) val, [90, 100) test.
SPLIT_BUCKETS = {"train": 80, "val": 90, "test": 100}
SPLIT_RULE = (
    "split = bucket of int(sha1(utf-8 group key)) mod 100: 0-79 train, 80-89 val, 90-99 test; "
    "every image with the same group key is in the same split"
)

ProgressFn = Callable[[int, int], None]  # (done, total)


def split_for(key: str) -> str:
    """The fixed split of a group key: the same key gives the same split on every build."""
    bucket = int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") % 100
    return next(name for name, end in SPLIT_BUCKETS.items() if bucket < end)


def stable_order(key: str) -> str:
    """A sort key that spreads items pseudo-randomly but identically on every run."""
    return hashlib.sha1(key.encode("utf-8")).hexdigest()


def normalize_text(text: str) -> str:
    """Whitespace collapsed, for captions; the comparison form is ``.casefold()`` of this."""
    return re.sub(r"\s+", " ", text).strip()


def join_keywords(name: str, keywords: Sequence[str], limit: int = 12) -> str | None:
    """``"name — k1, k2"`` without the keywords the name already says; None if none remain.

    A bare keyword list ("flag", "stars, shapes") is shared by hundreds of images, and two
    images with one caption are false negatives for a contrastive loss; the name in front
    keeps the caption specific while the keywords add the words people search with. The
    dash, not a colon, because many names hold one already ("flag: Japan").
    """
    name = normalize_text(name)
    name_words = set(re.findall(r"\w+", name.casefold()))
    kept: list[str] = []
    for keyword in map(normalize_text, keywords):
        words = set(re.findall(r"\w+", keyword.casefold()))
        if words and not words <= name_words and keyword.casefold() not in map(str.casefold, kept):
            kept.append(keyword)
    if not kept:
        return None
    joined = ", ".join(kept[:limit])
    return f"{name} — {joined}" if name else joined


@dataclass(frozen=True)
class Caption:
    """One caption of an image; ``kind`` says where it came from (name, keywords, title...)."""

    text: str
    lang: str = "en"
    kind: str = ""


@dataclass
class BuildResult:
    """What a build did, or (``built`` False) what an existing complete dataset holds."""

    path: str
    name: str
    built: bool
    images: int
    captions: int
    splits: dict[str, dict[str, int]]
    skipped: dict[str, int]
    seconds: float
    langs: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def save_png(image: Image.Image, path: Path) -> None:
    """PNG at zlib level 3: within 1% of the default size for flat art, at two thirds of the time."""
    image.save(path, format="PNG", compress_level=3)


def require_path(path: Path, what: str, package: str) -> Path:
    """``path`` if it exists (a folder: with something in it); else a one-line error naming the package."""
    path = Path(path)
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        raise NotFoundError(
            f"{what} not found at {path}: install the Debian package {package} "
            f"(apt-get install {package})"
        )
    return path


def package_version(package: str) -> str:
    """The installed Debian package version, or "unknown" off Debian."""
    try:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package],
            capture_output=True, text=True, timeout=30, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "unknown"


def read_info(out: Path) -> dict[str, Any] | None:
    """``dataset.json`` of a complete dataset at ``out``, or None."""
    try:
        info = json.loads((Path(out) / "dataset.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and info.get("format") == FORMAT else None


def existing_result(out: Path, name: str, force: bool = False) -> BuildResult | None:
    """The summary of the complete ``name`` dataset at ``out``, if one is there and not ``force``.

    Raises if ``out`` holds anything but a clipforge dataset, so that no build, even with
    ``force``, ever replaces unrelated files.
    """
    out = Path(out).absolute()
    info = read_info(out)
    if info is None:
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise InputError(f"{out} exists and is not a clipforge dataset; choose another OUT")
        return None
    if force:
        return None
    if info.get("name") != name:
        raise InputError(f"{out} holds the {info.get('name')!r} dataset, not {name!r}; use --force to replace it")
    counts = info.get("counts", {})
    return BuildResult(
        path=str(out), name=name, built=False, images=counts.get("images", 0),
        captions=counts.get("captions", 0), splits=counts.get("splits", {}),
        skipped=info.get("skipped", {}), seconds=0.0, langs=counts.get("langs", {}),
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_builds(out: Path) -> None:
    """Delete ``OUT.tmp-<pid>-*`` and ``OUT.old-<pid>-*`` left by builds that were killed."""
    out = Path(out)
    pattern = re.compile(rf"^{re.escape(out.name)}\.(?:tmp|old)-(\d+)-")
    for candidate in out.parent.glob(f"{out.name}.*-*"):
        match = pattern.match(candidate.name)
        if match and candidate.is_dir() and not _pid_alive(int(match.group(1))):
            log.info("removing %s, left by an interrupted build", candidate)
            shutil.rmtree(candidate, ignore_errors=True)


def _sibling(out: Path, kind: str) -> Path:
    """A new empty folder ``OUT.<kind>-<pid>-<random>`` next to ``out``.

    Made with mkdir rather than mkdtemp so that it gets the umask's permissions, not 0700:
    the tmp folder becomes the published dataset.
    """
    while True:
        candidate = out.with_name(f"{out.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue


class PairDatasetWriter:
    """Writes one pair dataset into a temporary folder and publishes it atomically.

    Use as a context manager: ``commit`` publishes; leaving the block without committing
    (an exception, Ctrl-C) deletes the temporary folder.
    """

    def __init__(self, out: Path, name: str, extra_columns: Sequence[str] = ()):
        self.out = Path(out).absolute()
        self.name = name
        self.columns = list(BASE_COLUMNS) + [c for c in extra_columns if c not in BASE_COLUMNS]
        self.out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_builds(self.out)
        self.tmp = _sibling(self.out, "tmp")
        self.images_dir = self.tmp / "images"
        self.images_dir.mkdir()
        self._file = open(self.tmp / "pairs.csv", "w", encoding="utf-8", newline="")
        self._csv = csv.DictWriter(self._file, fieldnames=self.columns, lineterminator="\n")
        self._csv.writeheader()
        self._splits = {split: Counter() for split in SPLITS}
        self._langs: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self._started = time.monotonic()
        self._committed = False

    def __enter__(self) -> PairDatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._committed:
            self._file.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def image_path(self, relative: str) -> Path:
        """Where to write the image that rows will name ``images/<relative>``."""
        path = self.images_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def skip(self, reason: str) -> None:
        self.skipped[reason] += 1

    def add_image(self, relative: str, split: str, captions: Sequence[Caption],
                  label: str = "", **extra: str) -> int:
        """Rows for one image already written under ``image_path(relative)``; returns the row count.

        Captions repeated for the same image and language are written once.
        """
        if split not in self._splits:
            raise ValueError(f"unknown split {split!r}")
        unknown = set(extra) - set(self.columns)
        if unknown:
            raise ValueError(f"columns {sorted(unknown)} were not declared")
        seen: set[tuple[str, str]] = set()
        image = f"images/{Path(relative).as_posix()}"
        for caption in captions:
            text = normalize_text(caption.text)
            if not text or (text.casefold(), caption.lang) in seen:
                continue
            seen.add((text.casefold(), caption.lang))
            self._csv.writerow({"image": image, "caption": text, "split": split, "label": label,
                                "lang": caption.lang, "kind": caption.kind, **extra})
            self._langs[caption.lang] += 1
        self._splits[split]["images"] += 1
        self._splits[split]["captions"] += len(seen)
        return len(seen)

    def commit(self, description: str, sources: Mapping[str, str], params: Mapping[str, Any],
               columns: Mapping[str, str], force: bool = False) -> BuildResult:
        """Write dataset.json, then move the finished folder to ``out`` (replacing it if ``force``)."""
        self._file.close()
        splits = {split: {"images": c["images"], "captions": c["captions"]} for split, c in self._splits.items()}
        result = BuildResult(
            path=str(self.out), name=self.name, built=True,
            images=sum(c["images"] for c in splits.values()),
            captions=sum(c["captions"] for c in splits.values()), splits=splits,
            skipped=dict(self.skipped.most_common()),
            seconds=round(time.monotonic() - self._started, 2), langs=dict(self._langs.most_common()),
        )
        info = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "name": self.name,
            "description": description, "sources": dict(sources), "params": dict(params),
            "split_rule": SPLIT_RULE, "columns": dict(columns),
            "counts": {"images": result.images, "captions": result.captions,
                       "splits": splits, "langs": result.langs},
            "skipped": result.skipped, "build_seconds": result.seconds,
        }
        (self.tmp / "dataset.json").write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        self._publish(force)
        self._committed = True
        return result

    def _publish(self, force: bool) -> None:
        old = None
        if self.out.exists():
            if not force and read_info(self.out) is not None:
                raise InputError(f"{self.out} was completed by another build meanwhile; use --force to replace it")
            old = _sibling(self.out, "old")
            os.rename(self.out, old / "dataset")
        os.rename(self.tmp, self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
