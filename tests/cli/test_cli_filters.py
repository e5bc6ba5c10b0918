"""`clipforge search --where / --offset / --vector-file` and `clipforge info`'s metadata keys,
through the real executable, against brute force over a photo library."""

from __future__ import annotations

import numpy as np
import pytest
from photo_library import build_library, selective_and_broad, top_k

from clipforge import Collection
from test_cli_core import one_line_error


@pytest.fixture(scope="module")
def library(tmp_path_factory, tiny_clip_spec):
    root = tmp_path_factory.mktemp("cli-library")
    photos = build_library(root / "photos")
    with Collection.create(root / "coll", model=tiny_clip_spec) as coll:
        coll.add_images([root / "photos"], workers=0)
        stored = np.stack([coll.vectors_for_paths([p.path])[str(p.path.resolve())] for p in photos])
    return root, photos, stored


def _query(stored, *rows) -> np.ndarray:
    query = stored[list(rows)].sum(axis=0)
    return query / np.linalg.norm(query)


def _where(conditions) -> list[str]:
    return [arg for condition in conditions for arg in ("--where", condition)]


@pytest.mark.parametrize("case", [0, 1, 3, 4, 8, 9])  # selective to broad
def test_where_and_offset_give_the_top_k_of_the_matching_photos(run_cli, library, tmp_path, case):
    root, photos, stored = library
    conditions = selective_and_broad(root / "photos")[case]
    query = _query(stored, 2, 9)
    np.save(tmp_path / "q.npy", query * 3.0)  # any length: scores are cosines all the same
    found = run_cli("search", "-c", root / "coll", "--vector-file", tmp_path / "q.npy", *_where(conditions),
                    "-k", 4, "--offset", 2, "--json", check=True).json()
    assert [r["path"] for r in found["results"]] == top_k(photos, stored, query, conditions, 4, offset=2)
    assert found["query"]["where"] == conditions and found["offset"] == 2
    assert found["has_more"] == (len(top_k(photos, stored, query, conditions, 1000)) > 6)


def test_a_batch_of_vectors_gives_a_page_each(run_cli, library, tmp_path):
    root, photos, stored = library
    queries = np.stack([_query(stored, 1), _query(stored, 5, 6), _query(stored, 30)])
    np.save(tmp_path / "batch.npy", queries.astype(np.float16))
    conditions = ["taken>=2023-01-01", "camera~Pixel"]
    found = run_cli("search", "-c", root / "coll", "--vector-file", tmp_path / "batch.npy", *_where(conditions),
                    "-k", 3, "--json", check=True).json()
    assert len(found["pages"]) == 3 and found["query"]["vectors"] == 3
    for page, query in zip(found["pages"], queries.astype(np.float16).astype(np.float32)):
        query /= np.linalg.norm(query)
        assert [r["path"] for r in page["results"]] == top_k(photos, stored, query, conditions, 3)
    human = run_cli("search", "-c", root / "coll", "--vector-file", tmp_path / "batch.npy", "-k", 2, check=True)
    assert "query 3" in human.stdout


def test_info_lists_the_metadata_keys_with_counts(run_cli, library):
    root, photos, _ = library
    info = run_cli("info", "-c", root / "coll", "--json", check=True).json()
    assert info["metadata_keys"]["album"] == sum("album" in p.expected for p in photos)
    assert info["metadata_keys"]["camera"] == sum("camera" in p.expected for p in photos)
    human = run_cli("info", "-c", root / "coll", check=True).stdout
    assert f"album {info['metadata_keys']['album']}" in human and "taken" in human


def test_bad_filters_and_vector_files_get_one_clear_line(run_cli, library, tmp_path):
    root, _, stored = library
    coll = root / "coll"
    np.save(tmp_path / "ok.npy", stored[0])
    one_line_error(run_cli("search", "-c", coll, "--vector-file", tmp_path / "ok.npy", "--where", "taken"),
                   "cannot read the filter 'taken'")
    one_line_error(run_cli("search", "-c", coll, "--vector-file", tmp_path / "ok.npy", "--where", "album in"),
                   "give the values after 'in'")
    one_line_error(run_cli("search", "-c", coll, "a dog", "--where", "x exists now"), "nothing may follow 'exists'")
    np.save(tmp_path / "short.npy", stored[0][:5])
    one_line_error(run_cli("search", "-c", coll, "--vector-file", tmp_path / "short.npy"), "5-d", f"{stored.shape[1]}-d")
    nan = stored[:2].copy()
    nan[1, 3] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    one_line_error(run_cli("search", "-c", coll, "--vector-file", tmp_path / "nan.npy"), "vector 1", "not a finite")
    np.save(tmp_path / "zeros.npy", np.zeros(stored.shape[1]))
    one_line_error(run_cli("search", "-c", coll, "--vector-file", tmp_path / "zeros.npy"), "all zeros")
    np.save(tmp_path / "cube.npy", np.ones((2, 2, stored.shape[1])))
    one_line_error(run_cli("search", "-c", coll, "--vector-file", tmp_path / "cube.npy"), "shape (2, 2,")
    np.save(tmp_path / "words.npy", np.array(["a", "b"]))
    one_line_error(run_cli("search", "-c", coll, "--vector-file", tmp_path / "words.npy"), "not real numbers")
    (tmp_path / "cut.npy").write_bytes((tmp_path / "ok.npy").read_bytes()[:100])
    one_line_error(run_cli("search", "-c", coll, "--vector-file", tmp_path / "cut.npy"), "cut.npy")
    (tmp_path / "text.npy").write_text("0.1, 0.2\n")
    one_line_error(run_cli("search", "-c", coll, "--vector-file", tmp_path / "text.npy"), "cannot read")
    one_line_error(run_cli("search", "-c", coll, "--vector-file", tmp_path / "none.npy"), "does not exist")
    one_line_error(run_cli("search", "-c", coll, "a dog", "--vector-file", tmp_path / "ok.npy"), "alone")
    one_line_error(run_cli("search", "-c", coll, "a dog", "--offset", "-1"), "--offset")
