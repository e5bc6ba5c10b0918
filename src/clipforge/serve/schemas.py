"""Request and response bodies of the HTTP API.

Limits that depend on the server's settings (``k``, text length, list sizes) are checked
during validation from the ``limits`` in the validation context, so a request past one gets
the same 422 naming the field as any other invalid value.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..search.classify import DEFAULT_TEMPLATES
from .settings import MAX_ITEM_ID, Limits

_DATA_URL = re.compile(r"^data:[\w/+.-]*(;[\w=.-]+)*;base64,", re.ASCII)
_DEFAULT_LIMITS = Limits()
UPLOAD_TOO_LARGE = "upload_too_large"  # the one validation error answered with 413, not 422


def limits_of(info: ValidationInfo) -> Limits:
    return (info.context or {}).get("limits", _DEFAULT_LIMITS)


def check_at_most(count: int, info: ValidationInfo, limit: str, message: str = "at most {}") -> None:
    """Refuse ``count`` above the server's ``limit`` (a Limits field); ``message`` gets the limit."""
    most = getattr(limits_of(info), limit)
    if count > most:
        raise ValueError(message.format(most))


def _decode_image(value: Any) -> Any:
    """Base64 (or a data: URL) to bytes; bytes from a multipart upload pass as they are."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if not isinstance(value, str):
        return value  # let the bytes validator name the wrong type
    try:
        return base64.b64decode(_DATA_URL.sub("", value.strip(), count=1), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not valid base64 image data") from None


def _check_upload_size(value: bytes, info: ValidationInfo) -> bytes:
    limit = limits_of(info).max_upload_bytes
    if len(value) > limit:
        raise PydanticCustomError(UPLOAD_TOO_LARGE, "the image is larger than the {limit} byte limit", {"limit": limit})
    return value


ImageData = Annotated[
    bytes,
    BeforeValidator(_decode_image),
    AfterValidator(_check_upload_size),
    WithJsonSchema({"type": "string", "contentEncoding": "base64",
                    "description": "an encoded image (JPEG, PNG, WebP, ...) in base64, or a data: URL"}),
]
ItemId = Annotated[int, Field(ge=0, le=MAX_ITEM_ID)]
Scalar = str | int | float | bool
Target = Literal["image", "text"]


def _check_texts(values: list[str] | None, info: ValidationInfo) -> list[str] | None:
    limit = limits_of(info).max_text_chars
    for value in values or []:
        if len(value) > limit:
            raise ValueError(f"each text may have at most {limit} characters")
    return values


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collection: str | None = Field(None, max_length=255, description="collection name; default: the first served")


class SearchRequest(_Request):
    """Search by text, by image, by an item ("more like this"), or by an image plus a text instruction."""

    text: str | None = Field(None, description="the query, or the instruction added to an image or item query")
    image: ImageData | None = None
    item_id: ItemId | None = Field(None, description="search with this item of the collection: more like this")
    text_weight: float = Field(0.5, ge=0.0, le=1.0, description="weight of the text when image and text are given")
    target: Target = Field("image", description="the kind of item to find")
    k: int = Field(20, ge=1, description="results per page")
    offset: int = Field(0, ge=0, description="results to skip: the page start")
    min_score: float | None = Field(None, ge=-1.0, le=1.0, description="drop results scored below this cosine")
    filters: dict[str, Scalar | list[Scalar]] = Field(
        default_factory=dict, description="metadata key -> required value, or a list of accepted values")

    @field_validator("text")
    @classmethod
    def _text(cls, value: str | None, info: ValidationInfo) -> str | None:
        _check_texts([value] if value is not None else None, info)
        return value

    @field_validator("k")
    @classmethod
    def _k(cls, value: int, info: ValidationInfo) -> int:
        check_at_most(value, info, "max_k", "k may be at most {}")
        return value

    @field_validator("offset")
    @classmethod
    def _offset(cls, value: int, info: ValidationInfo) -> int:
        check_at_most(value, info, "max_offset", "offset may be at most {}")
        return value

    @field_validator("filters")
    @classmethod
    def _filters(cls, value: dict, info: ValidationInfo) -> dict:
        check_at_most(len(value), info, "max_filters", "at most {} filters")
        return value

    @model_validator(mode="after")
    def _one_query(self) -> "SearchRequest":
        if self.text is not None and not self.text.strip() and (self.image is not None or self.item_id is not None):
            self.text = None  # an empty instruction field beside an image means no instruction
        if self.text is None and self.image is None and self.item_id is None:
            raise ValueError("give a text, an image or an item_id to search with")
        if self.image is not None and self.item_id is not None:
            raise ValueError("give an image or an item_id, not both")
        return self


class EmbedRequest(_Request):
    """Texts and/or images to embed with a collection's model."""

    texts: list[str] | None = None
    images: list[ImageData] | None = None

    @field_validator("texts", "images")
    @classmethod
    def _count(cls, value: list | None, info: ValidationInfo) -> list | None:
        if value is not None:
            check_at_most(len(value), info, "max_batch_items", "at most {} per request")
        return value

    @field_validator("texts")
    @classmethod
    def _text_length(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        return _check_texts(value, info)

    @model_validator(mode="after")
    def _something(self) -> "EmbedRequest":
        if not self.texts and not self.images:
            raise ValueError("give texts or images to embed")
        return self


class ClassifyRequest(_Request):
    """Zero-shot classification of one image against labels."""

    image: ImageData
    labels: list[str] = Field(min_length=1)
    templates: list[str] | None = Field(None, min_length=1, description="prompt templates, each with one '{}'")
    text_memory: bool = Field(True, description="read the image through the model's text memory, if it ships one")

    @field_validator("labels", "templates")
    @classmethod
    def _labels(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is not None:
            check_at_most(len(value), info, "max_labels", "at most {} entries")
        return _check_texts(value, info)

    @model_validator(mode="after")
    def _prompt_count(self, info: ValidationInfo) -> "ClassifyRequest":
        prompts = len(self.labels) * len(self.templates or DEFAULT_TEMPLATES)
        if prompts > limits_of(info).max_prompts:
            raise ValueError(f"labels x templates is {prompts}, more than the {limits_of(info).max_prompts} allowed")
        return self


class AddTextsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    texts: list[str] = Field(min_length=1)
    ids: list[str] | None = None
    metadata: list[dict[str, Any]] | None = None

    @field_validator("texts")
    @classmethod
    def _texts(cls, value: list[str], info: ValidationInfo) -> list[str]:
        check_at_most(len(value), info, "max_batch_items", "at most {} per request")
        return _check_texts(value, info)


# -- responses ---------------------------------------------------------------------------
class HitOut(BaseModel):
    id: int
    score: float
    kind: Target
    path: str | None = None
    text: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    thumbnail_url: str | None = None
    image_url: str | None = None


class SearchResponse(BaseModel):
    collection: str
    target: Target
    k: int
    offset: int
    has_more: bool
    results: list[HitOut]


class EmbedResponse(BaseModel):
    collection: str
    model: str
    dim: int
    text_vectors: list[list[float]] | None = None
    image_vectors: list[list[float]] | None = None


class PredictionOut(BaseModel):
    label: str
    score: float
    probability: float


class ClassifyResponse(BaseModel):
    collection: str
    model: str
    text_memory: str | None = Field(description="whose text memory the image was read through; null: prompts only")
    predictions: list[PredictionOut]


class CollectionOut(BaseModel):
    name: str
    model: str
    dim: int
    images: int
    texts: int
    removed: int
    skipped: int


class Status(BaseModel):
    status: str
    detail: str | None = None
