"""What the reliability tests share: real CLI processes killed on purpose, the processes they
leave behind, and the invariants a collection must keep whatever happened to its writer."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

CLI = str(Path(sys.executable).with_name("clipforge"))


def cli_env(home: Path) -> dict[str, str]:
    return dict(os.environ, CLIPFORGE_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    """``clipforge ARGS`` in a session of its own, so every process it starts can be found."""
    return subprocess.Popen([CLI, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


def run(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=timeout)


def session_members(session: int) -> list[int]:
    """Live (not zombie) processes of a session, found through /proc."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        state, sid = fields[0], int(fields[3])
        if sid == session and state != "Z":
            members.append(int(entry))
    return members


def survivors(session: int, grace: float = 5.0) -> list[int]:
    """The session's processes still alive ``grace`` seconds on (killed for the next test)."""
    deadline = time.monotonic() + grace
    while (alive := session_members(session)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return alive


def count_rows(db_path: Path, table: str = "items") -> int:
    if not db_path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=1) as db:
            return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    except sqlite3.Error:  # not created yet, or busy
        return 0


@dataclass
class Kill:
    """One planned kill: a signal, after some seconds or once some items are committed."""

    signal: signal.Signals
    after_seconds: float | None = None
    after_items: int | None = None  # newly committed by this run
    extra_seconds: float = 0.0

    def __str__(self) -> str:
        when = f"{self.after_seconds:.2f} s" if self.after_items is None else \
            f"{self.after_items} new items + {self.extra_seconds:.2f} s"
        return f"{self.signal.name} at {when}"


def plan_kills(rng, count: int, items: int, seconds: float) -> list[Kill]:
    """Half the kills at a random time from the start (start-up, model load, scan, work),
    half once a random number of items is committed (mid-batch, mid-commit)."""
    kills = []
    for number in range(count):
        sig = rng.choice([signal.SIGKILL, signal.SIGTERM])
        if number % 2 == 0:
            kills.append(Kill(sig, after_seconds=rng.uniform(0.2, 0.9 * seconds)))
        else:
            kills.append(Kill(sig, after_items=rng.randrange(1, max(2, items // 2)), extra_seconds=rng.uniform(0, 0.3)))
    return kills


def kill_during(args: list[str], env: dict[str, str], kill: Kill, db_path: Path) -> tuple[int, int, list[int]]:
    """Start ``clipforge ARGS``, kill it as planned. (exit status, items committed, survivors).

    A run that ends before its kill must have succeeded.
    """
    before = count_rows(db_path)
    proc = start(args, env)
    started = time.monotonic()
    if kill.after_items is not None:
        while count_rows(db_path) < before + kill.after_items and proc.poll() is None and time.monotonic() - started < 120:
            time.sleep(0.01)
        time.sleep(kill.extra_seconds)
    else:
        while time.monotonic() - started < kill.after_seconds and proc.poll() is None:
            time.sleep(0.01)
    if proc.poll() is None:
        proc.send_signal(kill.signal)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode in (0, -kill.signal), f"{kill}: the run failed by itself: {stderr.decode()[-3000:]}"
    return proc.returncode, count_rows(db_path), survivors(proc.pid)


def check_collection(path: Path, expected_keys: set[str], unused_rows: int = 0) -> dict[str, int]:
    """The invariants of a finished collection: each expected item exactly once, every vector row
    it needs committed and none past them, segments exactly that long, a sound database.
    ``unused_rows``: rows no item points at any more (a repair drops items it cannot restore)."""
    db_path = path / "collection.sqlite"
    with sqlite3.connect(db_path) as db:
        db.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        keys = [row[0] for row in db.execute("SELECT key FROM items WHERE removed = 0")]
        rows = [row[0] for row in db.execute("SELECT vector_row FROM items")]
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    assert len(keys) == len(set(keys)), "an item was indexed twice"
    assert set(keys) == expected_keys, (f"missing {sorted(expected_keys - set(keys))[:5]}, "
                                        f"unexpected {sorted(set(keys) - expected_keys)[:5]}")
    vector_rows, dim = int(meta["vector_rows"]), int(meta["dim"])
    assert set(rows) <= set(range(vector_rows)), "an item points past the committed vectors"
    assert len(set(rows)) == vector_rows - unused_rows, "vector rows lost, doubled or left unreferenced"
    segment_bytes = sum(f.stat().st_size for f in (path / "vectors").glob("seg-*.f16"))
    assert segment_bytes == vector_rows * dim * 2, "stray vectors left behind by a killed run"
    return {"items": len(keys), "vector_rows": vector_rows, "dim": dim}


def stored_vectors(path: Path) -> dict[str, np.ndarray]:
    """Each live item's stored vector, by key, read straight from the segments."""
    with sqlite3.connect(path / "collection.sqlite") as db:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        rows = dict(db.execute("SELECT key, vector_row FROM items WHERE removed = 0").fetchall())
    dim = int(meta["dim"])
    segment = np.fromfile(path / "vectors" / "seg-00000.f16", dtype="<f2").reshape(-1, dim)
    return {key: segment[row].astype(np.float32) for key, row in rows.items()}


def photo(path: Path, size: tuple[int, int], seed: int, fmt: str = "JPEG") -> Path:
    """A photo-like image at a real size: smooth colour fields, edges and noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)
    noise = rng.integers(0, 24, (h, w, 1), dtype=np.uint8)
    array = np.asarray(image, dtype=np.uint8) // 2 + noise
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return path
