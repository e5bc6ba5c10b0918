"""The OpenAPI document: what this server accepts and every answer it gives.

FastAPI documents what it parses itself; the bodies here are parsed by ``bodies.py`` (JSON
whatever the content type, or a form), so their schemas are added from the same pydantic
models, with this server's limits and vector dimension filled in. Each route declares the
errors it can answer (``errors(404, 422)``); the 408 of the deadline applies to every one.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from .fields import DIMENSION_KEY, IMAGE_FORMAT, LIMIT_KEY, LIMIT_KEYWORDS
from .schemas import ErrorOut, ValidationErrorOut
from .settings import Limits

BEARER = "bearer"
_MEANINGS = {
    400: "The input is well formed but cannot be used: an image that does not decode or has too many pixels, "
         "a query that says nothing.",
    401: "The write token is missing or wrong.",
    403: "Refused by this server's configuration: writes are disabled, or it does not fetch URLs.",
    404: "No such collection, item or file.",
    408: "The request took longer than the server's time limit; its work was stopped.",
    409: "The collection is in a state that refuses the change (another writer holds it, say).",
    413: "The body, or an image in it, is larger than the server's limit.",
    422: "The body or a parameter is not valid; the detail names each problem and where it is.",
    503: "The models are still loading, or could not be loaded.",
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route that can answer these error statuses."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        model = ValidationErrorOut if status == 422 else ErrorOut
        responses[status] = {"model": model, "description": _MEANINGS[status]}
        if status == 503:
            responses[status]["headers"] = _RETRY_AFTER
    return responses


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def body_doc(model: type[BaseModel], multipart: bool = False) -> dict[str, Any]:
    """``openapi_extra`` declaring the bodies ``parse_body`` reads: JSON, and maybe a form."""
    content: dict[str, Any] = {"application/json": {"schema": _ref(model.__name__)}}
    if multipart:
        encoding = {name: {"contentType": "image/*" if _is_image(prop) else "application/json"}
                    for name, prop in _schema_of(model).get("properties", {}).items()
                    if _is_image(prop) or _is_object(prop)}
        content["multipart/form-data"] = {"schema": _ref(f"{model.__name__}Form"), "encoding": encoding}
    return {"requestBody": {"required": True, "content": content}}


def _schema_of(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(ref_template="#/components/schemas/{model}")


def _options(schema: dict) -> list[dict]:
    return schema.get("anyOf", [schema])


def _is_image(schema: dict) -> bool:
    return any(o.get("format") == IMAGE_FORMAT for o in _options(schema))


def _is_object(schema: dict) -> bool:
    return any(o.get("type") == "object" for o in _options(schema))


_FORM_SCALARS = ("string", "integer", "number", "boolean")
_BLANK_FIELD = {"const": "", "description": "an empty field, read as absent"}


def form_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The multipart variant of ``model``'s schema: images are files, objects JSON parts
    (``body_doc`` gives their encodings), nothing is null, which a form cannot say, and an
    optional field may be empty."""
    schema = copy.deepcopy(_schema_of(model))
    for name, prop in schema.get("properties", {}).items():
        if _is_image(prop):
            schema["properties"][name] = {"type": "string", "format": "binary", "description": "an image file"}
            continue
        if "anyOf" in prop:
            options = [o for o in prop["anyOf"] if o.get("type") != "null"]
            prop.pop("default", None)
            if len(options) == 1:
                prop.update(options[0])
                del prop["anyOf"]
            else:
                prop["anyOf"] = options
        if name not in schema.get("required", []) and schema["properties"][name].get("type") in _FORM_SCALARS:
            # A browser sends an input left blank as an empty field; the server reads it as absent.
            schema["properties"][name] = {"anyOf": [schema["properties"][name], _BLANK_FIELD]}
    # A file part is a file, not a string: the rules across fields can only ask that it be there.
    images = {name for name, prop in _schema_of(model).get("properties", {}).items() if _is_image(prop)}
    for rule in [*schema.get("anyOf", []), *([schema["not"]] if "not" in schema else [])]:
        for name in images & set(rule.get("properties", {})):
            rule["properties"][name] = {}
    schema["title"] = f"{model.__name__}Form"
    return schema


def _resolve(node: Any, limits: Limits, dimensions: set[int]) -> None:
    """Fill the placeholders the field types left: the server's limits, the vector dimension."""
    if isinstance(node, dict):
        limit = node.pop(LIMIT_KEY, None)
        if limit is not None:
            keyword, most = LIMIT_KEYWORDS[node["type"]], getattr(limits, limit)
            node[keyword] = min(node.get(keyword, most), most)
        if node.pop(DIMENSION_KEY, None) and dimensions:
            node["minItems"], node["maxItems"] = min(dimensions), max(dimensions)
        for value in node.values():
            _resolve(value, limits, dimensions)
    elif isinstance(node, list):
        for value in node:
            _resolve(value, limits, dimensions)


def build_openapi(app: FastAPI, bodies: list[type[BaseModel]], forms: list[type[BaseModel]], limits: Limits,
                  dimensions: set[int]) -> dict[str, Any]:
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in bodies:
        body = _schema_of(model)
        schemas.update(body.pop("$defs", {}))
        schemas[model.__name__] = body
    for model in forms:
        form = form_schema(model)
        schemas.update(form.pop("$defs", {}))
        schemas[f"{model.__name__}Form"] = form
    components["securitySchemes"] = {BEARER: {"type": "http", "scheme": "bearer",
                                              "description": "the server's write token"}}
    for operations in schema["paths"].values():
        for operation in operations.values():
            operation["responses"].setdefault("408", {"description": _MEANINGS[408],
                                                      "content": {"application/json": {"schema": _ref("ErrorOut")}}})
    schemas.setdefault("ErrorOut", _schema_of(ErrorOut))
    _resolve(schema, limits, dimensions)
    return schema


def install_openapi(app: FastAPI, bodies: list[type[BaseModel]], forms: list[type[BaseModel]], limits: Limits,
                    dimensions: set[int]) -> None:
    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app, bodies, forms, limits, dimensions)
        return app.openapi_schema

    app.openapi = openapi
