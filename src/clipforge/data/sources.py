"""Where an image's bytes come from when it is not a local file: an http(s) URL, or a member
of a WebDataset tar shard.

The decode pool reads these in its workers, as it reads files, so a source is a small
picklable value with a ``name`` (what a skipped entry is recorded under) and a ``read``
that returns ``(bytes, size, mtime_ns)`` or raises ``ImageDecodeError`` with a short reason.

This module must not import torch: decode workers import it.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from ..errors import ImageDecodeError
from .shards import read_member

URL_TIMEOUT_S = 20.0
MAX_URL_BYTES = 50_000_000  # far above any photo a table links to; bounds what one fetch holds
_READ_CHUNK = 1 << 16


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def fetch_url(url: str, max_bytes: int = MAX_URL_BYTES, timeout_s: float = URL_TIMEOUT_S) -> bytes:
    """The body of an http(s) URL, of at most ``max_bytes``, within ``timeout_s`` in all.

    urllib's timeout bounds each socket operation, not the whole download: a server that
    trickles a byte a second would never time out. The body is therefore read in chunks
    against one deadline.
    """
    if not is_url(url):
        raise ImageDecodeError("not an http(s) URL", url)
    deadline = time.monotonic() + timeout_s
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise ImageDecodeError(_too_large(int(declared), max_bytes), url)
            chunks, received = [], 0
            while received <= max_bytes:
                if time.monotonic() > deadline:
                    raise ImageDecodeError(f"download timed out (over {timeout_s:g} s)", url)
                chunk = response.read(min(_READ_CHUNK, max_bytes + 1 - received))
                if not chunk:
                    break
                chunks.append(chunk)
                received += len(chunk)
    except ImageDecodeError:
        raise
    except urllib.error.HTTPError as e:
        raise ImageDecodeError(f"cannot fetch (HTTP {e.code} {e.reason})".replace(" )", ")"), url) from None
    except TimeoutError:
        raise ImageDecodeError(f"download timed out (over {timeout_s:g} s)", url) from None
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, TimeoutError):
            raise ImageDecodeError(f"download timed out (over {timeout_s:g} s)", url) from None
        raise ImageDecodeError(f"cannot fetch ({getattr(reason, 'strerror', None) or reason})", url) from None
    except (OSError, ValueError) as e:  # a connection cut mid-body, a malformed URL or response
        raise ImageDecodeError(f"cannot fetch ({e})", url) from None
    if received > max_bytes:
        raise ImageDecodeError(_too_large(received, max_bytes, at_least=True), url)
    return b"".join(chunks)


def _too_large(size: int, max_bytes: int, at_least: bool = False) -> str:
    return f"download too large ({'over ' if at_least else ''}{size} bytes > the {max_bytes} byte limit)"


@dataclass(frozen=True)
class UrlSource:
    """An image at an http(s) URL. Its size and mtime are unknown: a URL, once indexed, is
    taken as unchanged (its key is the URL)."""

    url: str
    max_bytes: int = MAX_URL_BYTES
    timeout_s: float = URL_TIMEOUT_S

    @property
    def name(self) -> str:
        return self.url

    def read(self, max_bytes: int) -> tuple[bytes, int | None, int | None]:
        return fetch_url(self.url, min(max_bytes, self.max_bytes), self.timeout_s), None, None


@dataclass(frozen=True)
class ShardMemberSource:
    """An image stored in a local tar shard, read by offset. It is recorded with the member's
    size and the shard's mtime: a shard rewritten since is read again."""

    shard: str
    member: str
    offset: int
    size: int
    shard_mtime_ns: int
    key: str  # the item key: ``<shard>#<sample key>``

    @property
    def name(self) -> str:
        return self.key

    def read(self, max_bytes: int) -> tuple[bytes, int | None, int | None]:
        if self.size > max_bytes:
            raise ImageDecodeError(f"file too large ({self.size} bytes > the {max_bytes} byte limit)", self.key)
        return read_member(self.shard, self.offset, self.size, self.member), self.size, self.shard_mtime_ns
