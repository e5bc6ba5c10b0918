"""Reading request bodies: JSON whatever the content type says, or a multipart form.

FastAPI reads a body as JSON only when the content type says so, but clip-retrieval's
clients send JSON with no content type or with ``text/plain``, and the search endpoint takes
an uploaded file as well. So bodies are parsed here, validated against the same pydantic
models (with the server's limits in the validation context), and every failure becomes a
422 that names the field, exactly like FastAPI's own.
"""

from __future__ import annotations

import copy
import json
import types
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from .schemas import UPLOAD_TOO_LARGE
from .settings import Limits

M = TypeVar("M", bound=BaseModel)
_FORM_PART_BYTES = 64 * 1024  # a form field that is not a file: text, numbers, a JSON filter


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


async def json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise invalid((), "a JSON body is required", "missing")
    try:
        return json.loads(raw, parse_constant=_not_json)
    except json.JSONDecodeError as e:
        raise invalid((e.pos,), f"JSON decode error: {e.msg}", "json_invalid") from None
    except (UnicodeDecodeError, RecursionError):
        raise invalid((), "JSON decode error: not UTF-8, or nested too deeply", "json_invalid") from None


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
        values = []
        for value in form.getlist(name):
            if isinstance(value, UploadFile):
                value = await value.read() if value.filename or value.size else ""
            if value != "":  # a browser sends empty fields for inputs left blank
                values.append(value)
        if not values:
            continue
        field = model.model_fields.get(name)
        shape = _shape(field.annotation) if field else "scalar"
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


# -- documentation -----------------------------------------------------------------------
def body_doc(model: type[BaseModel], multipart: bool = False) -> dict[str, Any]:
    """``openapi_extra`` declaring the bodies ``parse_body`` reads (see ``add_body_schemas``)."""
    content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}
    if multipart:
        content["multipart/form-data"] = {"schema": {"$ref": f"#/components/schemas/{model.__name__}Form"}}
    return {"requestBody": {"required": True, "content": content}}


def _is_image(schema: dict) -> bool:
    options = schema.get("anyOf", [schema])
    return any(o.get("contentEncoding") == "base64" for o in options)


def _is_object(schema: dict) -> bool:
    return any(o.get("type") == "object" for o in schema.get("anyOf", [schema]))


def form_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The multipart variant of ``model``'s schema: files for images, JSON text for objects."""
    schema = copy.deepcopy(model.model_json_schema(ref_template="#/components/schemas/{model}"))
    for name, prop in schema.get("properties", {}).items():
        if _is_image(prop):
            schema["properties"][name] = {"type": "string", "format": "binary", "description": "an image file"}
        elif _is_object(prop):
            schema["properties"][name] = {"type": "string", "description": f"{name} as a JSON object"}
    schema["title"] = f"{model.__name__}Form"
    schema.pop("additionalProperties", None)
    return schema


def add_body_schemas(openapi: dict[str, Any], models: list[type[BaseModel]],
                     form_models: list[type[BaseModel]]) -> None:
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    for model in form_models:
        schema = form_schema(model)
        schemas.update(schema.pop("$defs", {}))
        schemas[f"{model.__name__}Form"] = schema
