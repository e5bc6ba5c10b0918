"""The clip-retrieval protocol (``clip_back``), so its ``ClipClient`` and front end work unchanged.

- ``POST /knn-service``: a JSON body, parsed whatever the content type (``ClipClient`` sends
  none, the front end ``text/plain``). ``null`` counts as absent. The query is the first of
  ``text`` (non-empty), ``image`` (base64), ``image_url``, ``embedding_input``, as in
  clip_back. ``modality`` picks image or text results. The answer is a JSON array of
  ``num_result_ids`` entries with ``id`` and ``similarity``, the first ``num_images`` of them
  also with metadata (``url``, ``image_path``, ``caption`` and the item's own); the front
  end fetches the rest through ``/metadata`` as the user scrolls.
- ``GET /indices-list``: the collection names. ``POST /metadata``: ``{"ids", "indice_name"}``
  in, ``[{"id", "metadata"}]`` out.

Flags clipforge cannot honour (``use_mclip``, ``deduplicate``, safety and violence models,
aesthetic scores) are accepted and ignored. ``image_url`` is never fetched unless the
server allows it: a URL of one of this server's own item images is resolved locally (the
front end's "similar images" sends those), anything else is refused with a 403.
"""

from __future__ import annotations

import re
import urllib.parse
import urllib.request
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from ..errors import InputError
from ..index.collection import Hit
from ..index.store import Item
from ..paths import readable_path
from ..search.queries import unit_vector
from .bodies import invalid, json_body, validate
from .fields import DIMENSION_KEY, NOT_BLANK, WHOLE, AtMost, ImageData, ItemId, Text
from .openapi import body_doc, errors
from .schemas import one_given
from .service import Served, Service, ServiceDep

# Vectors are float32 from end to end: a value past its range has no float32 spelling.
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _fits_float32(value: float) -> float:
    if abs(value) > _FLOAT32_MAX:
        raise ValueError(f"must fit a float32: at most {_FLOAT32_MAX:.6g} in magnitude")
    return value


Float32 = Annotated[float, Field(allow_inf_nan=False), AfterValidator(_fits_float32),
                    WithJsonSchema({"type": "number", "minimum": -_FLOAT32_MAX, "maximum": _FLOAT32_MAX})]
_OWN_ITEM = re.compile(r"^/items/(?P<collection>[^/]+)/(?P<item>\d{1,19})/(image|thumbnail)$")


class _NullIsAbsent(BaseModel):
    """A clip-retrieval body: null counts as absent (so every optional field is nullable in
    the schema too), and fields clipforge does not use are ignored."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data


class KnnRequest(_NullIsAbsent):
    """A nearest-neighbour query: the first given of text (not blank), image, image_url and
    embedding_input. image_url is fetched only where the server allows it; a URL of one of
    this server's item images is always resolved here."""

    model_config = ConfigDict(json_schema_extra=one_given("text", "image", "image_url", "embedding_input",
                                                         text={"pattern": NOT_BLANK, "minLength": 1}))

    text: Text | None = None
    image: ImageData | None = None
    image_url: str | None = Field(None, max_length=4096)
    embedding_input: Annotated[list[Float32], Field(min_length=1, json_schema_extra={
        DIMENSION_KEY: True, "contains": {"not": {"const": 0}}})] | None = Field(
        None, description="a query vector, as many values as the collection's dimension, not all zero")
    modality: Literal["image", "text"] | None = "image"
    num_images: Annotated[int, Field(ge=1), AtMost("max_k"), WHOLE] | None = 40
    num_result_ids: Annotated[int, Field(ge=1), AtMost("max_result_ids"), WHOLE] | None = None
    indice_name: str | None = Field(None, max_length=255)

    @field_validator("embedding_input")
    @classmethod
    def _has_direction(cls, vector: list[float] | None) -> list[float] | None:
        if vector is not None and not any(vector):
            raise ValueError("is all zeros: it has no direction to search in")
        return vector

    @model_validator(mode="after")
    def _something(self) -> "KnnRequest":
        if self.text is not None and not self.text.strip():
            self.text = None  # clip_back treats an empty text as no text; one of spaces is none either
        if self.text is None and self.image is None and self.image_url is None and self.embedding_input is None:
            raise ValueError("must fill one of text, image, image_url and embedding_input")
        return self


class MetadataRequest(_NullIsAbsent):
    ids: Annotated[list[ItemId], Field(max_length=10_000)]
    indice_name: str | None = Field(None, max_length=255)


def item_metadata(request: Request, served: Served, hit: Hit | Item) -> dict[str, Any]:
    """The metadata clip-retrieval clients read: url, image_path, caption, and the item's own."""
    meta = dict(hit.metadata)
    if hit.kind == "image" and hit.path:  # a file of the collection; an imported item keeps its own url
        meta["url"] = str(request.url_for("item_image", collection=served.name, item_id=hit.id))
        meta["image_path"] = readable_path(hit.path)
    if hit.text is not None:
        meta.setdefault("caption", hit.text)
    return meta


def _fetch_image(url: str, max_bytes: int) -> bytes:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https"):
        raise InputError("image_url must be an http or https URL")
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            data = response.read(max_bytes + 1)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot fetch image_url: {e}") from None
    if len(data) > max_bytes:
        raise InputError(f"the image at image_url is larger than {max_bytes} bytes")
    return data


def _own_item(request: Request, service: Service, url: str) -> tuple[Served, int] | None:
    """The (collection, item) that ``url`` names when it is one of this server's item images."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.netloc != request.url.netloc:
        return None
    path = parsed.path[len(request.scope.get("root_path", "")):]
    found = _OWN_ITEM.match(path)
    if not found or found["collection"] not in service.served:
        return None
    return service.served[found["collection"]], int(found["item"])


async def _knn_vector(request: Request, service: Service, served: Served, body: KnnRequest) -> np.ndarray:
    if body.text is not None or body.image is not None:
        return await service.query_vector(served, service.encoder(served), text=body.text,
                                          image=body.image if body.text is None else None)
    if body.image_url is not None:
        own = _own_item(request, service, body.image_url)
        if own is not None and own[0] is served:
            return await service.query_vector(served, None, item_id=own[1])
        if not service.settings.allow_image_urls:
            # Well formed, understood, and refused by the server's configuration: a 403.
            raise HTTPException(403, "image_url is not fetched by this server (it would let clients make the "
                                     "server fetch any URL); send the image as base64 in 'image', or start the "
                                     "server with --allow-image-urls")
        data = await service.run(_fetch_image, body.image_url, service.limits.max_upload_bytes)
        return await service.query_vector(served, service.encoder(served), image=data)
    return unit_vector(body.embedding_input, "embedding_input")


router = APIRouter(tags=["clip-retrieval compatibility"])


@router.get("/indices-list", response_model=list[str])
async def indices_list(service: ServiceDep) -> list[str]:
    """The names of the served collections (clip-retrieval's indices)."""
    return list(service.served)


@router.post("/knn-service", response_model=list[dict[str, Any]], responses=errors(400, 403, 404, 413, 422, 503),
             openapi_extra=body_doc(KnnRequest))
async def knn_service(request: Request, service: ServiceDep) -> list[dict[str, Any]]:
    """clip-retrieval's nearest-neighbour query."""
    body = validate(KnnRequest, await json_body(request), service.limits)
    served = service.get(body.indice_name)
    if body.embedding_input is not None and len(body.embedding_input) != served.collection.dim:
        # Checked even where another field is the query: a malformed field is an error, used or not.
        raise invalid(("embedding_input",), f"must have {served.collection.dim} values, the dimension of "
                                            f"collection {served.name}, not {len(body.embedding_input)}")
    vector = await _knn_vector(request, service, served, body)
    count = body.num_result_ids or body.num_images
    hits = await service.search(served, vector, k=count, target=body.modality)
    results = []
    for position, hit in enumerate(hits):
        entry = item_metadata(request, served, hit) if position < body.num_images else {}
        results.append({**entry, "id": hit.id, "similarity": hit.score})
    return results


@router.post("/metadata", response_model=list[dict[str, Any]], responses=errors(404, 413, 422),
             openapi_extra=body_doc(MetadataRequest))
async def metadata(request: Request, service: ServiceDep) -> list[dict[str, Any]]:
    """Metadata of items by id, for results that came without it."""
    body = validate(MetadataRequest, await json_body(request), service.limits)
    served = service.get(body.indice_name)
    items = await service.run(_live_items, served, body.ids)
    return [{"id": item.id, "metadata": item_metadata(request, served, item)} for item in items]


def _live_items(served: Served, ids: list[int]) -> list[Item]:
    """The live items among ``ids``, in that order; unknown ids are left out."""
    items = served.read(lambda c: c.store.get_items(ids))
    return [items[i] for i in dict.fromkeys(ids) if i in items and not items[i].removed]
