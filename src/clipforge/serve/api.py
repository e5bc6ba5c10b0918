"""The HTTP API proper: search, embed, classify, list collections, add texts.

Every handler parses, calls the library in a worker thread, and shapes the answer; the
work itself is ``build_query``, ``Collection.search_vectors`` and ``classify``.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, HTTPException, Request

from ..index.collection import Collection, Hit
from ..paths import readable_path
from ..search.classify import DEFAULT_TEMPLATES, classify
from ..search.queries import load_query_image
from .bodies import parse_body
from .deadline import check_deadline
from .openapi import BEARER, body_doc, errors
from .schemas import (
    AddTextsRequest,
    ClassifyRequest,
    ClassifyResponse,
    CollectionOut,
    EmbedRequest,
    EmbedResponse,
    HitOut,
    IndexOut,
    PredictionOut,
    SearchRequest,
    SearchResponse,
    TextIn,
)
from .service import Served, Service, ServiceDep
from .settings import Limits


def hit_out(request: Request, served: Served, hit: Hit) -> HitOut:
    urls = {}
    if hit.kind == "image" and hit.path:  # imported and fetched items have no file here to serve
        urls = {
            "thumbnail_url": request.url_for("item_thumbnail", collection=served.name, item_id=hit.id).path,
            "image_url": request.url_for("item_image", collection=served.name, item_id=hit.id).path,
        }
    path = readable_path(hit.path) if hit.path else None  # JSON cannot carry a name that is not UTF-8
    return HitOut(id=hit.id, score=hit.score, kind=hit.kind, path=path, text=hit.text,
                  metadata=hit.metadata, **urls)


def describe(served: Served) -> CollectionOut:
    counts, indexes = served.read(lambda c: (c.store.counts(), c.indexes.describe()))
    index = [IndexOut(kind=kind, **{k: v for k, v in entry.items() if k in IndexOut.model_fields})
             for kind, entry in indexes.items()]
    return CollectionOut(name=served.name, model=served.collection.model_spec, dim=served.collection.dim,
                         index=index, **counts)


def _embed_images(encoder, images: list[bytes], limits: Limits):
    pictures = []
    for data in images:  # decoding a large image takes a while: stop between them when out of time
        check_deadline()
        pictures.append(load_query_image(data, encoder.preprocess.draft_size, max_pixels=limits.max_image_pixels))
    return encoder.encode_images(pictures)


def _classify(encoder, body: ClassifyRequest, limits: Limits):
    picture = load_query_image(body.image, encoder.preprocess.draft_size, max_pixels=limits.max_image_pixels)
    memory = encoder.text_memory if body.text_memory else None
    predictions = classify(encoder, [picture], body.labels, body.templates or DEFAULT_TEMPLATES, memory)[0]
    return predictions, memory.source if memory is not None else None


def _add_texts(served: Served, body: AddTextsRequest, device: str, precision: str) -> dict:
    texts = [TextIn(text=t) if isinstance(t, str) else t for t in body.texts]
    report: dict = {}
    # A second handle on the collection writes, so that the serving handle never sees
    # uncommitted vectors; it picks the new items up by their generation.
    with Collection.open(served.collection.path, device=device, precision=precision) as writer:
        # The library takes ids for all texts or for none: texts with ids go in one call.
        for group in ([t for t in texts if t.id is None], [t for t in texts if t.id is not None]):
            if group:
                ids = [t.id for t in group] if group[0].id is not None else None
                part = writer.add_texts([t.text for t in group], ids=ids, metadata=[t.metadata for t in group])
                report = _merged(report, part.to_dict())
    return report


def _merged(report: dict, part: dict) -> dict:
    return {key: report[key] + value if key in report else value for key, value in part.items()}


def check_write_token(service: Service, request: Request) -> None:
    token = service.settings.write_token
    if not token:
        raise HTTPException(403, "adding items is disabled on this server; start it with a write token to allow it")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise HTTPException(401, "a valid write token is required (Authorization: Bearer <token>)",
                            headers={"WWW-Authenticate": "Bearer"})


router = APIRouter()


@router.post("/search", response_model=SearchResponse, tags=["search"], responses=errors(400, 404, 413, 422, 503),
             openapi_extra=body_doc(SearchRequest, multipart=True))
async def search(request: Request, service: ServiceDep) -> SearchResponse:
    """Search by text, image (base64 in JSON, or a multipart upload), item ("more like this"), or image plus text."""
    body = await parse_body(request, SearchRequest, service.limits, multipart=True)
    served = service.get(body.collection)
    needs_model = body.text is not None or body.image is not None
    encoder = service.encoder(served) if needs_model else None
    vector = await service.query_vector(served, encoder, text=body.text, image=body.image, item_id=body.item_id,
                                        text_weight=body.text_weight)
    exclude = [body.item_id] if body.item_id is not None else []
    hits = await service.search(served, vector, k=body.k, offset=body.offset, target=body.target,
                                min_score=body.min_score, where=[*body.where, body.filters], exclude=exclude)
    return SearchResponse(collection=served.name, target=body.target, k=body.k, offset=body.offset,
                          has_more=hits.has_more, results=[hit_out(request, served, h) for h in hits])


@router.post("/embed", response_model=EmbedResponse, tags=["models"], responses=errors(400, 404, 413, 422, 503),
             openapi_extra=body_doc(EmbedRequest))
async def embed(request: Request, service: ServiceDep) -> EmbedResponse:
    """Vectors for texts and/or base64 images, from a collection's model."""
    body = await parse_body(request, EmbedRequest, service.limits)
    served = service.get(body.collection)
    encoder = service.encoder(served)
    texts = await service.run(encoder.encode_texts, body.texts) if body.texts else None
    images = await service.run(_embed_images, encoder, body.images, service.limits) if body.images else None
    return EmbedResponse(
        collection=served.name, model=served.collection.model_spec, dim=served.collection.dim,
        text_vectors=None if texts is None else texts.tolist(),
        image_vectors=None if images is None else images.tolist(),
    )


@router.post("/classify", response_model=ClassifyResponse, tags=["models"], responses=errors(400, 404, 413, 422, 503),
             openapi_extra=body_doc(ClassifyRequest, multipart=True))
async def classify_image(request: Request, service: ServiceDep) -> ClassifyResponse:
    """Zero-shot probabilities of one image over the given labels."""
    body = await parse_body(request, ClassifyRequest, service.limits, multipart=True)
    served = service.get(body.collection)
    predictions, memory = await service.run(_classify, service.encoder(served), body, service.limits)
    return ClassifyResponse(collection=served.name, model=served.collection.model_spec, text_memory=memory,
                            predictions=[PredictionOut(**vars(p)) for p in predictions])


@router.get("/collections", response_model=list[CollectionOut], tags=["collections"])
async def collections(service: ServiceDep) -> list[CollectionOut]:
    """The served collections with their model, dimension and counts."""
    return [await service.run(describe, served) for served in service.served.values()]


@router.post("/collections/{collection}/texts", tags=["collections"],
             responses=errors(401, 403, 404, 409, 413, 422, 503),
             openapi_extra={**body_doc(AddTextsRequest), "security": [{BEARER: []}]})
async def add_texts(collection: str, request: Request, service: ServiceDep) -> dict:
    """Add texts to a collection. Disabled unless the server has a write token; then it requires it."""
    check_write_token(service, request)
    served = service.get(collection)
    body = await parse_body(request, AddTextsRequest, service.limits)
    service.encoder(served)  # the model must be in; the writer shares it
    settings = service.settings
    return await service.run(_add_texts, served, body, settings.device, settings.precision)
