"""Kill `clipforge index` and `clipforge index-texts` at seeded random points, in the default
configuration (default decode workers, default batch size, photos of real sizes), with
SIGKILL and SIGTERM.

Each killed run is followed by a rerun of the same command, which may itself be the next to
be killed; a run that finishes ends its chain and the next kill starts a new collection.
After every kill: no process of the killed run is left, and what was committed is sound (each
committed item holds its own vector, within the committed rows). After every finished run:
every item exactly once, each with its own vector, segments exactly as long as the committed
rows, and a search for more than all of them returns each of them.
"""

from __future__ import annotations

import csv
import random
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
from reliability_support import check_collection, cli_env, kill_during, photo, plan_kills, run, stored_vectors

from clipforge.index.collection import Collection

KILLS = 20
SIZES = [(640, 480), (1024, 768), (480, 640), (1600, 1200), (640, 480), (1920, 1080), (800, 600), (4032, 3024)]


@pytest.fixture(scope="module")
def mixed_photos(tmp_path_factory):
    """240 photos, so that a run commits four batches: JPEGs from 0.3 to 12 megapixels, some PNGs."""
    root = tmp_path_factory.mktemp("mixed-photos")
    for i in range(240):
        fmt = "PNG" if i % 20 == 3 else "JPEG"
        size = SIZES[i % len(SIZES)] if fmt == "JPEG" else (800, 600)
        photo(root / f"album{i % 3}" / f"p{i:03d}.{fmt.lower()}", size, seed=i, fmt=fmt)
    return root


@pytest.fixture(scope="module")
def captions(tmp_path_factory) -> Path:
    table = tmp_path_factory.mktemp("captions") / "captions.csv"
    with open(table, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text"])
        for i in range(3000):
            writer.writerow([f"t{i}", f"caption {i}: a {['red', 'green', 'blue'][i % 3]} thing {i * 7919 % 1000}"])
    return table


def _same_vectors(got: dict, reference: dict) -> None:
    for key, vector in got.items():
        cosine = float(np.dot(vector, reference[key]) / (np.linalg.norm(vector) * np.linalg.norm(reference[key])))
        assert cosine > 0.999, f"{key} holds another item's vector (cosine {cosine:.3f})"


def _committed_state_is_sound(coll: Path, reference: dict) -> int:
    """What a killed run left: committed items point inside the committed rows, which are on
    disk, and hold their own vectors. Returns how many items are committed."""
    db_path = coll / "collection.sqlite"
    if not db_path.exists():
        return 0
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        rows = [r[0] for r in db.execute("SELECT vector_row FROM items")]
    committed, dim = int(meta["vector_rows"]), int(meta["dim"])
    assert all(0 <= r < committed for r in rows)
    on_disk = sum(f.stat().st_size for f in (coll / "vectors").glob("seg-*.f16")) if committed else 0
    assert on_disk >= committed * dim * 2, "committed vectors are missing from the segments"
    if rows:
        _same_vectors(stored_vectors(coll), reference)
    return len(rows)


def _found_by_search(coll: Path, target: str) -> int:
    """How many distinct items a search for more than all of them returns."""
    with Collection.open(coll) as collection:
        query = np.ones(collection.dim, dtype=np.float32)
        hits = collection.search_vectors(query, k=collection.vectors.rows + 10, target=target)[0]
    return len({hit.id for hit in hits})


def _kill_chains(tmp_path, env, command, expected: set[str], target: str, seed: int) -> list[str]:
    """Twenty kills in chains of reruns (see the module docstring); the report, a line per run."""
    reference_coll = tmp_path / "reference"
    started = time.monotonic()
    assert run(command(reference_coll), env).returncode == 0
    full_run = time.monotonic() - started
    reference = stored_vectors(reference_coll)

    def finished(coll: Path) -> None:
        check_collection(coll, expected)
        _same_vectors(stored_vectors(coll), reference)
        assert _found_by_search(coll, target) == len(expected)

    report, chain = [f"uninterrupted run: {full_run:.1f} s"], 0
    for kill in plan_kills(random.Random(seed), KILLS, len(expected), full_run):
        coll = tmp_path / f"chain{chain}"
        status, _, left = kill_during(command(coll), env, kill, coll / "collection.sqlite")
        assert not left, f"{kill}: processes of the killed run still alive: {left}"
        committed = _committed_state_is_sound(coll, reference)
        report.append(f"chain {chain}: {kill}: {'finished first' if status == 0 else f'exit {status}'}, "
                      f"{committed} items committed")
        if status == 0:
            finished(coll)
            chain += 1
    for number in range(chain + 1):  # the chains a kill ended: rerun them to the end
        coll = tmp_path / f"chain{number}"
        rerun = run(command(coll), env)
        assert rerun.returncode == 0, rerun.stderr
        finished(coll)
    assert {line.split(": ")[1].split()[0] for line in report[1:]} == {"SIGKILL", "SIGTERM"}
    return report


def test_index_survives_kills_at_random_points(tmp_path, mixed_photos, tiny_clip_spec):
    env = cli_env(tmp_path / "home")
    expected = {str(p.resolve()) for p in mixed_photos.rglob("*") if p.is_file()}

    def command(coll: Path) -> list[str]:
        return ["index", str(mixed_photos), "-c", str(coll), "--model", tiny_clip_spec]

    report = _kill_chains(tmp_path, env, command, expected, "image", seed=13)
    print(f"\nindex: {KILLS} kills survived\n  " + "\n  ".join(report))


def test_index_texts_survives_kills_at_random_points(tmp_path, captions, tiny_clip_spec):
    env = cli_env(tmp_path / "home")
    expected = {f"text:id:t{i}" for i in range(3000)}

    def command(coll: Path) -> list[str]:
        return ["index-texts", str(captions), "--id-column", "id", "-c", str(coll), "--model", tiny_clip_spec]

    report = _kill_chains(tmp_path, env, command, expected, "text", seed=17)
    print(f"\nindex-texts: {KILLS} kills survived\n  " + "\n  ".join(report))
