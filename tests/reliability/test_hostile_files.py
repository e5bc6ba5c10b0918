"""Index a folder of hostile and odd files in the default configuration: each file is indexed
or skipped with its reason; nothing crashes, hangs, or prints a traceback or a warning."""

from __future__ import annotations

import json
import os
import sqlite3

import hostile_corpus
import httpx
import pytest
from reliability_support import cli_env, photo, run

from clipforge.index.collection import Collection
from clipforge.serve import ServeSettings, create_app
from clipforge.serve.runner import BackgroundServer


def _outcomes(coll) -> dict[str, str]:
    """key -> 'indexed' or the skip reason, straight from the database."""
    with sqlite3.connect(coll / "collection.sqlite") as db:
        db.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
        outcomes = {key: hostile_corpus.INDEXED for (key,) in db.execute("SELECT key FROM items WHERE removed = 0")}
        for path, reason in db.execute("SELECT path, reason FROM skipped"):
            assert path not in outcomes, f"{path} is both indexed and skipped"
            outcomes[path] = reason
    return outcomes


def _key(case, root) -> str:
    path = case.path(root)
    return os.path.join(path, "inside.png") if case.name == "x.jpg" else os.fspath(path)


def test_every_hostile_file_is_indexed_or_skipped_with_its_reason(tmp_path, tiny_clip_spec):
    root = tmp_path / "hostile"
    cases = hostile_corpus.build(root)
    env, coll = cli_env(tmp_path / "home"), tmp_path / "coll"
    args = ["index", str(root), "-c", str(coll), "--model", tiny_clip_spec]

    first = run([*args, "--json"], env, timeout=300)  # a hang fails here
    assert first.returncode == 0, first.stderr
    assert first.stderr.strip() == "", f"index printed to stderr: {first.stderr[-3000:]}"
    report = json.loads(first.stdout)
    outcomes = _outcomes(coll)
    wrong = []
    for case in cases:
        got = outcomes.get(_key(case, root), "neither indexed nor skipped")
        if case.expected not in got:
            wrong.append(f"{case.name!r}: expected {case.expected!r}, got {got!r}")
    assert not wrong, "\n".join(wrong)
    assert len(outcomes) == len(cases)
    assert report["encoded"] + report["reused"] + report["skipped"] == len(cases)
    assert len(report["failures"]) == report["skipped"]
    print(f"\nhostile files: {len(cases)} kinds tried, {report['encoded'] + report['reused']} indexed, "
          f"{report['skipped']} skipped with a reason, 0 crashes, 0 hangs")

    again = run([*args, "--json"], env, timeout=120)  # nothing is read again, the pipe included
    assert again.returncode == 0, again.stderr
    counts = json.loads(again.stdout)
    assert counts["encoded"] == counts["reused"] == 0
    assert counts["unchanged"] + counts["skipped"] == len(cases)

    info = run(["info", "-c", str(coll)], env)
    assert info.returncode == 0, info.stderr
    assert "caf\\xe9-latin1.jpg" in info.stdout or "caf\\xe9-latin1.jpg" not in str(outcomes)
    assert "fifo.jpg: not a regular file (a named pipe)" in info.stdout
    info_json = json.loads(run(["info", "-c", str(coll), "--json", "--all-skipped"], env).stdout)
    assert {entry["path"] for entry in info_json["skipped_files"]} <= set(outcomes)

    found = run(["search", "-c", str(coll), "anything", "-k", "100"], env)
    assert found.returncode == 0, found.stderr
    assert "caf\\xe9-latin1.jpg" in found.stdout, "a name that is not UTF-8 is shown readably"
    as_json = run(["search", "-c", str(coll), "anything", "-k", "100", "--json"], env)
    paths = {hit["path"] for hit in json.loads(as_json.stdout)["results"]}
    assert os.fsdecode(os.path.join(os.fsencode(root), b"caf\xe9-latin1.jpg")) in paths, "JSON keeps it losslessly"


def test_a_name_that_is_not_utf8_round_trips_through_the_library(tmp_path, tiny_clip_spec):
    folder = tmp_path / "names"
    name = os.fsdecode(os.path.join(os.fsencode(folder), b"\xe9t\xe9.jpg"))  # as Python holds it
    photo(folder / "ok.jpg", (64, 48), seed=1)
    photo(folder / "tmp.jpg", (64, 48), seed=2).rename(name)
    with Collection.create(tmp_path / "coll", model=tiny_clip_spec) as coll:
        assert coll.add_images([folder]).encoded == 2
        assert name in {hit.path for hit in coll.search("x", k=5)}
        assert list(coll.vectors_for_paths([name])) == [name]
        os.unlink(name)
        assert coll.add_images([folder]).removed == 1, "a vanished non-UTF-8 name is found under its folder"


def test_files_changed_or_deleted_mid_run(tmp_path, tiny_clip_spec):
    """Files listed by the scan, then changed or deleted before their turn to be read."""
    folder = tmp_path / "moving"
    for i in range(80):
        photo(folder / f"a{i:03d}.jpg", (320, 240), seed=i)
    doomed = photo(folder / "zz-deleted.jpg", (320, 240), seed=500)
    changed = photo(folder / "zz-changed.jpg", (320, 240), seed=501)
    grows = photo(folder / "zz-truncated.jpg", (320, 240), seed=502)
    acted = []

    def meddle(done: int, total: int) -> None:
        # The decode workers run at most a few dozen files ahead: the zz- files are still to come.
        if not acted:
            acted.append(done)
            doomed.unlink()
            photo(changed, (200, 100), seed=777)
            grows.write_bytes(grows.read_bytes()[:500])

    with Collection.create(tmp_path / "coll", model=tiny_clip_spec) as coll:
        report = coll.add_images([folder], on_progress=meddle)
        assert acted == [1]
        skipped = {f["path"]: f["reason"] for f in report.failures}
        assert skipped == {str(doomed): "file not found", str(grows): "truncated image"}
        item = coll.store.items_by_key([str(changed)])[str(changed)]
        assert (item.metadata["width"], item.metadata["height"]) == (200, 100), "the content read is the content kept"
        assert item.size == changed.stat().st_size and item.mtime_ns == changed.stat().st_mtime_ns
        again = coll.add_images([folder])
        assert again.encoded == again.reused == 0, "what was read is recorded with the size and time it had"
        assert again.removed == 0 and again.skipped == 1


@pytest.mark.parametrize("where", ["index", "search"])
def test_a_named_pipe_given_directly_does_not_hang(tmp_path, tiny_clip_spec, where):
    env, coll = cli_env(tmp_path / "home"), tmp_path / "coll"
    pipe = tmp_path / "p.jpg"
    os.mkfifo(pipe)
    if where == "index":
        result = run(["index", str(pipe), "-c", str(coll), "--model", tiny_clip_spec], env, timeout=120)
        assert result.returncode == 2
        assert result.stderr.strip().endswith("not a regular file (a named pipe)"), result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
    else:
        photo(tmp_path / "photos" / "a.jpg", (64, 48), seed=0)
        assert run(["index", str(tmp_path / "photos"), "-c", str(coll), "--model", tiny_clip_spec], env).returncode == 0
        result = run(["search", "-c", str(coll), "--image", str(pipe)], env, timeout=120)
        assert result.returncode != 0 and "not a regular file" in result.stderr
        assert result.stderr.count("\n") == 1, result.stderr


def test_the_server_answers_for_a_name_that_is_not_utf8(tmp_path, tiny_clip_spec):
    folder = tmp_path / "names"
    name = os.fsdecode(os.path.join(os.fsencode(folder), b"caf\xe9.jpg"))
    photo(folder / "tmp.jpg", (64, 48), seed=3).rename(name)
    with Collection.create(tmp_path / "coll", model=tiny_clip_spec) as coll:
        coll.add_images([folder])
    settings = ServeSettings(collections=(str(tmp_path / "coll"),), load_in_background=False)
    server = BackgroundServer(create_app(settings)).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            found = http.post("/search", json={"text": "a photo", "k": 1})
            assert found.status_code == 200, found.text
            hit = found.json()["results"][0]
            assert hit["path"].endswith("caf\\xe9.jpg"), "shown readably"
            assert http.get(hit["image_url"]).content == open(name, "rb").read()
            knn = http.post("/knn-service", json={"text": "a photo", "num_images": 1})
            assert knn.status_code == 200 and knn.json()[0]["image_path"].endswith("caf\\xe9.jpg")
            meta = http.post("/metadata", json={"ids": [hit["id"]]})
            assert meta.status_code == 200 and meta.json()[0]["metadata"]["image_path"].endswith("caf\\xe9.jpg")
    finally:
        server.stop()
