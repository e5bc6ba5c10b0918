"""``clipforge serve``, the real executable."""

from __future__ import annotations

import httpx

from .conftest import free_port, start_serve, stop_serve


def test_serve_command(collection_path, clipforge_home):
    proc, port = start_serve(collection_path, clipforge_home, "--no-batching")
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/collections").json()[0]["name"] == "pics"
        assert httpx.post(f"http://127.0.0.1:{port}/search", json={"text": "a cat"}).status_code == 200
    finally:
        err = stop_serve(proc)
    assert f"http://127.0.0.1:{port}/" in err


def test_serve_unknown_collection_is_one_line(run_cli):
    result = run_cli("serve", "-c", "missing", "--port", str(free_port()))
    assert result.returncode == 3
    assert result.stderr.strip().startswith("clipforge: error: no collection 'missing'")
    assert "Traceback" not in result.stderr
