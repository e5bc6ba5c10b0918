"""`clipforge embed` in this process: blocks in clip-retrieval's layout, resumed by block."""

from __future__ import annotations

import json

import pytest

from clipforge import Collection
from embed_support import assert_matches_index, indexed_vectors, make_photos, read_blocks


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return make_photos(tmp_path_factory.mktemp("embed") / "photos")


def test_embed_writes_the_vectors_index_stores_block_by_block(photos, tmp_path, tiny_clip_spec, run_cli):
    out = tmp_path / "out"
    result = run_cli("embed", photos, "--out", out, "--model", tiny_clip_spec, "--block-size", "5",
                     "--precision", "fp32", "--json", check=True)
    report = result.json()
    assert (report["items"], report["blocks"], report["embedded"], report["skipped"]) == (12, 3, 11, 1)
    assert sorted(p.name for p in (out / "img_emb").iterdir()) == ["img_emb_0.npy", "img_emb_1.npy", "img_emb_2.npy"]
    assert_matches_index(out, indexed_vectors(tmp_path, photos, tiny_clip_spec))
    rows, _, _ = read_blocks(out)
    assert all(row["width"] in (640, 1600, 480) and len(row["sha256"]) == 64 for row in rows)

    again = run_cli("embed", photos, "--out", out, "--model", tiny_clip_spec, "--block-size", "5", "--json", check=True)
    assert again.json()["blocks_done_before"] == 3 and again.json()["embedded"] == 0

    with Collection.create(tmp_path / "imported", model=tiny_clip_spec) as coll:  # the layout's readers read it
        assert coll.import_embeddings(out).images == 11


def test_a_block_left_unwritten_is_redone_and_the_others_are_kept(photos, tmp_path, tiny_clip_spec, run_cli):
    out = tmp_path / "out"
    run_cli("embed", photos, "--out", out, "--model", tiny_clip_spec, "--block-size", "5", "--precision", "fp32",
            check=True)
    kept = (out / "img_emb" / "img_emb_0.npy").stat().st_mtime_ns
    (out / "metadata" / "metadata_1.parquet").unlink()  # as a kill before the block's last rename leaves it
    report = run_cli("embed", photos, "--out", out, "--model", tiny_clip_spec, "--block-size", "5",
                     "--precision", "fp32", "--json", check=True).json()
    assert (report["blocks_done_before"], report["embedded"]) == (2, 5)
    assert (out / "img_emb" / "img_emb_0.npy").stat().st_mtime_ns == kept
    assert_matches_index(out, indexed_vectors(tmp_path, photos, tiny_clip_spec))
    assert not list(out.rglob(".*.tmp"))


@pytest.mark.parametrize("change, expected", [
    (["--block-size", "4"], "block_size differs"),
    (["--model", "OTHER"], "model_spec differs"),
])
def test_a_rerun_that_would_cut_other_blocks_is_one_line(photos, tmp_path, tiny_clip_spec, tiny_clip_other_dir,
                                                          run_cli, change, expected):
    out = tmp_path / "out"
    base = {"--block-size": "5", "--model": tiny_clip_spec}
    run_cli("embed", photos, "--out", out, *[x for kv in base.items() for x in kv], check=True)
    before = json.loads((out / "embed.json").read_text())
    changed = dict(base, **{change[0]: change[1].replace("OTHER", f"hf:{tiny_clip_other_dir}")})
    result = run_cli("embed", photos, "--out", out, *[x for kv in changed.items() for x in kv])
    assert result.returncode != 0 and expected in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert json.loads((out / "embed.json").read_text()) == before


@pytest.mark.parametrize("setup, expected", [
    (lambda tmp: (tmp / "out").mkdir() or (tmp / "out" / "notes.txt").write_text("mine"), "not an embedding run's folder"),
    (lambda tmp: (tmp / "out").write_text("a file"), "is a file, not a folder"),
    (lambda tmp: None, "does not exist"),
])
def test_bad_places_are_one_line(photos, tmp_path, tiny_clip_spec, run_cli, setup, expected):
    setup(tmp_path)
    source = photos if expected != "does not exist" else tmp_path / "nowhere"
    result = run_cli("embed", source, "--out", tmp_path / "out", "--model", tiny_clip_spec)
    assert result.returncode != 0 and expected in result.stderr and len(result.stderr.strip().splitlines()) == 1
