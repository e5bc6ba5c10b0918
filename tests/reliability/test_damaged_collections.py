"""Damaged collections: every command stops with one line naming the problem and the way out,
`info` lists what is wrong, and `repair` rebuilds what can be rebuilt and says what was lost."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3

import pytest
from reliability_support import check_collection, cli_env, photo, run

from clipforge.index.collection import Collection

CAPTIONS = ["a red car", "a blue bird", "a dog on the beach"]


@pytest.fixture
def built(tmp_path, tiny_clip_spec):
    """A healthy collection of 30 photos and 3 texts, and the environment to run commands in."""
    env, coll, photos = cli_env(tmp_path / "home"), tmp_path / "coll", tmp_path / "photos"
    for i in range(30):
        photo(photos / f"p{i:02d}.jpg", (320, 240), seed=i)
    (tmp_path / "captions.txt").write_text("\n".join(CAPTIONS))
    with Collection.create(coll, model=tiny_clip_spec) as collection:  # in-process: the commands cost seconds each
        collection.add_images([photos])
        collection.add_texts(CAPTIONS)
        collection.search("a dog")  # writes the index cache
    return env, coll, photos


def _commands(coll, photos) -> dict[str, list[str]]:
    return {
        "search": ["search", "-c", str(coll), "a dog"],
        "search-texts": ["search", "-c", str(coll), "--image", str(photos / "p00.jpg"), "--target", "text"],
        "index": ["index", str(photos), "-c", str(coll)],
        "index-texts": ["index-texts", str(coll.parent / "captions.txt"), "-c", str(coll)],
    }


def _assert_refused_in_one_line(env, coll, photos, needle: str, every_command: bool) -> None:
    commands = _commands(coll, photos)
    for name, args in commands.items() if every_command else [("search", commands["search"])]:
        result = run(args, env)
        assert result.returncode == 6, (name, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, (name, result.stderr)
        assert needle in lines[0] and f"clipforge repair -c {coll}" in lines[0], (name, lines[0])


def _expected_keys(photos) -> set[str]:
    texts = {f"text:sha256:{hashlib.sha256(c.encode()).hexdigest()}" for c in CAPTIONS}
    return {str(p) for p in photos.iterdir()} | texts


# Every command is tried on the first kind of damage; the others take the same path.
DAMAGE = {
    "vectors folder deleted": (lambda coll: shutil.rmtree(coll / "vectors"), "vectors/ is missing"),
    "segment deleted": (lambda coll: (coll / "vectors" / "seg-00000.f16").unlink(), "seg-00000.f16 is missing"),
    "segment cut short": (lambda coll: _cut(coll / "vectors" / "seg-00000.f16", 0.5), "holds 16 vectors, not 33"),
}


def _files(folder) -> dict[str, int] | None:
    """Name -> size of what a folder holds; None if it does not exist."""
    return {p.name: p.stat().st_size for p in folder.iterdir()} if folder.exists() else None


def _cut(path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_lost_vectors_are_diagnosed_and_repaired(built, damage):
    env, coll, photos = built
    harm, needle = DAMAGE[damage]
    harm(coll)
    left = _files(coll / "vectors")
    every_command = damage == next(iter(DAMAGE))
    _assert_refused_in_one_line(env, coll, photos, needle, every_command)
    assert _files(coll / "vectors") == left, "a refused command touches no vector file"

    info = run(["info", "-c", str(coll), "--json"], env)
    assert info.returncode == 0, info.stderr
    problems = json.loads(info.stdout)["problems"]
    assert problems and needle in problems[0]
    human = run(["info", "-c", str(coll)], env)
    assert "damaged:" in human.stdout and f"clipforge repair -c {coll}" in human.stdout

    (photos / "p20.jpg").unlink()  # a lost vector's source is gone as well: its item cannot come back
    repaired = run(["repair", "-c", str(coll), "--json"], env)
    assert repaired.returncode == 0, repaired.stderr
    report = json.loads(repaired.stdout)
    assert needle in report["problems"][0] and report["remaining"] == []
    lost = 33 - 16 if damage == "segment cut short" else 33
    assert report["recovered"] == lost - 1
    assert report["lost"] == [str(photos / "p20.jpg")]

    check_collection(coll, _expected_keys(photos), unused_rows=1)
    for name, args in _commands(coll, photos).items() if every_command else []:
        assert run(args, env).returncode == 0, name
    assert json.loads(run(["info", "-c", str(coll), "--json"], env).stdout)["problems"] == []


def test_repaired_vectors_equal_the_original_ones(built):
    env, coll, photos = built
    before = (coll / "vectors" / "seg-00000.f16").read_bytes()
    (coll / "vectors" / "seg-00000.f16").unlink()
    assert run(["repair", "-c", str(coll)], env).returncode == 0
    assert (coll / "vectors" / "seg-00000.f16").read_bytes() == before


def test_a_healthy_collection_is_left_alone(built):
    env, coll, _ = built
    before = (coll / "vectors" / "seg-00000.f16").read_bytes()
    result = run(["repair", "-c", str(coll)], env)
    assert result.returncode == 0 and "nothing to repair" in result.stdout
    assert (coll / "vectors" / "seg-00000.f16").read_bytes() == before


def test_a_stale_index_cache_never_answers_for_lost_vectors(built):
    env, coll, photos = built
    assert list((coll / "index").glob("*.faiss")), "the search in the fixture cached an index"
    shutil.rmtree(coll / "vectors")
    result = run(["search", "-c", str(coll), "a dog"], env)
    assert result.returncode == 6 and "vectors/ is missing" in result.stderr


@pytest.mark.parametrize("damage", ["garbage database", "settings edited", "database emptied"])
def test_a_damaged_database_gets_one_line_everywhere(built, damage):
    env, coll, photos = built
    db_path = coll / "collection.sqlite"
    if damage == "garbage database":
        for extra in ("-wal", "-shm"):
            db_path.with_name(db_path.name + extra).unlink(missing_ok=True)
        db_path.write_bytes(b"this is not a database" * 100)
    elif damage == "settings edited":
        with sqlite3.connect(db_path) as db:
            db.execute("UPDATE meta SET value = 'sixteen' WHERE key = 'dim'")
    else:
        with sqlite3.connect(db_path) as db:
            db.execute("DELETE FROM meta")
    commands = [*_commands(coll, photos).values()] if damage == "garbage database" else [_commands(coll, photos)["search"]]
    for args in [*commands, ["info", "-c", str(coll)], ["repair", "-c", str(coll)]]:
        result = run(args, env)
        assert result.returncode == 6, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr
