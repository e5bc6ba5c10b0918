"""``clipforge index --index TYPE --index-memory SIZE`` and what ``clipforge info`` says of it."""

from __future__ import annotations


def test_index_type_is_chosen_kept_and_shown(run_cli, photo_dir, tiny_clip_spec):
    indexed = run_cli("index", photo_dir, "-c", "pics", "--model", tiny_clip_spec, "--index", "HNSW16",
                      "--index-memory", "500MB", "--json", check=True).json()
    assert indexed["index"] == ["building the image index (12 items, none indexed yet)"]
    shown = run_cli("info", "-c", "pics", check=True)
    line = next(line for line in shown.stdout.splitlines() if line.startswith("index"))
    assert "images: HNSW16 (setting: HNSW16, at most 500.0MB), 12 indexed + 0 fresh" in line
    assert "recall@10 1.000 vs exact (1 held-out queries)" in line
    info = run_cli("info", "-c", "pics", "--json", check=True).json()["index"]["image"]
    assert (info["type"], info["setting"], info["items"]) == ("HNSW16", "HNSW16, at most 500.0MB", 12)


def test_an_unknown_index_type_gets_one_clear_line(run_cli, photo_dir, tiny_clip_spec):
    result = run_cli("index", photo_dir, "-c", "pics", "--model", tiny_clip_spec, "--index", "IVF64,Bogus")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "clipforge: error: unknown index type 'IVF64,Bogus' for 16-d vectors (a FAISS factory string such as Flat, "
        "HNSW32 or IVF4096,PQ64x4fs): could not parse code description Bogus in IVF64,Bogus"]
