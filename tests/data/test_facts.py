"""The metadata a decode worker reads from real files: EXIF written by Pillow, the file's own
facts, and JSON sidecars; broken blocks and sidecars are recorded, never raised."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from photo_library import camera_exif, iso_utc
from PIL import Image

from clipforge.index.reading import read_for_index
from clipforge.data.facts import current_signature
from clipforge.data.sidecar import MAX_KEYS
from clipforge.models.preprocess import ImagePreprocess

PRE = ImagePreprocess("shortest_edge", (32, 32), (32, 32), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
FILE_KEYS = {"width", "height", "bytes", "modified", "folder", "name"}


def photo(path, exif=None, fmt="JPEG", size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 40, 40)).save(path, fmt, **({"exif": exif} if exif is not None else {}))
    return path


def facts(path):
    decoded = read_for_index(str(path), PRE)
    assert decoded.error is None, decoded.error
    return decoded.metadata


PIXEL = dict(make="Google", model="Pixel 7", original="2023:06:15 14:30:05", digitized="2023:06:15 14:30:06",
             date_time="2023:06:20 09:00:00", lens="Pixel 7 back camera 6.81mm f/1.85",
             gps=((52.0, 22.0, 30.5), "S", (4.0, 53.0, 6.0), "W"), orientation=6)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_every_field_from_a_camera(tmp_path, fmt):
    path = photo(tmp_path / f"trip/IMG_1.{fmt.lower()}", camera_exif(**PIXEL), fmt)
    got = facts(path)
    assert got == {
        "taken": "2023-06-15T14:30:05", "make": "Google", "model": "Pixel 7", "camera": "Google Pixel 7",
        "lens": "Pixel 7 back camera 6.81mm f/1.85",
        "lat": round(-(52 + 22 / 60 + 30.5 / 3600), 7), "lon": round(-(4 + 53 / 60 + 6 / 3600), 7),
        "orientation": 6, "width": 30, "height": 40,  # orientation 6: stored sideways, shown upright
        "bytes": path.stat().st_size, "modified": iso_utc(path), "folder": str(tmp_path / "trip"),
        "name": f"IMG_1.{fmt.lower()}",
    }


def test_capture_time_falls_back_to_digitized_then_to_date_time(tmp_path):
    digitized = photo(tmp_path / "a.jpg", camera_exif(digitized="2021:02:03 04:05:06", date_time="2022:01:01 00:00:00"))
    only_date_time = photo(tmp_path / "b.jpg", camera_exif(date_time="2020:12:31 23:59:59"))
    no_clock = photo(tmp_path / "c.jpg", camera_exif(original="0000:00:00 00:00:00", date_time="    :  :     :  :  "))
    assert facts(digitized)["taken"] == "2021-02-03T04:05:06"
    assert facts(only_date_time)["taken"] == "2020-12-31T23:59:59"
    assert "taken" not in facts(no_clock)


@pytest.mark.parametrize("make, model, camera", [
    ("Canon", "Canon EOS R5", "Canon EOS R5"),
    ("NIKON CORPORATION", "NIKON D750", "NIKON D750"),
    ("samsung", "SM-G991B", "samsung SM-G991B"),
    ("Apple\x00\x00", "  iPhone 15 ", "Apple iPhone 15"),  # padding as cameras write it
    ("FUJIFILM", None, "FUJIFILM"),
    (None, "X100V", "X100V"),
])
def test_camera_is_make_and_model_without_the_make_twice(tmp_path, make, model, camera):
    got = facts(photo(tmp_path / "a.jpg", camera_exif(make, model)))
    assert got["camera"] == camera
    assert got.get("make") == (make.strip("\x00") if make else None)
    assert got.get("model") == (model.strip() if model else None)


def test_a_position_needs_both_coordinates_and_sane_numbers(tmp_path):
    exif = camera_exif(gps=((10.0, 30.0, 0.0), "N", (0.0, 0.0, 0.0), "E"))
    assert {k: facts(photo(tmp_path / "a.jpg", exif))[k] for k in ("lat", "lon")} == {"lat": 10.5, "lon": 0.0}
    half = camera_exif()
    half.get_ifd(0x8825).update({1: "N", 2: (10.0, 0.0, 0.0)})
    assert "lat" not in facts(photo(tmp_path / "b.jpg", half))
    beyond = camera_exif(gps=((95.0, 0.0, 0.0), "N", (4.0, 0.0, 0.0), "E"))
    assert not {"lat", "lon"} & set(facts(photo(tmp_path / "c.jpg", beyond)))


def test_without_exif_only_the_files_own_keys(tmp_path):
    assert set(facts(photo(tmp_path / "plain.jpg"))) == FILE_KEYS
    assert set(facts(photo(tmp_path / "plain.png", fmt="PNG"))) == FILE_KEYS


def _with_app1(jpeg: bytes, payload: bytes) -> bytes:
    """A JPEG with an extra APP1 (EXIF) segment right after its start marker."""
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def _broken_exif_files(tmp_path):
    plain = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 200, 10)).save(plain, "JPEG")
    block = camera_exif(**PIXEL).tobytes()  # starts with b"Exif\0\0"
    cases = {"truncated": block[: len(block) // 2], "garbage": b"Exif\x00\x00" + bytes(range(256)) * 4,
             "header only": b"Exif\x00\x00II*\x00", "empty": b"Exif\x00\x00",
             "loop": b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x01\x00\x69\x87\x04\x00\x01\x00\x00\x00\x08\x00\x00\x00"}
    paths = {}
    for name, payload in cases.items():
        paths[name] = tmp_path / f"{name.replace(' ', '_')}.jpg"
        paths[name].write_bytes(_with_app1(plain.getvalue(), payload))
    return paths


def test_a_broken_exif_block_is_absent_never_an_error(tmp_path):
    for name, path in _broken_exif_files(tmp_path).items():
        got = facts(path)  # decodes
        camera = {key: value for key, value in got.items() if key not in FILE_KEYS}
        if name == "truncated":  # the first directory survives, the ones it points to past the cut do not
            assert camera == {"make": "Google", "model": "Pixel 7", "camera": "Google Pixel 7", "orientation": 6,
                              "taken": "2023-06-20T09:00:00"}  # DateTime, the fallback
        else:
            assert camera == {}, name
        upright = (30, 40) if camera.get("orientation") == 6 else (40, 30)
        assert (got["width"], got["height"]) == upright, name


def test_a_broken_exif_block_prints_nothing(tmp_path):
    """Pillow warns about corrupt EXIF; a decode worker must not pass that on to the terminal."""
    paths = [str(p) for p in _broken_exif_files(tmp_path).values()]
    script = textwrap.dedent(f"""
        from clipforge.index.reading import read_for_index
        from clipforge.models.preprocess import ImagePreprocess
        pre = ImagePreprocess("shortest_edge", (32, 32), (32, 32), (0.5,) * 3, (0.5,) * 3)
        for path in {paths!r}:
            assert read_for_index(path, pre).error is None
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stderr == "", run.stderr


# -- sidecars ------------------------------------------------------------------------
def test_a_sidecar_adds_keys_corrects_the_camera_but_not_the_file(tmp_path):
    path = photo(tmp_path / "IMG_2.jpg", camera_exif(**PIXEL))
    sidecar = {"album": "Holiday", "rating": 4, "favourite": True, "taken": "2023-06-15T16:30:05",
               "name": "renamed.jpg", "width": 1, "geoData": {"latitude": 48.85, "altitude": 35.0},
               "people": [{"name": "Ann"}]}
    (tmp_path / "IMG_2.jpg.json").write_text(json.dumps(sidecar))
    got = facts(path)
    assert {k: got[k] for k in ("album", "rating", "favourite", "geoData.latitude", "geoData.altitude", "people")} == \
        {"album": "Holiday", "rating": 4, "favourite": True, "geoData.latitude": 48.85, "geoData.altitude": 35.0,
         "people": [{"name": "Ann"}]}
    assert got["taken"] == "2023-06-15T16:30:05", "a sidecar corrects what the camera recorded"
    assert (got["name"], got["width"]) == ("IMG_2.jpg", 30), "but not what the file is"


def test_takeouts_newer_sidecar_name_is_read_too(tmp_path):
    path = photo(tmp_path / "IMG_3.jpg")
    (tmp_path / "IMG_3.jpg.supplemental-metadata.json").write_text('{"title": "IMG_3.jpg"}')
    assert facts(path)["title"] == "IMG_3.jpg"
    (tmp_path / "IMG_3.json").write_text('{"title": "not this one"}')  # only NAME.jpg.json is a sidecar
    assert facts(path)["title"] == "IMG_3.jpg"


@pytest.mark.parametrize("content, reason", [
    ("{not json", "IMG_4.jpg.json is not valid JSON"),
    ('["a", "list"]', "IMG_4.jpg.json holds a JSON list, not an object"),
    ('{"a": NaN}', "IMG_4.jpg.json is not valid JSON"),
    ('{"a": "\\ud800"}', "IMG_4.jpg.json is not valid JSON"),
    (b"\xff\xfe\xfa", "IMG_4.jpg.json is not valid JSON"),
    (json.dumps({f"k{i}": i for i in range(MAX_KEYS + 1)}), f"more than {MAX_KEYS}"),
])
def test_a_broken_sidecar_is_recorded_on_the_item(tmp_path, content, reason):
    path = photo(tmp_path / "IMG_4.jpg", camera_exif(make="Canon"))
    sidecar = tmp_path / "IMG_4.jpg.json"
    sidecar.write_bytes(content if isinstance(content, bytes) else content.encode())
    got = facts(path)
    assert reason in got["sidecar_error"]
    assert got["make"] == "Canon" and FILE_KEYS <= set(got)


def test_a_sidecar_that_is_a_pipe_does_not_block(tmp_path):
    path = photo(tmp_path / "IMG_5.jpg")
    os.mkfifo(tmp_path / "IMG_5.jpg.json")
    assert "not a regular file" in facts(path)["sidecar_error"]


def test_the_signature_follows_the_sidecar(tmp_path):
    path = photo(tmp_path / "IMG_6.jpg")
    alone = current_signature(str(path))
    assert read_for_index(str(path), PRE).meta_signature == alone
    sidecar = tmp_path / "IMG_6.jpg.json"
    sidecar.write_text('{"a": 1}')
    with_sidecar = current_signature(str(path))
    assert with_sidecar != alone
    assert read_for_index(str(path), PRE).meta_signature == with_sidecar
    assert current_signature(str(path), {"IMG_6.jpg", "IMG_6.jpg.json"}) == with_sidecar
    sidecar.write_text('{"a": 22}')
    assert current_signature(str(path)) not in (alone, with_sidecar)


def test_a_folder_name_that_is_not_utf8_is_shown_readably(tmp_path):
    folder = os.path.join(os.fsencode(tmp_path), b"caf\xe9")
    os.mkdir(folder)
    path = os.fsdecode(os.path.join(folder, b"x.jpg"))
    photo(Path(path))
    got = facts(path)
    assert got["folder"] == str(tmp_path) + "/caf\\xe9"
    json.dumps(got, ensure_ascii=False).encode("utf-8")  # storable as it is
