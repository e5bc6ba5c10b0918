"""Two writers at once, with the same model and with different ones, and readers during a write.

Whatever the timing, a collection ends up whole and built with one model: the loser of a race
is refused with one clear line (exit 5, another model; exit 6, being written) and changes nothing.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from reliability_support import CLI, check_collection, cli_env, photo, run

from clipforge.index.collection import Collection
from clipforge.models.spec import parse_spec

REFUSED = {5: "was built with", 6: "is being written by another process"}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("race-photos")
    for i in range(150):
        photo(root / f"p{i:03d}.jpg", (800, 600) if i % 3 else (1600, 1200), seed=i)
    return root


def _race(env, photos, coll, first_model: str, second_model: str, delay: float):
    def start(model):
        return subprocess.Popen([CLI, "index", str(photos), "-c", str(coll), "--model", model, "--json"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    first = start(first_model)
    time.sleep(delay)
    second = start(second_model)
    return [(proc, *proc.communicate(timeout=300)) for proc in (first, second)]


@pytest.mark.parametrize("delay", [0.0, 1.0, 2.5])
def test_two_writers_with_different_models_leave_one_whole_collection(tmp_path, photos, tiny_clip_spec,
                                                                        tiny_siglip_dir, delay):
    env, coll = cli_env(tmp_path / "home"), tmp_path / "c2"
    siglip = f"hf:{tiny_siglip_dir}"
    outcomes = _race(env, photos, coll, tiny_clip_spec, siglip, delay)
    winners = [i for i, (proc, _, _) in enumerate(outcomes) if proc.returncode == 0]
    for proc, _, stderr in outcomes:
        if proc.returncode != 0:
            assert proc.returncode in REFUSED and REFUSED[proc.returncode] in stderr, stderr
            assert stderr.count("\n") == 1, f"one line, no traceback: {stderr}"
    assert len(winners) == 1, [(p.returncode, err) for p, _, err in outcomes]
    winner_model = [tiny_clip_spec, siglip][winners[0]]
    with Collection.open(coll) as collection:
        assert collection.model_spec == str(parse_spec(winner_model))
        assert collection.dim == (16 if winner_model == tiny_clip_spec else 32)
    check_collection(coll, {str(p) for p in photos.iterdir()})
    found = run(["search", "-c", str(coll), "a photo", "-k", "3", "--json"], env)
    assert found.returncode == 0, found.stderr
    info = json.loads(run(["info", "-c", str(coll), "--json"], env).stdout)
    assert info["images"] == 150 and not info["problems"]


def test_two_writers_with_the_same_model(tmp_path, photos, tiny_clip_spec):
    env, coll = cli_env(tmp_path / "home"), tmp_path / "same"
    outcomes = _race(env, photos, coll, tiny_clip_spec, tiny_clip_spec, 0.3)
    for proc, _, stderr in outcomes:
        assert proc.returncode == 0 or (proc.returncode == 6 and REFUSED[6] in stderr), stderr
    assert any(proc.returncode == 0 for proc, _, _ in outcomes)
    again = run(["index", str(photos), "-c", str(coll), "--model", tiny_clip_spec, "--json"], env)
    assert json.loads(again.stdout)["unchanged"] == 150, "nothing was lost or left half done"
    check_collection(coll, {str(p) for p in photos.iterdir()})


def test_readers_during_a_write_see_only_committed_items(tmp_path, photos, tiny_clip_spec):
    env, coll = cli_env(tmp_path / "home"), tmp_path / "read"
    with Collection.create(coll, model=tiny_clip_spec):
        pass
    writer = subprocess.Popen([CLI, "index", str(photos), "-c", str(coll)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen, searches = [], 0
    with Collection.open(coll) as reader:
        query = reader.encoder.encode_texts(["a photo"])
        while writer.poll() is None or searches == 0:
            hits = reader.search_vectors(query, k=1000)[0]
            assert len({h.id for h in hits}) == len(hits)
            assert all(h.path and h.path.startswith(str(photos)) for h in hits)
            seen.append(len(hits))
            searches += 1
            time.sleep(0.01)  # leave the writer its share of the two cores
    assert writer.returncode == 0, writer.stderr.read()
    assert seen == sorted(seen), "a reader never sees items disappear during a write"
    assert seen[-1] == 150
    print(f"\nreader: {searches} searches during the write, sizes seen {sorted(set(seen))}")
