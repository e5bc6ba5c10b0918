"""``clipforge search`` hands its query to a running ``clipforge serve`` of the collection,
and answers exactly as it would alone; with no server, a dead one, or any doubt, it answers
in its own process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
from conftest import make_photo

from clipforge import discovery

from .conftest import build_collection, start_serve, stop_serve

QUERIES = [
    ["a cat"],
    ["a dog", "-k", "3", "--offset", "2"],
    ["a bird", "--target", "text", "--where", "n>=2"],
    ["--image", "{photo}"],
    ["--image", "{photo}", "--text", "at night", "--weight", "0.3"],
    ["a car", "--min-score", "-0.5", "--where", "folder~nested"],
]


@pytest.fixture
def pics(tmp_path, tiny_clip_spec):
    return build_collection(tmp_path, tiny_clip_spec)


@pytest.fixture
def served(pics, clipforge_home):
    proc, port = start_serve(pics, clipforge_home, "--no-batching")
    yield proc, f"http://127.0.0.1:{port}"
    if proc.poll() is None:
        stop_serve(proc)


def _comparable(result: dict) -> dict:
    """The result without where it was answered."""
    return {k: v for k, v in result.items() if k != "answered_by"}


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: " ".join(q))
def test_the_server_answers_what_this_process_would(pics, served, run_cli, tmp_path, query):
    _, url = served
    photo = make_photo(tmp_path / "query.jpg", seed=3)
    args = [a.format(photo=photo) for a in query]
    handed = run_cli("search", "-c", pics, *args, "--json", check=True).json()
    local = run_cli("search", "-c", pics, *args, "--json", "--local", check=True).json()
    assert handed["answered_by"] == url and local["answered_by"] is None
    assert handed["results"], "nothing to compare"
    assert _comparable(handed) == _comparable(local)


def test_a_handed_search_loads_no_torch_nor_faiss(pics, served, clipforge_home):
    code = ("import sys; from clipforge.cli.main import main; main(sys.argv[1:]); "
            "print(sorted(m for m in ('torch', 'transformers', 'faiss', 'numpy', 'PIL') if m in sys.modules), "
            "file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, "search", "-c", str(pics), "a cat", "--json"],
                          capture_output=True, text=True, env=dict(os.environ, CLIPFORGE_HOME=str(clipforge_home)))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["answered_by"] == served[1]
    assert done.stderr.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("query", [["a cat", "--where", "=2023"], ["--image", "{photo}", "--text", "   "]],
                         ids=["bad filter", "blank instruction"])
def test_a_refused_query_gets_the_same_line_as_alone(pics, served, run_cli, tmp_path, query):
    photo = make_photo(tmp_path / "query.jpg", seed=3)
    args = [a.format(photo=photo) for a in query]
    handed = run_cli("search", "-c", pics, *args)
    local = run_cli("search", "-c", pics, *args, "--local")
    assert handed.returncode == local.returncode != 0
    assert handed.stderr == local.stderr and handed.stderr.count("\n") == 1


def test_a_copy_of_the_collection_is_not_answered_by_the_originals_server(pics, served, run_cli, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(pics, copy)  # its serving/ records too
    assert (copy / discovery.FOLDER).exists() and not discovery.running(copy)
    assert run_cli("search", "-c", copy, "a cat", "--json", check=True).json()["answered_by"] is None


def test_a_server_that_runs_the_model_otherwise_is_not_asked(pics, clipforge_home, run_cli):
    proc, _ = start_serve(pics, clipforge_home, "--no-batching", "--precision", "fp32")
    try:
        assert discovery.running(pics)
        assert run_cli("search", "-c", pics, "a cat", "--json", check=True).json()["answered_by"] is None
    finally:
        stop_serve(proc)


def test_a_stopped_server_does_not_hold_the_command(pics, served, run_cli):
    proc, _ = served
    proc.send_signal(signal.SIGSTOP)  # Ctrl-Z: it still accepts connections, and answers nothing
    try:
        # Waited on for 30 s before, and answered here after that; the time allowed is far
        # above a local search's, and below that.
        result = run_cli("search", "-c", pics, "a cat", "--json", timeout=25, check=True).json()
        assert result["answered_by"] is None
    finally:
        proc.send_signal(signal.SIGCONT)


def test_a_stopped_server_leaves_no_record_and_search_answers_alone(pics, served, run_cli):
    proc, _ = served
    assert discovery.running(pics)
    stop_serve(proc)
    assert not list((pics / discovery.FOLDER).glob("*.json"))
    assert run_cli("search", "-c", pics, "a cat", "--json", check=True).json()["answered_by"] is None


def test_a_killed_server_or_a_stranger_on_its_port_is_not_trusted(pics, served, run_cli, tmp_path):
    proc, url = served
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list((pics / discovery.FOLDER).glob("*.json")), "SIGKILL leaves the record behind"
    assert run_cli("search", "-c", pics, "a cat", "--json", check=True).json()["answered_by"] is None
    # A live process that is not the collection's server, answering on the recorded port.
    stranger = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", url.rsplit(":", 1)[1]],
                                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        record = pics / discovery.FOLDER / f"{stranger.pid}.json"
        record.write_text(json.dumps({"url": url, "name": "pics", "pid": stranger.pid, "instance": "not-it"}))
        assert run_cli("search", "-c", pics, "a cat", "--json", check=True).json()["answered_by"] is None
    finally:
        stranger.kill()
        stranger.wait()


@pytest.mark.parametrize("option", [["--local"], ["--precision", "fp32"], ["--device", "cpu"]])
def test_a_query_that_names_how_to_run_it_is_answered_here(pics, served, run_cli, option):
    result = run_cli("search", "-c", pics, "a cat", *option, "--json", check=True).json()
    assert result["answered_by"] is None and result["results"]


def test_with_a_query_model_the_server_encodes_with_it_as_a_local_search_does(pics, clipforge_home, run_cli,
                                                                              tmp_path):
    from clipforge import Collection
    from clipforge.models.onnx_export import export_onnx

    with Collection.open(pics) as collection:
        export_onnx(collection.model_spec, tmp_path / "export", int8=True)  # an int8 text tower: not exact
        collection.set_query_model(f"onnx:{tmp_path / 'export'}")
    proc, port = start_serve(pics, clipforge_home, "--no-batching")
    try:
        for query in (["a cat"], ["a bird", "--target", "text"]):
            handed = run_cli("search", "-c", pics, *query, "--json", check=True).json()
            local = run_cli("search", "-c", pics, *query, "--json", "--local", check=True).json()
            assert handed["answered_by"] == f"http://127.0.0.1:{port}"
            assert _comparable(handed) == _comparable(local)
    finally:
        stop_serve(proc)
