"""ONNX exports (``clipforge export onnx``) and ``onnx:`` specs against the torch models they came from."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clipforge.errors import InputError, ModelLoadError, ModelMismatchError
from clipforge.models import load_encoder
from clipforge.models.comparable import comparable
from clipforge.models.hf import tokenize_texts
from clipforge.models import onnx_runtimes
from clipforge.models.encoding import unit_rows
from clipforge.models.onnx_export import PROBE_TEXTS, export_onnx
from clipforge.models.onnx_manifest import AGREEMENT_MIN_COSINE, MANIFEST, choose_variant
from clipforge.models.pipeline import decode_images

from conftest import make_photo

TEXTS = ["a photo of a dog", "cat", "", "a red car on the beach at night " * 12, "ein Hund am Strand", "🐶 dog!"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("onnx-photos")
    return [make_photo(root / f"p{i}.jpg", size=(48 + 7 * i, 40), seed=i) for i in range(12)]


@pytest.fixture(scope="module")
def exports(tmp_path_factory, tiny_clip_dir, tiny_siglip_dir, tiny_dual_dir) -> dict[str, tuple[str, Path]]:
    """family -> (source spec, export directory); the CLIP one with int8 and OpenVINO variants."""
    root = tmp_path_factory.mktemp("onnx-exports")
    made = {}
    for family, folder in (("clip", tiny_clip_dir), ("siglip", tiny_siglip_dir), ("dual", tiny_dual_dir)):
        export_onnx(f"hf:{folder}", root / family, int8=family == "clip", openvino=family == "clip")
        made[family] = (f"hf:{folder}", root / family)
    return made


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


@pytest.mark.parametrize("family", ["clip", "siglip", "dual"])
def test_fp32_export_matches_torch(exports, photos, family):
    source, out = exports[family]
    torch_encoder = load_encoder(source, device="cpu", precision="fp32")
    onnx_encoder = load_encoder(f"onnx:{out}", precision="fp32")
    assert onnx_encoder.dim == torch_encoder.dim and onnx_encoder.family == torch_encoder.family
    assert onnx_encoder.preprocess == torch_encoder.preprocess
    assert onnx_encoder.logit_scale == pytest.approx(torch_encoder.logit_scale)
    assert _cosines(onnx_encoder.encode_texts(TEXTS), torch_encoder.encode_texts(TEXTS)).min() >= 0.9999
    assert _cosines(onnx_encoder.encode_images(photos), torch_encoder.encode_images(photos)).min() >= 0.9999


@pytest.mark.parametrize("family", ["clip", "siglip", "dual"])
def test_tokens_match_the_source_tokenizer(exports, family):
    source, out = exports[family]
    torch_encoder = load_encoder(source, device="cpu", precision="fp32")
    expected = tokenize_texts(torch_encoder.tokenizer, torch_encoder.family, TEXTS, torch_encoder.max_text_length)
    feeds = load_encoder(f"onnx:{out}", precision="fp32")._feeds(TEXTS)
    assert sorted(feeds) == sorted(expected)
    for name, values in expected.items():
        np.testing.assert_array_equal(feeds[name], values.numpy())


def test_int8_agrees_within_the_tolerance_and_retrieves_the_same(exports, photos):
    source, out = exports["clip"]
    fp32 = load_encoder(source, device="cpu", precision="fp32")
    int8 = load_encoder(f"onnx:{out}", precision="int8")
    assert all(name.endswith("int8") for name in int8.variants.values()), int8.variants
    image_fp32, image_int8 = fp32.encode_images(photos), int8.encode_images(photos)
    assert _cosines(image_int8, image_fp32).min() >= AGREEMENT_MIN_COSINE
    assert _cosines(int8.encode_texts(TEXTS), fp32.encode_texts(TEXTS)).min() >= AGREEMENT_MIN_COSINE
    # Comparable: each photo's int8 vector finds that photo first among the fp32 vectors.
    nearest = (image_int8 @ image_fp32.T).argmax(axis=1)
    assert nearest.tolist() == list(range(len(photos)))


def test_manifest_records_speed_and_agreement(exports):
    manifest = json.loads((exports["clip"][1] / MANIFEST).read_text())
    for tower in ("image", "text"):
        for name in ("fp32", "int8"):
            measured = manifest["variants"][tower][name]
            assert measured["items_per_s"] > 0 and measured["cosine_min"] <= measured["cosine_mean"] <= 1.000001
        assert manifest["variants"][tower]["fp32"]["cosine_min"] >= 0.9999
    assert manifest["source_fingerprint"].startswith("sha256:")


def _manifest(int8_speed: float, int8_cosine: float, openvino_speed: float = 0.0) -> dict:
    variants = {"fp32": {"items_per_s": 10.0, "cosine_min": 1.0},
                "int8": {"items_per_s": int8_speed, "cosine_min": int8_cosine}}
    if openvino_speed:
        variants["openvino-int8"] = {"items_per_s": openvino_speed, "cosine_min": 0.999, "runtime": "openvino"}
    return {"variants": {"image": variants}}


def test_auto_picks_the_fastest_variant_that_agrees():
    assert choose_variant("s", _manifest(30.0, 0.999), "image", "auto") == "int8"
    assert choose_variant("s", _manifest(5.0, 0.999), "image", "auto") == "fp32"  # slower: not worth it
    assert choose_variant("s", _manifest(30.0, AGREEMENT_MIN_COSINE - 0.01), "image", "auto") == "fp32"
    assert choose_variant("s", _manifest(30.0, 0.5), "image", "int8") == "int8"  # asked for by name
    assert choose_variant("s", _manifest(30.0, 0.5, 40.0), "image", "int8") == "openvino-int8"
    assert choose_variant("s", _manifest(50.0, 0.999, 40.0), "image", "int8") == "int8"
    assert choose_variant("s", _manifest(30.0, 0.999, 40.0), "image", "auto") == "openvino-int8"
    assert choose_variant("s", _manifest(30.0, 0.999, 40.0), "image", "int8") == "openvino-int8"
    assert choose_variant("s", _manifest(30.0, 0.999, 40.0), "image", "fp32") == "fp32"
    with pytest.raises(InputError, match="no bf16 image model.*--openvino"):
        choose_variant("s", _manifest(30.0, 0.999), "image", "bf16")
    with pytest.raises(InputError, match="fp32, int8 or bf16, not fp16"):
        choose_variant("s", _manifest(30.0, 0.999), "image", "fp16")


def test_without_openvino_its_variants_are_passed_over(monkeypatch):
    monkeypatch.setattr(onnx_runtimes, "available", lambda runtime: runtime != "openvino")
    assert choose_variant("s", _manifest(30.0, 0.999, 40.0), "image", "auto") == "int8"
    assert choose_variant("s", _manifest(30.0, 0.999, 40.0), "image", "int8") == "int8"
    only_openvino = {"variants": {"image": {"fp32": {"items_per_s": 1.0, "cosine_min": 1.0},
                                            "openvino-bf16": {"items_per_s": 2.0, "cosine_min": 1.0,
                                                              "runtime": "openvino"}}}}
    with pytest.raises(InputError, match="run on OpenVINO, which is not installed: pip install"):
        choose_variant("s", only_openvino, "image", "bf16")


@pytest.mark.parametrize("variant", ["fp32", "int8", "openvino-int8", "openvino-bf16"])
def test_every_variant_runs_as_measured(exports, photos, variant):
    """Through the runner the encoder uses: photos and texts the export never saw agree with
    torch fp32 about as well as its probes did, and each photo finds itself."""
    source, out = exports["clip"]
    measured = json.loads((out / MANIFEST).read_text())["variants"]
    fp32 = load_encoder(source, device="cpu", precision="fp32")
    pixels = fp32.preprocess.normalize(np.stack([d.pixels for d in decode_images(photos, fp32.preprocess)]))
    texts = TEXTS + PROBE_TEXTS
    feeds = {"image": {"pixel_values": pixels}, "text": load_encoder(f"onnx:{out}", precision="fp32")._feeds(texts)}
    expected = {"image": fp32.encode_images(photos), "text": fp32.encode_texts(texts)}
    for tower in ("image", "text"):
        if variant not in measured[tower]:
            continue  # left out of the export: test_variants_that_disagree_are_left_out
        v = measured[tower][variant]
        vectors = unit_rows(onnx_runtimes.open_runner(f"onnx:{out}", out / v["file"], "cpu", v)(feeds[tower]))
        assert _cosines(vectors, expected[tower]).min() >= min(v["cosine_min"], 0.999) - 0.02, tower
        if v["cosine_min"] >= AGREEMENT_MIN_COSINE and tower == "image":
            assert (vectors @ expected[tower].T).argmax(axis=1).tolist() == list(range(len(photos)))


def test_variants_that_disagree_are_left_out(exports, tiny_clip_spec, tmp_path, monkeypatch):
    manifest = json.loads((exports["clip"][1] / MANIFEST).read_text())
    kept = [v for found in manifest["variants"].values() for v in found.values()]
    assert all(v["cosine_min"] >= AGREEMENT_MIN_COSINE for v in kept)
    # Make the int8 models disagree: they are measured, reported and left out, their files gone.
    from clipforge.models import onnx_export

    measure = onnx_export._measure
    monkeypatch.setattr(onnx_export, "_measure", lambda *a: {
        **measure(*a), **({"cosine_min": 0.5} if a[1].name.endswith("_int8.onnx") else {})})
    out = tmp_path / "lossy"
    made = export_onnx(tiny_clip_spec, out, int8=True)
    assert set(made["dropped"]["image"]) == {"int8"} and made["dropped"]["image"]["int8"]["cosine_min"] == 0.5
    assert set(made["variants"]["image"]) == {"fp32"} and not (out / "image_int8.onnx").exists()
    with pytest.raises(InputError, match="left out its int8 image model: its lowest cosine to fp32, 0.5, is below"):
        load_encoder(f"onnx:{out}", precision="int8")
    assert comparable(tiny_clip_spec, None, f"onnx:{out}")


def test_openvino_variants_are_picked_by_precision(exports):
    out = exports["clip"][1]
    manifest = json.loads((out / MANIFEST).read_text())
    assert load_encoder(f"onnx:{out}", precision="bf16").variants == {"image": "openvino-bf16", "text": "openvino-bf16"}
    chosen = load_encoder(f"onnx:{out}", precision="int8").variants["image"]
    fastest = max(("int8", "openvino-int8"), key=lambda n: manifest["variants"]["image"][n]["items_per_s"])
    assert chosen == fastest
    assert manifest["calibration"]["images"] > 0 and manifest["calibration"]["from_files"] is False


def test_int8_without_an_int8_export_is_refused(exports):
    with pytest.raises(InputError, match="no int8 image model"):
        load_encoder(f"onnx:{exports['siglip'][1]}", precision="int8")


def test_torch_refuses_int8_with_a_pointer_to_the_export(tiny_clip_spec):
    with pytest.raises(InputError, match="export onnx"):
        load_encoder(tiny_clip_spec, device="cpu", precision="int8")


def test_loading_an_export_imports_neither_torch_nor_transformers(exports, photos):
    code = (
        "import sys\n"
        "from clipforge.models import load_encoder\n"
        f"encoder = load_encoder({('onnx:' + str(exports['clip'][1]))!r})\n"
        "encoder.encode_texts(['a dog']); encoder.encode_images([sys.argv[1]])\n"
        "heavy = [m for m in ('torch', 'transformers', 'faiss') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(photos[0])], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def _broken_copy(out: Path, tmp_path: Path, name: str, data: bytes) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / name).write_bytes(data)
    return copy


def test_corrupt_onnx_file_is_one_line_when_its_tower_is_first_used(exports, photos, tmp_path):
    copy = _broken_copy(exports["clip"][1], tmp_path, "image.onnx", b"\x08\x07 truncated protobuf" * 3)
    encoder = load_encoder(f"onnx:{copy}", precision="fp32")  # a tower loads when first used
    assert encoder.encode_texts(["a dog"]).shape == (1, encoder.dim)  # a text query never needs the image tower
    with pytest.raises(ModelLoadError, match="cannot load image.onnx") as caught:
        encoder.encode_images(photos[:1])
    assert "\n" not in str(caught.value) and f"onnx:{copy}" in str(caught.value)


def test_missing_or_foreign_export_is_one_line(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_encoder(f"onnx:{tmp_path / 'nope'}")
    with pytest.raises(ModelLoadError, match="not an ONNX export of clipforge"):
        load_encoder(f"onnx:{tmp_path}")


def test_export_refuses_a_used_directory(tiny_clip_spec, tmp_path):
    (tmp_path / "keep").write_text("x")
    with pytest.raises(InputError, match="already exists"):
        export_onnx(tiny_clip_spec, tmp_path)


def test_exports_are_comparable_with_their_source_only(exports, tiny_clip_other_dir, tmp_path):
    source, out = exports["clip"]
    assert comparable(source, None, f"onnx:{out}")
    assert comparable(f"onnx:{out}", None, source)
    assert not comparable(f"hf:{tiny_clip_other_dir}", None, f"onnx:{out}")
    assert not comparable(exports["siglip"][0], None, f"onnx:{out}")
    # A collection's record of older weights: the export of today's weights does not match it.
    assert not comparable(source, "sha256:" + "0" * 32, f"onnx:{out}")


def test_an_export_below_the_tolerance_is_not_comparable(exports, tmp_path):
    source, out = exports["clip"]
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    for name, variant in manifest["variants"]["image"].items():  # as an export of an earlier version kept them
        if name != "fp32":
            variant["cosine_min"] = AGREEMENT_MIN_COSINE - 0.05
    (copy / MANIFEST).write_text(json.dumps(manifest))
    assert not comparable(source, None, f"onnx:{copy}")
    assert load_encoder(f"onnx:{copy}").variants["image"] == "fp32"  # nor does auto run it


def test_collection_with_an_onnx_model(exports, photos, tmp_path):
    from clipforge import Collection

    source, out = exports["clip"]
    folder = tmp_path / "photos"
    folder.mkdir()
    for photo in photos[:6]:
        shutil.copy(photo, folder)
    with Collection.create(tmp_path / "c", model=f"onnx:{out}", precision="fp32") as collection:
        report = collection.add_images([str(folder)])
        assert report.encoded == 6
        hits = collection.search(image=str(photos[2]), k=1)
        assert Path(hits[0].path).name == photos[2].name
        stored = collection.read_vectors(list(range(6)))
    expected = load_encoder(source, device="cpu", precision="fp32").encode_images(sorted(folder.iterdir()))
    assert (stored @ expected.T).max(axis=1).min() > 0.999  # each stored vector is a photo's (float16 on disk)
    # Replacing an exported model under the same spec is refused, as for any other spec.
    (out / "image.onnx").replace(out / "image.onnx.bak")
    shutil.copy(exports["siglip"][1] / "image.onnx", out / "image.onnx")
    try:
        with Collection.open(tmp_path / "c") as collection:
            with pytest.raises(ModelMismatchError, match="have changed"):
                collection.search("a dog", k=1)
    finally:
        (out / "image.onnx.bak").replace(out / "image.onnx")


def test_export_command(run_cli, tiny_clip_spec, tmp_path):
    result = run_cli("export", "onnx", tiny_clip_spec, tmp_path / "exp", "--json", check=True)
    assert result.json()["spec"] == f"onnx:{(tmp_path / 'exp').resolve()}"
    classified = run_cli("classify", str(make_photo(tmp_path / "p.jpg")), "--labels", "cat,dog", "--model",
                         result.json()["spec"], "--json", check=True)
    assert len(classified.json()["results"][0]["predictions"]) == 2
    bad = run_cli("export", "onnx", tiny_clip_spec, tmp_path / "exp")
    assert bad.returncode == 2 and "already exists" in bad.stderr


def test_export_command_with_openvino_keeps_stdout_for_the_result(run_cli, tiny_clip_spec, tmp_path):
    photos = [make_photo(tmp_path / "calib" / f"c{i}.jpg", seed=i) for i in range(6)]
    result = run_cli("export", "onnx", tiny_clip_spec, tmp_path / "exp", "--openvino", "--calibration-images",
                     photos[0].parent, "--json", check=True)
    made = result.json()  # NNCF's progress bars went to stderr, not into the JSON
    assert {"openvino-bf16"} <= set(made["variants"]["image"]) | set(made["dropped"].get("image", {}))
    manifest = json.loads((tmp_path / "exp" / MANIFEST).read_text())
    assert manifest["calibration"] == {"images": 6, "texts": manifest["calibration"]["texts"], "from_files": True}


def test_a_collection_runs_on_an_export_of_its_weights_and_refuses_other_models(
        exports, photos, tiny_clip_other_dir, tmp_path, run_cli):
    """Built with torch, searched and extended with ONNX Runtime (the same weights): the
    vectors are comparable within the export's measured tolerance, so both are accepted."""
    from clipforge import Collection

    source, out = exports["clip"]
    folder = tmp_path / "photos"
    folder.mkdir()
    for photo in photos[:6]:
        shutil.copy(photo, folder)
    with Collection.create(tmp_path / "c", model=source, precision="fp32") as collection:
        collection.add_images([str(folder)])
        by_torch = {h.id: h.score for h in collection.search("a red car", k=6)}  # every item, scored
    # The CLI: a query encoded by the export (ONNX Runtime), against vectors torch made.
    found = run_cli("search", "-c", tmp_path / "c", "a red car", "-k", "6", "--model", f"onnx:{out}",
                    "--precision", "fp32", "--json", check=True).json()
    assert {h["id"]: h["score"] for h in found["results"]} == pytest.approx(by_torch, abs=1e-3)
    with Collection.open(tmp_path / "c", model=f"onnx:{out}", precision="fp32") as collection:
        assert collection.model_spec == source  # the collection's record is unchanged
        assert str(collection.encoder.spec) == f"onnx:{out}"
        assert {h.id: h.score for h in collection.search("a red car", k=6)} == pytest.approx(by_torch, abs=1e-3)
        shutil.copy(photos[7], folder)
        assert collection.add_images([str(folder)]).encoded == 1
        assert Path(collection.search(image=str(photos[7]), k=1)[0].path).name == photos[7].name
    with pytest.raises(ModelMismatchError, match="not comparable"):
        Collection.open(tmp_path / "c", model=f"hf:{tiny_clip_other_dir}")
    refused = run_cli("search", "-c", tmp_path / "c", "a red car", "--model", f"hf:{tiny_clip_other_dir}")
    assert refused.returncode != 0 and refused.stderr.count("\n") == 1 and "not comparable" in refused.stderr


def test_a_collection_keeps_a_query_model_and_falls_back_to_its_own(
        exports, photos, tiny_clip_other_dir, tmp_path, run_cli):
    """`index --query-model onnx:EXPORT` is kept: later searches that name no model encode
    their queries with the export (no torch), and with the collection's own model, after one
    warning line, once the export is gone."""
    from clipforge import Collection

    source, out = exports["clip"]
    export = tmp_path / "export"
    shutil.copytree(out, export)
    folder = tmp_path / "photos"
    folder.mkdir()
    for photo in photos[:6]:
        shutil.copy(photo, folder)
    indexed = run_cli("index", folder, "-c", tmp_path / "c", "--model", source, "--query-model", f"onnx:{export}",
                      "--precision", "fp32", "--json", check=True)
    assert indexed.json()["encoded"] == 6
    with Collection.open(tmp_path / "c", precision="fp32") as collection:
        assert collection.info()["query_model"] == f"onnx:{export}"
        assert str(collection.query_encoder.spec) == f"onnx:{export}"
        by_torch = {h.id: h.score for h in collection.search_vectors(collection.encoder.encode_texts(["a red car"]),
                                                                     k=6)[0]}
    code = ("import sys; from clipforge.cli.main import main; main(sys.argv[1:]); "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, "search", "-c", str(tmp_path / "c"), "a red car", "-k", "6",
                           "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "[]"
    # precision auto runs the export's int8 text tower (it agreed with fp32 within the tolerance)
    assert {h["id"]: h["score"] for h in json.loads(done.stdout)["results"]} == pytest.approx(by_torch, abs=0.02)
    # Another model is refused, and the setting stays.
    refused = run_cli("index", folder, "-c", tmp_path / "c", "--query-model", f"hf:{tiny_clip_other_dir}")
    assert refused.returncode != 0 and "not comparable" in refused.stderr and refused.stderr.count("\n") == 1
    # The export gone: searches go on with the collection's own model, saying why once.
    shutil.rmtree(export)
    fallen = run_cli("search", "-c", tmp_path / "c", "a red car", "-k", "6", "--json", check=True)
    assert {h["id"] for h in fallen.json()["results"]} == set(by_torch)
    assert "query model" in fallen.stderr and fallen.stderr.count("\n") == 1, fallen
    run_cli("index", folder, "-c", tmp_path / "c", "--query-model", "own", check=True)
    with Collection.open(tmp_path / "c") as collection:
        assert collection.info()["query_model"] is None
