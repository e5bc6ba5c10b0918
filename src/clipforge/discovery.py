"""Which running ``clipforge serve`` serves a collection: each server leaves a small record in
the collection's ``serving/`` folder while it runs, so that a command can hand a query to a
process that has the model loaded already instead of loading it again.

Light on purpose (standard library only): it is read by the CLI before anything heavy loads.
A record whose process is gone is ignored (and removed by the next server that starts). The
instance token in each record is sent back by its server in every response
(``x-clipforge-instance``), so an answer from another process that took over the port after
a crash is never mistaken for the collection's server.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

FOLDER = "serving"
INSTANCE_HEADER = "x-clipforge-instance"


DATABASE = "collection.sqlite"  # index.opening.DB_NAME, not imported: this module stays light


@dataclass(frozen=True)
class Record:
    url: str          # where the server answers, reachable from this machine
    name: str         # the collection's name on that server
    pid: int
    instance: str     # the token its responses carry
    database: tuple[int, int] | None  # (device, inode) of the collection's database it serves
    runs: tuple[str, str]             # the server's --device and --precision settings

    @property
    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's process: alive
            return True
        return True


def new_instance() -> str:
    return secrets.token_hex(8)


def local_url(host: str, port: int) -> str:
    """The URL a process on this machine uses to reach a server listening on ``host``."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def database_identity(collection: Path) -> tuple[int, int] | None:
    """Which file the collection's database is: a copy of the folder (with its records) or a
    database restored from a backup is another one, which the recorded server does not serve."""
    try:
        info = os.stat(collection / DATABASE)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def announce(collection: Path, name: str, url: str, instance: str, runs: tuple[str, str] = ("auto", "auto")) -> Path | None:
    """Leave a record that this process serves ``collection``; None when the folder cannot be
    written (a read-only collection is served all the same, only not found by commands)."""
    folder = collection / FOLDER
    record = folder / f"{os.getpid()}.json"
    try:
        folder.mkdir(exist_ok=True)
        _remove_dead(folder)
        temporary = folder / f".{os.getpid()}.json.tmp"
        temporary.write_text(json.dumps({"url": url, "name": name, "pid": os.getpid(), "instance": instance,
                                         "database": database_identity(collection), "runs": list(runs)}))
        os.replace(temporary, record)
    except OSError as e:
        log.debug("cannot announce the server in %s: %s", folder, e)
        return None
    return record


def withdraw(records: list[Path | None]) -> None:
    for record in records:
        if record is not None:
            record.unlink(missing_ok=True)


def running(collection: Path) -> list[Record]:
    """The records of live servers of this very ``collection`` (not of the folder it was
    copied from), newest first."""
    folder = collection / FOLDER
    try:
        files = sorted(folder.glob("*.json"), key=lambda f: f.stat().st_mtime, reverse=True)
    except OSError:
        return []
    database = database_identity(collection)
    found = []
    for file in files:
        record = _read(file)
        if record is not None and database is not None and record.database == database and record.alive:
            found.append(record)
    return found


def _read(file: Path) -> Record | None:
    try:
        data = json.loads(file.read_text())
        database = tuple(int(x) for x in data["database"]) if data.get("database") else None
        return Record(url=str(data["url"]), name=str(data["name"]), pid=int(data["pid"]),
                      instance=str(data["instance"]), database=database,
                      runs=tuple(str(x) for x in data.get("runs", ("?", "?"))))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # vanished meanwhile, or not a record


def _remove_dead(folder: Path) -> None:
    for file in folder.glob("*.json"):
        record = _read(file)
        if record is None or not record.alive:
            file.unlink(missing_ok=True)
