"""Field types of the request bodies: each rule is stated once, and both the validation and
the OpenAPI schema come from it, so that what the schema allows is what the server accepts.

Limits that are server settings (``k`` at most ``max_k``, a text at most ``max_text_chars``)
are read from the ``limits`` in the validation context, and written into the schema as a
placeholder that ``openapi.py`` resolves with the server's own ``Limits``.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, GetCoreSchemaHandler, GetJsonSchemaHandler, ValidationInfo
from pydantic_core import PydanticCustomError, core_schema

from ..errors import InputError
from ..index import where
from .settings import MAX_ITEM_ID, Limits

LIMIT_KEY = "x-clipforge-limit"  # a placeholder in generated schemas: which Limits field bounds this
DIMENSION_KEY = "x-clipforge-dimension"  # a placeholder: this array is a vector of the collection's dimension
IMAGE_FORMAT = "image"  # the OpenAPI format of an encoded image in a JSON body
UPLOAD_TOO_LARGE = "upload_too_large"  # the one validation error answered with 413, not 422
_DEFAULT_LIMITS = Limits()
_DATA_URL = re.compile(r"^data:[\w/+.-]*(;[\w=.-]+)*;base64,", re.ASCII)

# Somewhere, a character that str.strip() would not strip (``where.SPACE`` spells them out:
# JSON Schema's \s, ECMA-262's, differs from Python's in both directions).
NOT_BLANK = f"[^{where.SPACE}]"
ONE_SLOT = r"^[^{}]*\{\}[^{}]*$"  # a prompt template: one '{}' for the label, no other brace


def limits_of(info: ValidationInfo) -> Limits:
    return (info.context or {}).get("limits", _DEFAULT_LIMITS)


@dataclass(frozen=True)
class AtMost:
    """At most the server's ``limit`` (a ``Limits`` field): the value of a number, the length
    of a text, the items of a list or the entries of an object."""

    limit: str

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.with_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> dict:
        json_schema = handler(schema)
        json_schema[LIMIT_KEY] = self.limit
        return json_schema

    def _check(self, value: Any, info: ValidationInfo) -> Any:
        most = getattr(limits_of(info), self.limit)
        if isinstance(value, (int, float)):
            if value > most:
                raise ValueError(f"may be at most {most}")
        elif len(value) > most:
            unit = "characters" if isinstance(value, str) else "entries" if isinstance(value, dict) else "items"
            raise ValueError(f"may have at most {most} {unit}")
        return value


# The keyword that bounds each JSON type, for resolving LIMIT_KEY.
LIMIT_KEYWORDS = {"integer": "maximum", "number": "maximum", "string": "maxLength", "array": "maxItems",
                  "object": "maxProperties"}


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or only white space")
    return value


def _one_slot(template: str) -> str:
    if not re.fullmatch(ONE_SLOT, template):
        raise ValueError("a template holds exactly one '{}', where the label goes, and no other brace")
    return template


def _readable_filter(expression: str) -> str:
    try:
        where.parse(expression)
    except InputError as e:
        raise ValueError(str(e)) from None
    return expression


Text = Annotated[str, AtMost("max_text_chars")]
# The patterns are for the schema; the checks above give the clearer messages.
NonBlankText = Annotated[str, AfterValidator(_not_blank),
                         Field(json_schema_extra={"pattern": NOT_BLANK, "minLength": 1}), AtMost("max_text_chars")]
Template = Annotated[str, AfterValidator(_one_slot), Field(json_schema_extra={"pattern": ONE_SLOT}),
                     AtMost("max_text_chars")]
# The pattern is the parser's own grammar (``index.where.EXPRESSION``): the schema allows what the server reads.
FilterExpression = Annotated[str, AfterValidator(_readable_filter),
                             Field(json_schema_extra={"pattern": where.EXPRESSION}), AtMost("max_text_chars")]


def _whole(value: Any) -> Any:
    # JSON Schema's integer is any number without a fraction, 92.0 as much as 92, and a
    # client's JSON library may write either. true and "3" stay refused (JSON is strict).
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Last in an Annotated, after the bounds: bounds laid over a function validator would reach
# the JSON schema as "ge"/"le", which no schema reader knows, instead of minimum/maximum.
WHOLE = BeforeValidator(_whole)
ItemId = Annotated[int, Field(ge=0, le=MAX_ITEM_ID), WHOLE]


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


_ONE_PIXEL_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR42mM4UaEBAAN0AWn1BwN7AAAAAElFTkSuQmCC"


class _ImageSchema:
    """An encoded image: the schema says so (``format: image``) beside the base64 string."""

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> dict:
        return {"type": "string", "format": IMAGE_FORMAT, "contentEncoding": "base64", "contentMediaType": "image/*",
                "description": "an encoded image (JPEG, PNG, WebP, ...) in base64, or a data: URL",
                "examples": [_ONE_PIXEL_PNG]}


ImageData = Annotated[bytes, BeforeValidator(_decode_image), AfterValidator(_check_upload_size), _ImageSchema()]
