"""clip-retrieval's embeddings layout, read and checked before anything is written.

``clip-retrieval inference`` writes, for each partition N (zero-padded to the width of the
partition count):

    img_emb/img_emb_N.npy        float16 unit vectors, one row per sample
    text_emb/text_emb_N.npy      float16 unit vectors of the same samples' captions, row for row
    metadata/metadata_N.parquet  one row per sample: image_path (a file path, or a WebDataset
                                 sample key), caption, and the keys of the samples' .json
                                 (url, width, ...) as columns

Either .npy folder may be absent (``--enable_text False``, or a text-only run); the metadata
always exists. autofaiss and clip-retrieval's back end number the vectors in the sorted
order of the files, and read the metadata files in the same order, row for row.

Everything here reads; nothing writes. An import checks every partition (the .npy headers
against the file sizes, every vector for finiteness and unit length, row counts, keys)
before its first write, so a refusal changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError, ModelMismatchError, NotFoundError

NORM_TOLERANCE = 0.01  # float16 rounding moves a unit vector's length by ~1e-3, never 1e-2
_CHECK_ROWS = 65_536  # vectors checked at a time: bounds memory for any partition size
_PARTITION = re.compile(r"^(img_emb|text_emb|metadata)_(\d+)\.(npy|parquet)$")
KEY_AUTO = "auto"
KEY_ROW = "row"  # keys by position: <partition>#<row>


def parquet():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError("clip-retrieval's metadata is Parquet, which needs pyarrow: pip install 'clipforge[parquet]'") from None
    return pa, pq


@dataclass
class NpyFile:
    path: Path
    rows: int
    dim: int
    dtype: np.dtype
    fortran: bool
    offset: int  # where the data starts

    def vectors(self) -> np.ndarray:
        """The vectors, memory-mapped (read only what is used)."""
        return np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.offset,
                         shape=(self.rows, self.dim), order="F" if self.fortran else "C")


@dataclass
class Partition:
    name: str  # the N of img_emb_N.npy, as written ("0003")
    metadata: Path
    image: NpyFile | None = None
    text: NpyFile | None = None
    rows: int = 0
    columns: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)  # each row's sample id, once keys are chosen

    @property
    def files(self) -> list[Path]:
        return [p for p in (self.image and self.image.path, self.text and self.text.path, self.metadata) if p]


def relative(root: Path, path: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def read_npy_header(path: Path, root: Path) -> NpyFile:
    """The shape and type a .npy file declares, checked against its size (a cut-off copy)."""
    name = relative(root, path)
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version[0]}.{version[1]}")
            offset = f.tell()
    except (ValueError, OSError, EOFError) as e:
        raise InputError(f"{name} is not a readable .npy file ({str(e).splitlines()[0] if str(e) else 'cut short'})") from None
    if len(shape) != 2:
        raise InputError(f"{name} holds an array of shape {shape}, not a table of vectors (rows x dimension)")
    if dtype.kind != "f":
        raise InputError(f"{name} holds {dtype} values, not floating-point vectors")
    needed = offset + shape[0] * shape[1] * dtype.itemsize
    if size < needed:
        raise InputError(f"{name} is truncated: its header promises {shape[0]} vectors of {shape[1]} "
                         f"({needed} bytes) but the file holds {size} bytes")
    return NpyFile(path, int(shape[0]), int(shape[1]), dtype, bool(fortran), offset)


def _numbered(folder: Path, prefix: str, suffix: str) -> dict[str, Path]:
    found = {}
    if folder.is_dir():
        for path in folder.iterdir():
            match = _PARTITION.match(path.name)
            if match and match.group(1) == prefix and path.name.endswith(suffix):
                found[match.group(2)] = path
    return found


def find_partitions(root: Path) -> list[Partition]:
    """The partitions of an embeddings folder, in numeric order, their files' headers read."""
    if not root.is_dir():
        raise NotFoundError(f"{root} does not exist or is not a folder")
    images = _numbered(root / "img_emb", "img_emb", ".npy")
    texts = _numbered(root / "text_emb", "text_emb", ".npy")
    metadata = _numbered(root / "metadata", "metadata", ".parquet")
    if not images and not texts:
        raise InputError(f"{root} holds no img_emb/img_emb_N.npy and no text_emb/text_emb_N.npy: "
                         "not clip-retrieval's embeddings layout")
    if images and texts and set(images) != set(texts):
        odd = sorted(set(images) ^ set(texts))[0]
        have, lack = ("img_emb", "text_emb") if odd in images else ("text_emb", "img_emb")
        raise InputError(f"{root}: {have}/{have}_{odd}.npy has no {lack}/{lack}_{odd}.npy beside it")
    partitions = []
    for name in sorted(images or texts, key=lambda n: (int(n), n)):
        if name not in metadata:
            npy = f"img_emb/img_emb_{name}.npy" if name in images else f"text_emb/text_emb_{name}.npy"
            raise InputError(f"{root}: metadata/metadata_{name}.parquet is missing (it holds the rows of {npy})")
        part = Partition(name, metadata[name])
        part.image = read_npy_header(images[name], root) if name in images else None
        part.text = read_npy_header(texts[name], root) if name in texts else None
        if part.image and part.text and part.image.rows != part.text.rows:
            raise InputError(f"{root}: img_emb_{name}.npy holds {part.image.rows} vectors but text_emb_{name}.npy "
                             f"holds {part.text.rows}; they must pair row for row")
        part.rows = (part.image or part.text).rows
        partitions.append(part)
    return partitions


def check_metadata(root: Path, partitions: list[Partition]) -> None:
    """Each metadata file readable, with one row per vector, and a caption where texts are."""
    _, pq = parquet()
    for part in partitions:
        name = relative(root, part.metadata)
        try:
            file = pq.ParquetFile(part.metadata)
            rows, part.columns = file.metadata.num_rows, list(file.schema_arrow.names)
        except Exception as e:  # pyarrow's errors for damaged files have no common base
            raise InputError(f"{name} is not a readable Parquet file ({str(e).splitlines()[0]})") from None
        if rows != part.rows:
            raise InputError(f"{name} has {rows} rows but its embeddings hold {part.rows} vectors")
        if part.text is not None and "caption" not in part.columns:
            raise InputError(f"{name} has no caption column, which text_emb/text_emb_{part.name}.npy embeds")


def check_vectors(root: Path, partitions: list[Partition], dim: int, collection: str) -> None:
    """Every vector of the collection's dimension, finite and of unit length."""
    for part in partitions:
        for npy in filter(None, (part.image, part.text)):
            name = relative(root, npy.path)
            if npy.dim != dim:
                raise ModelMismatchError(f"{name} holds {npy.dim}-d vectors but collection {collection} holds "
                                         f"{dim}-d ones: they come from another model")
            vectors = npy.vectors()
            for start in range(0, npy.rows, _CHECK_ROWS):
                _check_block(np.asarray(vectors[start : start + _CHECK_ROWS], dtype=np.float32), start, name)
            del vectors


def _check_block(block: np.ndarray, start: int, name: str) -> None:
    finite = np.isfinite(block).all(axis=1)
    if not finite.all():
        raise InputError(f"{name}: vector {start + int(np.argmin(finite))} is not finite (NaN or infinity)")
    norms = np.linalg.norm(block, axis=1)
    off = np.abs(norms - 1) > NORM_TOLERANCE
    if off.any():
        row = int(np.argmax(off))
        raise InputError(f"{name}: vector {start + row} has length {norms[row]:.4g}, not 1; clip-retrieval "
                         "writes unit vectors: normalise them first (or these are not CLIP embeddings)")


def choose_ids(root: Path, partitions: list[Partition], key_column: str) -> str:
    """Give every row its sample id and return the column they came from (``row``: positions).

    ``auto`` takes ``image_path`` (clip-retrieval's own name for a sample), else ``url``, else
    positions. Ids must be present and unique across the folder: a repeated one would make
    two samples one item.
    """
    _, pq = parquet()
    common = set.intersection(*(set(p.columns) for p in partitions))
    if key_column == KEY_AUTO:
        key_column = next((c for c in ("image_path", "url") if c in common), KEY_ROW)
    if key_column == KEY_ROW:
        for part in partitions:
            part.ids = [f"{part.name}#{row}" for row in range(part.rows)]
        return key_column
    if key_column not in common:
        raise InputError(f"--key-column {key_column}: not a column of every metadata file "
                         f"(columns: {', '.join(sorted(common)) or 'none'})")
    seen: dict[str, tuple[str, int]] = {}
    for part in partitions:
        values = pq.read_table(part.metadata, columns=[key_column]).column(0).to_pylist()
        name = relative(root, part.metadata)
        part.ids = []
        for row, value in enumerate(values):
            text = "" if value is None else str(value)
            if not text:
                raise InputError(f"{name} row {row} has no {key_column}: choose another --key-column, "
                                 f"or --key-column {KEY_ROW} (keys by position)")
            if text in seen:
                first = seen[text]
                raise InputError(f"{key_column} {text!r} names two rows ({first[0]} row {first[1]} and {name} row "
                                 f"{row}): choose another --key-column, or --key-column {KEY_ROW}")
            seen[text] = (name, row)
            part.ids.append(text)
    return key_column


def partition_signature(part: Partition) -> str:
    """What a partition's files were when imported: unchanged files are not read again."""
    stats = [p.stat() for p in part.files]
    return " ".join(f"{s.st_size}:{s.st_mtime_ns}" for s in stats)
