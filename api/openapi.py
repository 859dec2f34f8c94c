"""The OpenAPI document of the request structs (:mod:`api.requests`): request bodies for handlers that read their
body as it streams (multipart, urlencoded, JSON) and query parameters, generated from msgspec's JSON Schema."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.enums import ParamType
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, Parameter, RequestBody, Schema

_TYPES = {"string": OpenAPIType.STRING, "integer": OpenAPIType.INTEGER, "number": OpenAPIType.NUMBER,
          "boolean": OpenAPIType.BOOLEAN, "array": OpenAPIType.ARRAY, "object": OpenAPIType.OBJECT,
          "null": OpenAPIType.NULL}  # fmt: skip
_KEYS = {"minimum": "minimum", "maximum": "maximum", "exclusiveMinimum": "exclusive_minimum",
         "exclusiveMaximum": "exclusive_maximum", "minLength": "min_length", "maxLength": "max_length",
         "pattern": "pattern", "enum": "enum", "default": "default", "description": "description",
         "format": "format", "minItems": "min_items", "maxItems": "max_items"}  # fmt: skip


def _schema(node: dict[str, Any], defs: dict[str, Any], as_text: bool = False) -> Schema:
    """One JSON Schema node as Litestar's :class:`Schema` (``as_text``: a list or object sent as JSON text, as a form
    field carries it)."""
    if "$ref" in node:
        return _schema(defs[node["$ref"].rsplit("/", 1)[-1]], defs, as_text)
    extra = {_KEYS[k]: v for k, v in node.items() if k in _KEYS}
    if "anyOf" in node:
        if as_text and any(n.get("type") in ("array", "object") or "$ref" in n for n in node["anyOf"]):
            return Schema(type=OpenAPIType.STRING, description=_json_text(node.get("description")))
        return Schema(one_of=[_schema(n, defs, as_text) for n in node["anyOf"]], **extra)
    kind = node.get("type")
    if as_text and kind in ("array", "object"):
        return Schema(type=OpenAPIType.STRING, description=_json_text(node.get("description")))
    props = {k: _schema(v, defs) for k, v in node.get("properties", {}).items()} or None
    items = _schema(node["items"], defs) if "items" in node else None
    additional = node.get("additionalProperties")
    if isinstance(additional, dict):
        additional = _schema(additional, defs)
    return Schema(type=_TYPES.get(kind) if kind else None, properties=props, required=node.get("required"),
                  items=items, additional_properties=additional, **extra)  # fmt: skip


def _json_text(description: str | None) -> str:
    return f"{description} (JSON text)" if description else "JSON text"


def _struct(shape: type[msgspec.Struct]) -> tuple[dict[str, Any], dict[str, Any]]:
    document = msgspec.json.schema(shape)
    defs = document.get("$defs", {})
    return defs[document["$ref"].rsplit("/", 1)[-1]], defs


def body_schema(shape: type[msgspec.Struct], form: bool, files: dict[str, str] | None = None) -> Schema:
    node, defs = _struct(shape)
    props = {k: _schema(v, defs, as_text=form) for k, v in node.get("properties", {}).items()}
    required = list(node.get("required", []))
    for name, description in (files or {}).items():
        props = {name: Schema(type=OpenAPIType.STRING, format="binary", description=description), **props}
        required.insert(0, name)
    return Schema(type=OpenAPIType.OBJECT, properties=props, required=required or None, additional_properties=False)


def body_operation(shape: type[msgspec.Struct], files: dict[str, str] | None = None) -> type[Operation]:
    """An :class:`Operation` whose request body is ``shape``: multipart (with ``files``), and without files also
    urlencoded and JSON."""
    content = {"multipart/form-data": OpenAPIMediaType(schema=body_schema(shape, True, files))}
    if not files:
        content["application/x-www-form-urlencoded"] = OpenAPIMediaType(schema=body_schema(shape, True))
        content["application/json"] = OpenAPIMediaType(schema=body_schema(shape, False))

    class BodyOperation(Operation):
        # Operation is a dataclass without __post_init__: its __init__ would never call one defined here
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.request_body = RequestBody(content=content, required=True)

    return BodyOperation


def query_operation(shape: type[msgspec.Struct]) -> type[Operation]:
    """An :class:`Operation` whose query parameters are ``shape``'s fields."""
    node, defs = _struct(shape)
    required = set(node.get("required", []))
    parameters = [
        Parameter(name=name, param_in=ParamType.QUERY, required=name in required, schema=_schema(value, defs))
        for name, value in node.get("properties", {}).items()
    ]

    class QueryOperation(Operation):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.parameters = [*parameters, *(self.parameters or [])]

    return QueryOperation
