"""SIGKILL `clipforge index` mid-run; the re-run ends with every image indexed exactly once."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from conftest import make_photo


def count_items(db_path: Path) -> int:
    if not db_path.exists():
        return 0
    try:
        with sqlite3.connect(db_path, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_sigkill_then_rerun_indexes_each_image_exactly_once(tmp_path, tiny_clip_spec, clipforge_home):
    folder = tmp_path / "many"
    n = 400
    for i in range(n):
        make_photo(folder / f"p{i:04d}.jpg", size=(48, 40), seed=i)
    exe = Path(sys.executable).with_name("clipforge")
    coll = tmp_path / "coll"
    args = [str(exe), "index", str(folder), "-c", str(coll), "--model", tiny_clip_spec,
            "--batch-size", "4", "--workers", "0"]
    env = dict(os.environ, CLIPFORGE_HOME=str(clipforge_home))
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while count_items(coll / "collection.sqlite") < 20 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = count_items(coll / "collection.sqlite")
    assert 0 < killed_at < n, f"the kill came at {killed_at} of {n}: not mid-run"

    rerun = subprocess.run(args + ["--json"], env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    with sqlite3.connect(coll / "collection.sqlite") as db:
        keys = [row[0] for row in db.execute("SELECT key FROM items")]
        rows = [row[0] for row in db.execute("SELECT vector_row FROM items ORDER BY vector_row")]
        vector_rows = int(db.execute("SELECT value FROM meta WHERE key='vector_rows'").fetchone()[0])
        dim = int(db.execute("SELECT value FROM meta WHERE key='dim'").fetchone()[0])
    assert len(keys) == n and len(set(keys)) == n
    assert rows == list(range(n)), "every image has its own vector row, none lost or doubled"
    assert vector_rows == n
    segment = coll / "vectors" / "seg-00000.f16"
    assert segment.stat().st_size == n * dim * 2, "no stray vectors left behind by the killed run"
    info = subprocess.run([str(exe), "info", "-c", str(coll), "--json"], env=env, capture_output=True, text=True)
    assert '"images": 400' in info.stdout
