"""``clipforge serve``, the real executable."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_command(collection_path, clipforge_home):
    port = free_port()
    exe = Path(sys.executable).with_name("clipforge")
    env = dict(os.environ, CLIPFORGE_HOME=str(clipforge_home))
    proc = subprocess.Popen([str(exe), "serve", "-c", str(collection_path), "--port", str(port), "--no-batching"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server never became ready"
            time.sleep(0.2)
        assert httpx.get(f"http://127.0.0.1:{port}/collections").json()[0]["name"] == "pics"
        assert httpx.post(f"http://127.0.0.1:{port}/search", json={"text": "a cat"}).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"http://127.0.0.1:{port}/" in err


def test_serve_unknown_collection_is_one_line(run_cli):
    result = run_cli("serve", "-c", "missing", "--port", str(free_port()))
    assert result.returncode == 3
    assert result.stderr.strip().startswith("clipforge: error: no collection 'missing'")
    assert "Traceback" not in result.stderr
