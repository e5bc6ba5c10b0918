"""Server settings: which collections, where to listen, and the limits every request obeys."""

from __future__ import annotations

from dataclasses import dataclass, field

# SQLite's INTEGER is signed 64-bit: a larger id is no id, and must not reach the database.
MAX_ITEM_ID = 2**63 - 1


@dataclass(frozen=True)
class Limits:
    """Bounds on a single request; a request past any of them gets a 4xx naming the limit."""

    max_upload_bytes: int = 16 * 1024 * 1024  # one uploaded image, before decoding
    max_image_pixels: int = 40_000_000  # decoded size; far above a phone photo
    max_k: int = 1000  # results per page of /search, and num_images of /knn-service
    max_offset: int = 10_000  # how deep pagination may go
    max_result_ids: int = 10_000  # num_result_ids of /knn-service (its front end asks for 3000)
    max_text_chars: int = 2000  # one query text, label or template
    max_batch_items: int = 64  # texts or images in one /embed request
    max_labels: int = 200  # labels in one /classify request
    max_prompts: int = 2000  # labels x templates: text encodes one /classify request may cost
    max_filters: int = 16
    request_seconds: float = 30.0

    @property
    def max_body_bytes(self) -> int:
        # base64 inflates by 4/3; the rest of a body is small next to an image. Each image is
        # also checked on its own, against max_upload_bytes.
        return self.max_upload_bytes * 4 // 3 + 64 * 1024


@dataclass(frozen=True)
class BatchSettings:
    """Micro-batching of text queries: one model call for up to ``max_batch`` waiting texts."""

    enabled: bool = True
    max_batch: int = 32
    max_wait_ms: float = 2.0  # how long the first text of a batch waits for company


@dataclass(frozen=True)
class ServeSettings:
    collections: tuple[str, ...]  # names or paths, as `clipforge` commands take them
    host: str = "127.0.0.1"
    port: int = 8000
    device: str = "auto"
    precision: str = "auto"
    batching: BatchSettings = field(default_factory=BatchSettings)
    limits: Limits = field(default_factory=Limits)
    # Adding items is possible only when a token is set, and then only with it.
    write_token: str | None = None
    # Fetching a client-given URL from the server is an SSRF risk: off unless asked for.
    allow_image_urls: bool = False
    # Origins allowed to call the API from a browser (the clip-retrieval front end runs on
    # its own origin). Empty: same-origin only.
    cors_origins: tuple[str, ...] = ()
    load_in_background: bool = True  # bind at once; /readyz says when the models are in
