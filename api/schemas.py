"""Response bodies (msgspec) and the request forms, each written once for both parsing and the OpenAPI document."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema

from api.errors import ApiError

LANGUAGES = ("zh", "can", "en", "ja", "ko")
SYNTH_LANGUAGES = LANGUAGES + ("yue", "all_zh", "all_can", "all_yue", "all_ja", "all_ko", "auto", "auto_yue")


# --- responses -------------------------------------------------------------------------------------------------------
class ErrorBody(msgspec.Struct):
    detail: str
    code: str
    status: int


class Queued(msgspec.Struct):
    message: str
    task_id: str
    file_id: str | None = None


class Revised(msgspec.Struct):
    success: bool
    message: str
    file_id: str
    version: str
    asr: list[dict[str, Any]]


class RefOut(msgspec.Struct):
    file_id: str
    seconds: float
    sample_rate: int
    text: str | None
    language: str | None
    filename: str
    created: float


class RefPage(msgspec.Struct):
    items: list[RefOut]
    total: int
    offset: int
    limit: int


class TaskOut(msgspec.Struct):
    task_id: str
    kind: str
    status: str  # PENDING STARTED PROGRESS SUCCESS FAILURE REVOKED
    progress: float
    stage: str | None
    results: dict[str, Any] | None
    error: str | None
    time: str


class ModelOut(msgspec.Struct):
    model_id: str
    version: str | None
    epochs: dict[str, Any]
    file_id: str | None
    dataset_version: str | None
    sample_rate: int | None
    created: int | None
    run_id: str | None
    registered: list[dict[str, Any]]
    metrics: dict[str, float | None]  # null: a metric without a value (NaN), e.g. no clip to score
    resumed_from: str | None = None


class ModelPage(msgspec.Struct):
    items: list[ModelOut]
    next_page_token: str | None


class Deleted(msgspec.Struct):
    message: str
    id: str


class Health(msgspec.Struct):
    status: str  # ok | degraded
    broker: bool
    tracking: bool
    records: bool
    workers: int | None  # None: the broker cannot be asked (sqlite)
    embedded_workers: int
    version: str


def error_responses(*codes: int) -> dict[int, ResponseSpec]:
    """The error answers an endpoint documents (all share :class:`ErrorBody`); 400 always (a malformed request)."""
    names = {400: "malformed request", 401: "API key missing or wrong", 404: "unknown id", 409: "not ready",
             410: "expired", 413: "body too large", 415: "unsupported media type", 422: "invalid parameter",
             429: "too many unfinished tasks", 503: "broker or store unreachable"}  # fmt: skip
    return {c: ResponseSpec(data_container=ErrorBody, description=names[c]) for c in sorted({400, *codes})}


# --- request forms ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    """One form / JSON field: its type, bounds, default and description."""

    name: str
    kind: str = "str"  # str | int | float | bool | file | json
    required: bool = False
    default: Any = None
    description: str = ""
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    pattern: str | None = None  # documented only: the controller checks the id and names its format

    def schema(self, json_body: bool = False) -> Schema:
        """The field in the OpenAPI document (``json_body``: a JSON field may be the value itself, not its text)."""
        types = {"str": OpenAPIType.STRING, "int": OpenAPIType.INTEGER, "float": OpenAPIType.NUMBER,
                 "bool": OpenAPIType.BOOLEAN, "file": OpenAPIType.STRING, "json": OpenAPIType.STRING}  # fmt: skip
        if json_body and self.kind == "json":
            return Schema(one_of=[Schema(type=OpenAPIType.ARRAY), Schema(type=OpenAPIType.STRING)],
                          description=self.description or None)  # fmt: skip
        return Schema(
            type=types[self.kind],
            format="binary" if self.kind == "file" else None,
            description=self.description or None,
            default=self.default,
            enum=list(self.choices) or None,
            minimum=self.minimum,
            maximum=self.maximum,
            max_length=self.max_length,
            min_length=1 if self.required and self.kind == "str" else None,
            pattern=self.pattern,
        )

    def parse(self, raw: str | None):
        if raw is None or (raw == "" and self.kind != "str"):
            if self.required:
                raise ApiError(422, "missing", f"{self.name} is required", name=self.name)
            return self.default
        try:
            value = _convert(self.kind, raw)
        except ValueError as exc:
            raise ApiError(422, "invalid", f"{self.name}: {exc}", name=self.name) from None
        self._check(value)
        return value

    def _check(self, value) -> None:
        def bad(why: str) -> ApiError:
            return ApiError(422, "invalid", f"{self.name} {why}", name=self.name)

        if self.required and self.kind == "str" and not value.strip():
            raise bad("must not be empty")
        if self.choices and value not in self.choices:
            raise bad(f"is {value!r}; accepted: {', '.join(self.choices)}")
        if self.minimum is not None and value < self.minimum:
            raise bad(f"must be >= {self.minimum:g}")
        if self.maximum is not None and value > self.maximum:
            raise bad(f"must be <= {self.maximum:g}")
        if self.max_length is not None and isinstance(value, str) and len(value) > self.max_length:
            raise bad(f"is longer than {self.max_length} characters")


def _convert(kind: str, raw: str):
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            value = float(raw)  # 1e3, 5.0
        if not value.is_integer():
            raise ValueError(f"{raw[:100]!r} is not an integer")
        return int(value)
    if kind == "float":
        value = float(raw)
        if not math.isfinite(value):
            raise ValueError(f"{raw[:100]!r} is not a finite number")
        return value
    if kind == "bool":
        lowered = raw.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"{raw[:100]!r} is not a boolean (true/false)")
    if kind == "json":
        try:
            return json.loads(raw)
        except (ValueError, RecursionError) as exc:  # also too deep, or an integer of over 4300 digits
            raise ValueError(f"not valid JSON ({str(exc)[:200]})") from None
    return raw


class Form:
    """A request form: parses a :class:`~api.uploads.Body` and describes itself to OpenAPI."""

    def __init__(self, *fields: Field, json_body: bool = True):
        self.fields = {f.name: f for f in fields}
        self.json_body = json_body and not any(f.kind == "file" for f in fields)

    def parse(self, values: dict[str, str]) -> dict[str, Any]:
        unknown = sorted(set(values) - set(self.fields))
        if unknown:
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            shown = ", ".join(repr(u[:40]) for u in unknown[:5]) + more
            raise ApiError(422, "invalid", f"unknown field(s) {shown}; accepted: {', '.join(self.fields)}",
                           name=unknown[0][:40])  # fmt: skip
        return {f.name: f.parse(values.get(f.name)) for f in self.fields.values() if f.kind != "file"}

    def operation(self) -> type[Operation]:
        """An :class:`Operation` subclass whose request body is this form (multipart, urlencoded, JSON)."""
        required = [f.name for f in self.fields.values() if f.required] or None

        def schema(json_body: bool) -> Schema:
            props = {f.name: f.schema(json_body) for f in self.fields.values()}
            return Schema(type=OpenAPIType.OBJECT, properties=props, required=required, additional_properties=False)

        content = {"multipart/form-data": OpenAPIMediaType(schema=schema(False))}
        if not any(f.kind == "file" for f in self.fields.values()):
            content["application/x-www-form-urlencoded"] = OpenAPIMediaType(schema=schema(False))
        if self.json_body:
            content["application/json"] = OpenAPIMediaType(schema=schema(True))

        class FormOperation(Operation):
            # Operation is a dataclass without __post_init__: its __init__ would never call one defined here
            def __init__(self, *args, **kwargs) -> None:
                super().__init__(*args, **kwargs)
                self.request_body = RequestBody(content=content, required=True)

        return FormOperation
