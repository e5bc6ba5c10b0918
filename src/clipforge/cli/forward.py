"""Handing a search to a running ``clipforge serve`` of the same collection.

Loading torch and the model is most of what a one-off ``clipforge search`` costs; a server of
the collection has both loaded. A query goes to it over HTTP when one runs (see
``clipforge.discovery``), with the standard library only, so nothing heavy is imported. Any
doubt sends the query back to this process, which answers it the usual way: no server, a
server of a copy of the collection, one started with its own --device or --precision, a
refusal (its limits differ from a local search's), an error, no answer within seconds, a path
that JSON could carry only lossily (a name that is not UTF-8) or an answer from a process
that is not the collection's server.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import stat
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .. import discovery

# Seconds to wait for an answer. A ready server answers in milliseconds and one still loading
# its model refuses at once (503); one that is stopped (Ctrl-Z) or gone from its address
# would otherwise hold the command until some far deadline.
TIMEOUT = 5.0
MAX_IMAGE_BYTES = 16 * 1024 * 1024  # the server's default upload limit; larger images stay here
HIT_FIELDS = ("id", "score", "kind", "path", "text", "metadata")
# Loopback must not go through a proxy that $http_proxy names.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def search(collection: Path, query: dict[str, Any], image: Path | None) -> tuple[str, dict] | None:
    """The server's URL and its answer (hits shaped as ``Hit.to_dict``), or None when no
    server of ``collection`` answered, or answered something this process should redo."""
    if image is not None:
        encoded = _encoded_image(image)
        if encoded is None:
            return None
        query = {**query, "image": encoded}
    for record in discovery.running(collection):
        if record.runs != ("auto", "auto"):
            continue  # it runs the model otherwise than this command would: scores could differ
        answer = _post(record, "/search", {**query, "collection": record.name})
        if answer is None:
            continue
        hits = [{name: hit.get(name) for name in HIT_FIELDS} for hit in answer.get("results", [])]
        if any(hit["path"] and "\\" in hit["path"] for hit in hits):
            return None  # escaped for JSON: only a local search gives the name as it is
        for hit in hits:
            hit["metadata"] = hit["metadata"] or {}
        return record.url, {"results": hits, "has_more": bool(answer.get("has_more"))}
    return None


def _encoded_image(image: Path) -> str | None:
    try:
        info = os.stat(image)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_IMAGE_BYTES:
            return None
        with open(image, "rb") as f:
            return base64.b64encode(f.read(MAX_IMAGE_BYTES + 1)).decode("ascii")
    except OSError:
        return None  # the local search says what is wrong with it


def _post(record: discovery.Record, route: str, body: dict) -> dict | None:
    request = urllib.request.Request(record.url + route, data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"}, method="POST")
    try:
        with _OPENER.open(request, timeout=TIMEOUT) as response:
            if response.headers.get(discovery.INSTANCE_HEADER) != record.instance:
                return None
            return json.loads(response.read())
    except (OSError, ValueError, http.client.HTTPException):  # URLError and HTTPError are OSErrors
        return None
