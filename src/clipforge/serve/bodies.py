"""Reading request bodies: JSON whatever the content type says, or a multipart form.

FastAPI reads a body as JSON only when the content type says so, but clip-retrieval's
clients send JSON with no content type or with ``text/plain``, and the search endpoint takes
an uploaded file as well. So bodies are parsed here, validated against the same pydantic
models (with the server's limits in the validation context), and every failure becomes a
422 that names the field, exactly like FastAPI's own.
"""

from __future__ import annotations

import json
import re
import types
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from .fields import UPLOAD_TOO_LARGE
from .settings import Limits

M = TypeVar("M", bound=BaseModel)
_FORM_PART_BYTES = 64 * 1024  # a form field that is not a file: text, numbers, a JSON filter
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def invalid(loc: tuple, message: str, kind: str = "value_error") -> RequestValidationError:
    return RequestValidationError([{"type": kind, "loc": ("body", *loc), "msg": message}])


def validate(model: type[M], data: Any, limits: Limits, *, strict: bool = True) -> M:
    """``data`` as ``model``; ``strict`` for JSON, whose values carry their types: ``true`` is
    not the id 1 and ``"3"`` is not the count 3. A form is text, and is read laxly."""
    try:
        return model.model_validate(data, strict=strict, context={"limits": limits})
    except ValidationError as e:
        errors = e.errors(include_url=False, include_context=False, include_input=False)
        too_large = next((err for err in errors if err["type"] == UPLOAD_TOO_LARGE), None)
        if too_large is not None:
            raise HTTPException(413, f"{'.'.join(map(str, too_large['loc']))}: {too_large['msg']}") from None
        raise RequestValidationError([{**err, "loc": ("body", *err["loc"])} for err in errors]) from None


def _not_json(constant: str):
    # Python's json reads NaN and Infinity, which JSON has not; a NaN would pass every
    # range check (all comparisons with it are false) and reach the index.
    raise invalid((), f"JSON decode error: {constant} is not a JSON value", "json_invalid")


def _check_text(data: Any) -> None:
    # JSON's \u escapes can spell half of a UTF-16 surrogate pair, which is no character:
    # Python keeps it in a str that cannot be encoded, and a tokenizer or SQLite fails on it.
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise invalid((), "JSON decode error: a string holds a lone UTF-16 surrogate (\\ud800-\\udfff), "
                          "which is not a character", "json_invalid") from None


async def json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise invalid((), "a JSON body is required", "missing")
    try:
        data = json.loads(raw, parse_constant=_not_json)
    except json.JSONDecodeError as e:
        raise invalid((e.pos,), f"JSON decode error: {e.msg}", "json_invalid") from None
    except (UnicodeDecodeError, RecursionError):
        raise invalid((), "JSON decode error: not UTF-8, or nested too deeply", "json_invalid") from None
    if _SURROGATE_ESCAPE.search(raw):  # the full check only for bodies that may need it
        _check_text(data)
    return data


async def parse_body(request: Request, model: type[M], limits: Limits, multipart: bool = False) -> M:
    """The body as ``model``: JSON, or (where ``multipart``) a form, multipart or URL-encoded."""
    content_type = request.headers.get("content-type", "").lower()
    if multipart and content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        return validate(model, await _form_data(request, model, limits), limits, strict=False)
    return validate(model, await json_body(request), limits)


def _shape(annotation: Any) -> str:
    """'list', 'dict' or 'scalar': how a form field maps onto a model field."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        shapes = {_shape(a) for a in get_args(annotation) if a is not type(None)}
        return shapes.pop() if len(shapes) == 1 else "scalar"
    if origin is Annotated:
        return _shape(get_args(annotation)[0])
    if origin is list or annotation is list:
        return "list"
    if origin is dict or annotation is dict:
        return "dict"
    return "scalar"


async def _form_data(request: Request, model: type[BaseModel], limits: Limits) -> dict[str, Any]:
    form = await request.form(max_files=limits.max_batch_items, max_fields=256, max_part_size=_FORM_PART_BYTES)
    data: dict[str, Any] = {}
    for name in dict.fromkeys(form.keys()):
        field = model.model_fields.get(name)
        shape = _shape(field.annotation) if field else "scalar"
        values = []
        for value in form.getlist(name):
            if isinstance(value, UploadFile):
                value = await value.read() if value.filename or value.size else ""
            # A browser sends an empty field for an input left blank: no value. An empty
            # entry of a list is a value, and is judged as one.
            if value != "" or shape == "list":
                values.append(value)
        if not values:
            continue
        if shape == "list":
            data[name] = values
        elif shape == "dict":
            data[name] = _json_field(name, values[-1])
        else:
            data[name] = values[0] if len(values) == 1 else values
    return data


def _json_field(name: str, value: Any) -> Any:
    try:
        return json.loads(value)
    except (json.JSONDecodeError, TypeError, UnicodeDecodeError, RecursionError):
        raise invalid((name,), "must be a JSON object", "json_invalid") from None
