"""Request and response bodies of the HTTP API.

The field types (``fields.py``) carry the rules that the OpenAPI schema states too; the
rules across fields (give a text, an image or an item) are stated in each model's schema
beside the validator that enforces them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ..search.classify import DEFAULT_TEMPLATES
from .fields import (
    NOT_BLANK,
    WHOLE,
    AtMost,
    FilterExpression,
    ImageData,
    ItemId,
    NonBlankText,
    Template,
    Text,
    limits_of,
)

Scalar = str | int | float | bool
Target = Literal["image", "text"]
WHERE_DOC = (
    "filters on metadata, applied before ranking; all must hold, with those of `filters`: "
    "`key=value`, `!=`, `<`, `<=`, `>`, `>=` (numbers and times compare as such: `taken>=2023-06-01`), "
    "`key~text` (a case-insensitive substring, or a glob with * ? [ ]), `!~`, `key in a,b`, `key not in a,b`, "
    "`key exists`, `key missing`. Images have width, height, bytes, folder, name, modified and, where the "
    "camera recorded them, taken, make, model, camera, lens, lat, lon, orientation; a JSON sidecar adds its keys"
)


def _present(schema: dict, extra: dict) -> dict:
    """``schema`` without its null option, with ``extra`` constraints."""
    options = [o for o in schema.get("anyOf", [schema]) if o.get("type") != "null"]
    return {**(options[0] if len(options) == 1 else {"anyOf": options}), **extra}


def one_given(*names: str, exclusive: tuple[str, ...] = (), **extra: dict):
    """``json_schema_extra`` for "give at least one of ``names``" (each with its ``extra``
    constraints), and "not all of ``exclusive``". Each branch repeats its field's schema, so
    that a reader generating from one branch alone still makes a valid value."""

    def extend(schema: dict, model: type) -> None:
        properties = schema["properties"]
        schema["anyOf"] = [{"required": [name], "properties": {name: _present(properties[name], extra.get(name, {}))}}
                           for name in names]
        if exclusive:
            schema["not"] = {"required": list(exclusive),
                             "properties": {name: _present(properties[name], {}) for name in exclusive}}

    return extend


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collection: str | None = Field(None, max_length=255, description="collection name; default: the first served")


class SearchRequest(_Request):
    """Search by text, by image, by an item ("more like this"), or by an image plus a text instruction."""

    model_config = ConfigDict(json_schema_extra=one_given("text", "image", "item_id", exclusive=("image", "item_id"),
                                                         text={"pattern": NOT_BLANK, "minLength": 1}))

    text: Text | None = Field(None, description="the query, or the instruction added to an image or item query; "
                                                "one of text, image and item_id is required")
    image: ImageData | None = None
    item_id: ItemId | None = Field(None, description="search with this item of the collection: more like this")
    text_weight: float = Field(0.5, ge=0.0, le=1.0, description="weight of the text when image and text are given")
    target: Target = Field("image", description="the kind of item to find")
    k: Annotated[int, Field(ge=1), AtMost("max_k"), WHOLE] = Field(20, description="results per page")
    offset: Annotated[int, Field(ge=0), AtMost("max_offset"), WHOLE] = Field(
        0, description="results to skip: the page start")
    min_score: float | None = Field(None, ge=-1.0, le=1.0, description="drop results scored below this cosine")
    filters: Annotated[dict[str, Scalar | list[Scalar]], AtMost("max_filters")] = Field(
        default_factory=dict, description="metadata key -> required value, or a list of accepted values")
    where: Annotated[list[FilterExpression], AtMost("max_filters")] = Field(
        default_factory=list, description=WHERE_DOC, examples=[["taken>=2023-06-01", "camera~Pixel"]])

    @model_validator(mode="after")
    def _one_query(self) -> "SearchRequest":
        if self.text is not None and not self.text.strip():
            self.text = None  # no text: an empty instruction beside an image, or nothing at all
        if self.text is None and self.image is None and self.item_id is None:
            raise ValueError("give a text, an image or an item_id to search with")
        if self.image is not None and self.item_id is not None:
            raise ValueError("give an image or an item_id, not both")
        return self


class EmbedRequest(_Request):
    """Texts and/or images to embed with a collection's model; at least one of them."""

    model_config = ConfigDict(json_schema_extra=one_given("texts", "images", texts={"minItems": 1},
                                                         images={"minItems": 1}))

    texts: Annotated[list[Text], AtMost("max_batch_items")] | None = None
    images: Annotated[list[ImageData], AtMost("max_batch_items")] | None = None

    @model_validator(mode="after")
    def _something(self) -> "EmbedRequest":
        if not self.texts and not self.images:
            raise ValueError("give texts or images to embed")
        return self


class ClassifyRequest(_Request):
    """Zero-shot classification of one image against labels. Labels are unique once stripped
    of surrounding white space, and labels x templates (7 templates by default) may be at
    most the server's prompt limit (2000 by default)."""

    image: ImageData
    labels: Annotated[list[NonBlankText], Field(min_length=1, json_schema_extra={"uniqueItems": True}),
                      AtMost("max_labels")]
    templates: Annotated[list[Template], Field(min_length=1), AtMost("max_labels")] | None = Field(
        None, description="prompt templates, each with one '{}' for the label")
    text_memory: bool = Field(True, description="read the image through the model's text memory, if it ships one")

    @field_validator("labels")
    @classmethod
    def _unique(cls, labels: list[str]) -> list[str]:
        if len({label.strip() for label in labels}) != len(labels):
            raise ValueError("labels must be unique")
        return labels

    @model_validator(mode="after")
    def _prompt_count(self, info: ValidationInfo) -> "ClassifyRequest":
        prompts = len(self.labels) * len(self.templates or DEFAULT_TEMPLATES)
        if prompts > limits_of(info).max_prompts:
            raise ValueError(f"labels x templates is {prompts}, more than the {limits_of(info).max_prompts} allowed")
        return self


class TextIn(BaseModel):
    """A text to add, with the id that names it (re-adding an id replaces its text) and metadata."""

    model_config = ConfigDict(extra="forbid")

    text: NonBlankText
    id: str | None = Field(None, description="your id for the text; without one, the text itself identifies it")
    metadata: dict[str, Any] = Field(default_factory=dict)


class AddTextsRequest(BaseModel):
    """Texts to add: each a string, or an object with its id and metadata."""

    model_config = ConfigDict(extra="forbid")

    texts: Annotated[list[NonBlankText | TextIn], Field(min_length=1), AtMost("max_batch_items")]


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


class IndexOut(BaseModel):
    kind: Literal["image", "text"]
    type: str = Field(description="the FAISS index type built (a factory string), or 'exact' before there is one")
    setting: str = Field(description="what the collection asks for: auto or a factory string, and any memory budget")
    items: int = Field(description="live items of this kind")
    indexed: int = Field(description="items in the built index; the others are searched exactly until folded in")
    fresh: int = Field(description="items changed since the index was built")
    bytes_per_vector: float | None = Field(None, description="index files on disk per vector")
    memory_mapped: bool | None = None
    recall_at_10: float | None = Field(None, description="measured at build time against exact search")
    recall_queries: int | None = None
    build_seconds: float | None = None


class CollectionOut(BaseModel):
    name: str
    model: str
    dim: int
    images: int
    texts: int
    removed: int
    skipped: int
    index: list[IndexOut] = Field(default_factory=list, description="the search index of each kind of item")


class Status(BaseModel):
    status: str
    detail: str | None = None


class ErrorOut(BaseModel):
    detail: str = Field(description="what went wrong, in one line")


class FieldError(BaseModel):
    type: str
    loc: list[str | int] = Field(description="where: 'body' or the parameter's place, then the path to the value")
    msg: str


class ValidationErrorOut(BaseModel):
    detail: list[FieldError]
