"""Indexing the images a table names: local paths, relative paths and URLs on a loopback server."""

from __future__ import annotations

import csv
import datetime
import http.server
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clipforge import Collection
from clipforge.errors import InputError, NotFoundError
from conftest import make_photo


class ImageHost(http.server.ThreadingHTTPServer):
    """Serves photos, and the ways a real host fails: 404, too slow, too big."""

    daemon_threads = True

    def __init__(self, folder):
        self.folder, self.requests = folder, []
        super().__init__(("127.0.0.1", 0), _Handler)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{path}"


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send_huge(self, chunked: bool):
        body = b"\xff\xd8" + b"\0" * 3_000_000
        self.send_response(200)
        if not chunked:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for start in range(0, len(body), 65536):
            chunk = body[start : start + 65536]
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def do_GET(self):
        host: ImageHost = self.server
        host.requests.append(self.path)
        name = self.path.lstrip("/")
        if name == "slow.jpg":
            time.sleep(1.5)
        if name.startswith("huge"):  # 3 MB; the chunked one does not say so up front
            try:
                self._send_huge(chunked=name != "huge.jpg")
            except (BrokenPipeError, ConnectionResetError):  # the client stopped at its limit
                pass
            return
        path = host.folder / name
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up on a slow answer
            pass


@pytest.fixture
def host(tmp_path):
    served = tmp_path / "served"
    for i in range(3):
        make_photo(served / f"web{i}.jpg", seed=50 + i)
    make_photo(served / "slow.jpg", seed=60)
    server = ImageHost(served)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def coll(tmp_path, tiny_clip_spec):
    with Collection.create(tmp_path / "shop", model=tiny_clip_spec) as c:
        yield c


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_table_of_paths_and_urls(tmp_path, coll, host):
    shop = tmp_path / "shop-data"
    make_photo(shop / "images" / "a.jpg", seed=1)
    absolute = make_photo(tmp_path / "elsewhere" / "b.png", seed=2)
    (shop / "images" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    table = write_csv(shop / "table.csv", ["path", "caption", "license", "price"], [
        ["images/a.jpg", "a red chair", "cc-by", "12.5"],
        [str(absolute), "a blue lamp", "cc0", "3"],
        [host.url("web0.jpg"), "a web photo", "cc-by", ""],
        [host.url("web1.jpg"), "another", "cc-by-sa", "7"],
        [host.url("missing.jpg"), "gone", "cc0", "1"],
        [host.url("slow.jpg"), "slow", "cc0", "1"],
        [host.url("huge.jpg"), "declared too big", "cc0", "1"],
        [host.url("huge-chunked.jpg"), "too big, undeclared", "cc0", "1"],
        ["images/broken.jpg", "broken", "cc0", "1"],
        ["", "no image", "cc0", "1"],
    ])
    report = coll.add_table(table, image_column="path", meta_columns=["caption", "license", "price"],
                            url_timeout_s=0.5, url_max_bytes=1_000_000, workers=0)
    assert (report.encoded, report.skipped) == (4, 6)
    reasons = {f["path"]: f["reason"] for f in report.failures}
    assert reasons[host.url("missing.jpg")] == "cannot fetch (HTTP 404 Not Found)"
    assert reasons[host.url("slow.jpg")] == "download timed out (over 0.5 s)"
    assert reasons[host.url("huge.jpg")] == "download too large (3000002 bytes > the 1000000 byte limit)"
    assert reasons[host.url("huge-chunked.jpg")] == "download too large (over 1000001 bytes > the 1000000 byte limit)"
    assert reasons[str(shop / "images" / "broken.jpg")] == "not an image or unsupported format"
    assert reasons[f"{table} row 10"] == "empty 'path'"
    a = coll.store.items_by_key([str(shop / "images" / "a.jpg")])[str(shop / "images" / "a.jpg")]
    assert a.path == str(shop / "images" / "a.jpg")  # a local file: the same item as a folder's
    assert {k: a.metadata[k] for k in ("caption", "license", "price", "width")} == \
        {"caption": "a red chair", "license": "cc-by", "price": "12.5", "width": 64}
    web = coll.store.items_by_key([host.url("web0.jpg")])[host.url("web0.jpg")]
    assert web.path is None and web.metadata["caption"] == "a web photo" and "price" not in web.metadata
    assert web.metadata["width"] == 64 and web.metadata["bytes"] == (host.folder / "web0.jpg").stat().st_size
    assert [h.metadata["caption"] for h in coll.search("chair", k=10, where="license=cc-by")] and \
        {h.metadata["license"] for h in coll.search("chair", k=10, where="license=cc-by")} == {"cc-by"}
    assert [h.metadata["caption"] for h in coll.search("x", k=10, where="price>10")] == ["a red chair"]
    listed = {e["path"]: e["reason"] for e in coll.info()["skipped_files"]}
    assert listed[host.url("missing.jpg")] == "cannot fetch (HTTP 404 Not Found)" and len(listed) == 5

    fetched = len(host.requests)
    again = coll.add_table(table, image_column="path", meta_columns=["caption", "license", "price"],
                           url_timeout_s=0.5, url_max_bytes=1_000_000, workers=0)
    assert (again.encoded, again.unchanged, again.skipped, again.updated) == (0, 4, 6, 0)
    assert len(host.requests) == fetched  # nothing fetched again, not even what failed
    retried = coll.add_table(table, image_column="path", url_timeout_s=0.5, url_max_bytes=1_000_000,
                             workers=0, retry_skipped=True)
    assert retried.encoded == 0 and len(host.requests) == fetched + 4


def test_changed_columns_rewrite_metadata_without_reading_images(tmp_path, coll, host):
    make_photo(tmp_path / "t" / "a.jpg", seed=1)
    rows = {"image": ["a.jpg", host.url("web2.jpg")], "caption": ["first", "second"],
            "stock": [3, 0], "added": [datetime.datetime(2023, 6, 1, 12), datetime.datetime(2024, 1, 2)]}
    table = tmp_path / "t" / "items.parquet"
    pq.write_table(pa.table(rows), table)
    assert coll.add_table(table, workers=0).encoded == 2
    assert [h.metadata["caption"] for h in coll.search("x", k=5, where="added>=2023-12-01")] == ["second"]
    rows["caption"] = ["first, corrected", "second"]
    pq.write_table(pa.table(rows), table)
    fetched = len(host.requests)
    report = coll.add_table(table, workers=0)
    assert (report.encoded, report.unchanged, report.updated) == (0, 2, 1)
    assert len(host.requests) == fetched
    [hit] = coll.search("x", k=5, where="caption~corrected")
    assert hit.metadata["stock"] == 3 and hit.metadata["added"] == "2023-06-01T12:00:00"


def test_urls_through_the_decode_pool(tmp_path, coll, host):
    for i in range(20):
        make_photo(host.folder / f"many{i}.jpg", seed=100 + i)
    table = write_csv(tmp_path / "many.csv", ["image"], [[host.url(f"many{i}.jpg")] for i in range(20)])
    report = coll.add_table(table, workers=2, batch_size=8)
    assert (report.encoded, report.skipped) == (20, 0)


def test_bad_tables_are_refused(tmp_path, coll):
    table = write_csv(tmp_path / "t.csv", ["file", "caption"], [["a.jpg", "x"]])
    with pytest.raises(InputError, match=r"has no column 'image' \(columns: file, caption\)"):
        coll.add_table(table)
    with pytest.raises(InputError, match=r"has no column 'license'"):
        coll.add_table(table, image_column="file", meta_columns=["license"])
    with pytest.raises(InputError, match="table option url_timeout_s: Input should be greater than 0"):
        coll.add_table(table, image_column="file", url_timeout_s=0)
    with pytest.raises(NotFoundError):
        coll.add_table(tmp_path / "nope.csv")


def test_cli_indexes_a_table_and_info_lists_what_failed(run_cli, tiny_clip_spec, tmp_path, host):
    make_photo(tmp_path / "t" / "a.jpg", seed=3)
    table = write_csv(tmp_path / "t" / "table.csv", ["path", "caption", "url", "license"], [
        ["a.jpg", "a chair", "http://example.com/a", "cc0"], [host.url("missing.jpg"), "gone", "", "cc0"]])
    result = run_cli("index", table, "--image-column", "path", "--meta-columns", "caption,url,license", "-c", "shop",
                     "--model", tiny_clip_spec, "--workers", "0", "--json", check=True).json()
    assert (result["encoded"], result["skipped"]) == (1, 1)
    info = run_cli("info", "-c", "shop", check=True).stdout
    assert f"{host.url('missing.jpg')}: cannot fetch (HTTP 404 Not Found)" in info
    refused = run_cli("index", tmp_path / "t", "--image-column", "path", "-c", "shop")
    assert refused.returncode == 2 and "apply to tables" in refused.stderr and refused.stderr.count("\n") == 1
