"""Photos with what cameras and people record, written by Pillow: EXIF capture times, cameras,
lenses, GPS positions and orientations, in folders, some with JSON sidecars. Each photo also
comes with the metadata the test expects for it, worked out here from what was written, not
read back through clipforge."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from conftest import make_photo
from PIL import Image
from where_reference import holds

from clipforge.index import where

MAKE, MODEL, ORIENTATION, DATE_TIME = 0x010F, 0x0110, 0x0112, 0x0132
EXIF_IFD, GPS_IFD = 0x8769, 0x8825
DATE_TIME_ORIGINAL, DATE_TIME_DIGITIZED, LENS_MODEL = 0x9003, 0x9004, 0xA434


def camera_exif(make=None, model=None, *, original=None, digitized=None, date_time=None, lens=None,
                gps=None, orientation=None) -> Image.Exif:
    """An EXIF block as a camera writes it; times in EXIF's "2023:06:15 14:30:05" form, ``gps``
    as ((lat degrees, minutes, seconds), "N" or "S", (lon d, m, s), "E" or "W")."""
    exif = Image.Exif()
    for tag, value in ((MAKE, make), (MODEL, model), (DATE_TIME, date_time), (ORIENTATION, orientation)):
        if value is not None:
            exif[tag] = value
    inner = exif.get_ifd(EXIF_IFD)
    for tag, value in ((DATE_TIME_ORIGINAL, original), (DATE_TIME_DIGITIZED, digitized), (LENS_MODEL, lens)):
        if value is not None:
            inner[tag] = value
    if gps is not None:
        lat, lat_ref, lon, lon_ref = gps
        exif.get_ifd(GPS_IFD).update({1: lat_ref, 2: lat, 3: lon_ref, 4: lon})
    return exif


def iso_utc(path: Path) -> str:
    return datetime.fromtimestamp(int(path.stat().st_mtime), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Photo:
    path: Path
    expected: dict = field(default_factory=dict)  # the metadata keys the filters below use


CAMERAS = [("Google", "Pixel 7", "Google Pixel 7"), ("Google", "Pixel 8 Pro", "Google Pixel 8 Pro"),
           ("Canon", "Canon EOS R5", "Canon EOS R5"), ("Apple", "iPhone 15", "Apple iPhone 15"), (None, None, None)]
FOLDERS = ["2022", "2023/trip", "2023/home", "misc"]


def build_library(root: Path, count: int = 40, seed: int = 0) -> list[Photo]:
    """``count`` photos under ``root``: cameras, times (some only in DateTime or DateTimeDigitized,
    some with none), positions north and south, folders, and sidecars on every fifth."""
    rng = np.random.default_rng(seed)
    photos = []
    for i in range(count):
        make, model, camera = CAMERAS[i % len(CAMERAS)]
        year = 2022 + (i % 3)
        taken = f"{year}-{1 + i % 12:02d}-{1 + (i * 7) % 28:02d}T{i % 24:02d}:{(i * 13) % 60:02d}:00"
        exif_time = taken.replace("-", ":").replace("T", " ")
        times = [{"original": exif_time}, {"digitized": exif_time}, {"date_time": exif_time}, {}][i % 4]
        lat = (int(rng.integers(0, 80)), int(rng.integers(0, 60)), float(rng.integers(0, 60)))
        north = bool(i % 2)
        gps = (lat, "N" if north else "S", (5.0, 7.0, 30.0), "E") if i % 3 else None
        exif = camera_exif(make, model, lens="Lens %d" % (i % 2), gps=gps, **times)
        path = make_photo(root / FOLDERS[i % len(FOLDERS)] / f"p{i:03d}.jpg", seed=1000 + i, exif=exif)
        expected = {"folder": str(path.parent.resolve()), "name": path.name, "modified": iso_utc(path),
                    "width": 64, "height": 48, "lens": "Lens %d" % (i % 2)}
        if camera:
            expected.update(make=make, model=model, camera=camera)
        if times:
            expected["taken"] = taken
        if gps:
            degrees = lat[0] + lat[1] / 60 + lat[2] / 3600
            expected.update(lat=round(degrees if north else -degrees, 7), lon=round(5 + 7 / 60 + 30 / 3600, 7))
        if i % 5 == 0:
            sidecar = {"album": "Holiday" if i % 10 == 0 else "Work", "rating": i % 4}
            Path(f"{path}.json").write_text(json.dumps(sidecar))
            expected.update(sidecar)
        photos.append(Photo(path, expected))
    return photos


def touch_later(path: Path) -> None:
    """Give ``path`` a new mtime a second on, as an edit would."""
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))


def top_k(photos: list[Photo], stored: np.ndarray, query: np.ndarray, conditions, k: int, offset: int = 0) -> list[str]:
    """Brute force: the paths of the ``k`` photos after ``offset`` that meet every condition,
    ranked by the stored vectors (``stored[i]`` is ``photos[i]``'s)."""
    parsed = where.parse(conditions)
    matching = [i for i, photo in enumerate(photos) if all(holds(photo.expected, c) for c in parsed)]
    ranked = sorted(matching, key=lambda i: -float(stored[i] @ query))
    return [str(photos[i].path.resolve()) for i in ranked[offset : offset + k]]


def selective_and_broad(root: Path) -> list[list[str]]:
    """Filters over the library of ``build_library(root)``, from a few photos to all of them."""
    return [
        ["album=Holiday"], [f"folder={(root / '2023' / 'trip').resolve()}"], ["camera~Pixel"], ["lat<0", "camera~pixel"],
        ["taken>=2023-06-01"], ["taken missing"], ["name~p00*"], ["rating in 0,2", "taken exists"],
        ["taken>=2022-03-01T00:00", "taken<2023-03-01", "lens=Lens 1"], ["modified>=2000-01-01"],
    ]
