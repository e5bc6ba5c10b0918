"""Every schemathesis check, on every operation of the OpenAPI schema: no failure, no 5xx.

All of schemathesis' phases run (examples, coverage, fuzzing, stateful) with all of its
checks (``--checks all`` on its command line), a bounded and derandomised number of
examples per operation, against a real server on loopback whose collection this test owns
(the write endpoint is exercised with its token). The test prints what it sent and found.

Images: the schema says that an image field holds an encoded image (``format: image``, or
a form part of ``image/*``), and the test teaches schemathesis to make small real ones of
several formats and modes, as it knows how to make an e-mail address for ``format: email``.
Without that, every valid case would send random bytes, which the server rightly refuses.
Findings whose premise the request as sent breaks are set aside and listed
(``schemathesis_run.py`` says which and why).
"""

from __future__ import annotations

import json
from collections import Counter
from types import SimpleNamespace

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")
from api_server import served  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis_run import FORMATS, as_base64, encoded_image, images, premise_fails, run  # noqa: E402
from urllib3 import encode_multipart_formdata  # noqa: E402

from clipforge.serve.fields import IMAGE_FORMAT  # noqa: E402

EXAMPLES_PER_OPERATION = 300
TOKEN = "schemathesis-token"


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_clip_spec):
    with served(tmp_path_factory.mktemp("schemathesis"), tiny_clip_spec, write_token=TOKEN) as running:
        yield running


@pytest.fixture
def image_generators():
    """Real images for every image field, in schemathesis' process-wide registries.

    Each file part of this API is an image (its encoding says ``image/*``), so the generic
    ``format: binary`` makes images too: schemathesis does not always draw a part from the
    strategy of its encoding. The formats are put back afterwards; media types have no
    public way back, and only ever apply to parts declared as images."""
    schemathesis.openapi.format(IMAGE_FORMAT, st.builds(as_base64, images(), st.booleans()))
    schemathesis.openapi.format("binary", images())
    for fmt, media_type in FORMATS.items():
        schemathesis.openapi.media_type(media_type, images(fmt))
    yield
    for name in (IMAGE_FORMAT, "binary"):
        schemathesis.specs.openapi.unregister_string_format(name)


def config() -> schemathesis.Config:
    settings = schemathesis.Config.from_dict({
        "workers": 1,  # two cores, shared with the server
        "cache": {"enabled": False},  # no state carried between runs, and none left in the tree
        "continue-on-failure": True,
        "request-timeout": 60,
        "generation": {"max-examples": EXAMPLES_PER_OPERATION, "deterministic": True},
        "auth": {"openapi": {"bearer": {"bearer": TOKEN}}},
    })
    settings.projects.override.checks.update(included_check_names=["all"])  # --checks all
    return settings


def server_answers(url: str) -> Counter:
    """Requests the server answered, by status: its own count, from /metrics."""
    counts: Counter = Counter()
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith("clipforge_http_requests_total{"):
            counts[line.split('status="')[1].split('"')[0]] += float(line.rsplit(" ", 1)[1])
    return counts


def test_every_check_on_every_operation(server, image_generators, capsys):
    before = server_answers(server.url)
    report = run(schemathesis.openapi.from_url(server.url + "/openapi.json", config=config()))
    answered = server_answers(server.url) - before
    server_errors = sum(n for status, n in answered.items() if status.startswith("5"))
    with capsys.disabled():  # the figures, shown even when output is captured
        print(f"\nschemathesis: {report.cases} test cases, {report.requests} requests sent; the server answered "
              f"{sum(answered.values()):.0f} ({', '.join(f'{s}: {n:.0f}' for s, n in sorted(answered.items()))}); "
              f"{len(report.failures)} failures found, {len(report.set_aside)} findings set aside")
    print("checks run:", ", ".join(f"{name} {count}" for name, count in sorted(report.checks.items())))
    for failure in report.failures:
        print(" - failure:", failure)
    for finding in report.set_aside:
        print(" - set aside, the request as sent says otherwise:", finding)
    assert report.requests > 2000
    assert server_errors == 0 and report.failures == []


def test_findings_are_judged_by_what_was_sent(server):
    """The judge of set-aside findings: it must not excuse a real one."""
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json", config=config())
    search = schema["/search"]["POST"]
    classify = schema["/classify"]["POST"]

    def sent_json(body):
        return SimpleNamespace(body=json.dumps(body).encode(), headers={"Content-Type": ["application/json"]})

    def sent_form(fields):
        body, content_type = encode_multipart_formdata(fields)
        return SimpleNamespace(body=body, headers={"Content-Type": [content_type]})

    def judged(check, operation, media_type, request):
        return premise_fails(check, operation.Case(media_type=media_type), request)

    # A valid body refused, an invalid one accepted: real findings, kept.
    assert not judged("positive_data_acceptance", search, "application/json", sent_json({"text": "a cat"}))
    assert not judged("negative_data_rejection", search, "application/json", sent_json({"text": "x", "k": 0}))
    png = encoded_image((4, 3), "RGB", "PNG", seed=0)
    no_labels = sent_form([("image", ("a.png", png))])
    assert not judged("negative_data_rejection", classify, "multipart/form-data", no_labels)
    # What the checks assumed and the wire says otherwise: set aside.
    assert judged("positive_data_acceptance", search, "application/json", sent_json({"text": "x", "k": 0}))
    number_as_label = sent_form([("image", ("a.png", png)), ("labels", "6e-273")])
    assert judged("negative_data_rejection", classify, "multipart/form-data", number_as_label)
    assert judged("positive_data_acceptance", classify, "multipart/form-data",
                  sent_form([("image", ("a.png", png)), ("labels", "")]))
