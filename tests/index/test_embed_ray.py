"""`clipforge embed --ray` on a real local Ray cluster: the vectors `index` stores, and every
image exactly once after a killed run is resumed or a model actor is killed mid-run."""

from __future__ import annotations

import functools
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from embed_support import assert_matches_index, indexed_vectors, make_photos

pytest.importorskip("ray.data")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return make_photos(tmp_path_factory.mktemp("embed-ray") / "photos", n=13)


@pytest.fixture(scope="module")
def expected(photos, tmp_path_factory, tiny_clip_spec):
    return indexed_vectors(tmp_path_factory.mktemp("indexed"), photos, tiny_clip_spec)


class _SlowPhotos(http.server.SimpleHTTPRequestHandler):
    """The photos over HTTP on loopback, each answer delayed, so that a run lasts long enough to be
    killed midway."""

    def do_GET(self):
        time.sleep(0.4)
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def photo_table(photos, tmp_path_factory, expected):
    """A table naming every photo by URL, and the vectors `index` stores, keyed by URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_SlowPhotos, directory=str(photos)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    urls = {str(p.resolve()): base + p.relative_to(photos).as_posix() for p in sorted(photos.rglob("*.jpg"))}
    table = tmp_path_factory.mktemp("table") / "photos.csv"
    table.write_text("image\n" + "".join(f"{url}\n" for url in urls.values()))
    yield table, {urls[path]: vector for path, vector in expected.items()}
    server.shutdown()


def _embed(source: Path, out: Path, spec: str, clipforge_home: Path) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("clipforge")
    args = [str(exe), "embed", str(source), "--out", str(out), "--model", spec, "--ray", "--block-size", "2",
            "--batch-size", "2", "--precision", "fp32", "--json"]
    env = dict(os.environ, CLIPFORGE_HOME=str(clipforge_home))
    # Its own session: killing the group ends the Ray processes this run started, as a lost machine does.
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)


def _finish(proc: subprocess.Popen) -> str:
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    return stdout


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _blocks_done(out: Path) -> int:
    return len(list((out / "metadata").glob("metadata_*.parquet"))) if (out / "metadata").exists() else 0


def _model_actors() -> list[int]:
    """Ray names a worker process after the actor it runs: ``ray::_Embedder``, or
    ``ray::MapWorker(MapBatches(_Embedder))`` in Ray Data's pool."""
    listing = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in listing.splitlines() if "ray::" in line and "_Embedder" in line]


def test_ray_writes_the_vectors_index_stores(photos, expected, tmp_path, tiny_clip_spec, clipforge_home):
    import json

    report = json.loads(_finish(_embed(photos, tmp_path / "out", tiny_clip_spec, clipforge_home)))
    assert report["engine"] == "ray" and (report["embedded"], report["skipped"], report["blocks"]) == (13, 1, 7)
    assert_matches_index(tmp_path / "out", expected)


def test_a_run_killed_midway_and_resumed_gives_each_image_once(photo_table, tmp_path, tiny_clip_spec,
                                                               clipforge_home):
    table, expected = photo_table
    out = tmp_path / "out"
    proc = _embed(table, out, tiny_clip_spec, clipforge_home)
    _wait_for(lambda: _blocks_done(out) >= 1, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _blocks_done(out) < 7  # it was killed midway
    _finish(_embed(table, out, tiny_clip_spec, clipforge_home))
    assert_matches_index(out, expected)


def test_a_model_actor_killed_midway_is_replaced_and_its_batch_redone(photo_table, tmp_path, tiny_clip_spec,
                                                                      clipforge_home):
    table, expected = photo_table
    out = tmp_path / "out"
    proc = _embed(table, out, tiny_clip_spec, clipforge_home)
    _wait_for(lambda: _blocks_done(out) >= 1 and bool(_model_actors()), proc)
    victims = _model_actors()
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    _finish(proc)
    assert _model_actors() == []  # the run's Ray processes ended with it
    assert_matches_index(out, expected)


@pytest.mark.parametrize("address, expected", [
    ("127.0.0.1:1", "cannot reach the Ray cluster at 127.0.0.1:1"),
    ("ray://127.0.0.1:1", "cannot reach the Ray cluster at ray://127.0.0.1:1"),
    ("head-without-port", "expected HOST:PORT"),
])
def test_a_cluster_that_cannot_be_reached_is_one_line_and_writes_nothing(photos, tmp_path, tiny_clip_spec, run_cli,
                                                                          address, expected):
    result = run_cli("embed", photos, "--out", tmp_path / "out", "--model", tiny_clip_spec, "--ray", address, timeout=60)
    assert result.returncode != 0 and expected in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
