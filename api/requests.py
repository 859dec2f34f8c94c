"""Request shapes as msgspec structs: one per request, shared by its multipart, urlencoded, JSON and query variants.

Bounds and defaults are written once, as ``Annotated[..., Meta(...)]``; the synthesis parameters come from the
library's :class:`~mockvox.infer.pipeline.SynthesisParams` (its fields' ``bounds``), not from a copy. The OpenAPI
document is generated from the same structs (:mod:`api.openapi`).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta

from api.errors import ApiError
from api.services import MODEL_ID_RE, MODEL_URI_RE
from mockvox.audio.encode import FORMATS as ENCODINGS
from mockvox.data.asr import DATASET_LANGUAGES
from mockvox.data.ids import FILE_ID_RE
from mockvox.infer.pipeline import LANGUAGES as SYNTH_LANGUAGES
from mockvox.infer.pipeline import SynthesisParams
from mockvox.infer.streaming import MODES as STREAM_MODES

Language = Literal[DATASET_LANGUAGES]  # type: ignore[valid-type]  (the library's tuples, written once)
SynthLanguage = Literal[SYNTH_LANGUAGES]  # type: ignore[valid-type]
FileId = Annotated[str, Meta(pattern=FILE_ID_RE.pattern, description="a dataset or reference id")]
ModelRef = Annotated[str, Meta(pattern=f"{MODEL_ID_RE.pattern}|{MODEL_URI_RE.pattern}",
                               description="m-<32 hex>, models:/NAME@ALIAS or models:/NAME/VERSION")]  # fmt: skip
Epochs = Annotated[int, Meta(ge=1, le=1000)]
Text = Annotated[str, Meta(min_length=1, max_length=10000, pattern=r"\S", description="at most limits.text_chars")]
RefText = Annotated[str, Meta(max_length=2000)]
CallbackUrl = Annotated[str, Meta(max_length=2000, description="POSTed a signed JSON when the task ends")]
Overrides = list[Annotated[str, Meta(max_length=500)]] | dict[str, str | int | float | bool | None]
Base = dict(forbid_unknown_fields=True, kw_only=True)


class UploadForm(msgspec.Struct, **Base):
    language: Language = "zh"
    denoise: bool = True
    callback_url: CallbackUrl | None = None


class AddForm(msgspec.Struct, **Base):
    file_id: FileId
    callback_url: CallbackUrl | None = None


class RevisionItem(msgspec.Struct):  # other members (a manifest item's) are ignored
    key: Annotated[str, Meta(max_length=64)]
    text: Annotated[str, Meta(max_length=10000)]


class RevisionBody(msgspec.Struct, **Base):
    file_id: FileId
    results: Annotated[list[RevisionItem], Meta(description='[{"key", "text"}]; keys not named keep their text')]
    remove: Annotated[list[Annotated[str, Meta(max_length=64)]], Meta(description="slice keys to drop")] = []


class TrainBody(msgspec.Struct, **Base):
    file_id: FileId
    epochs_sovits: Epochs = 1
    epochs_gpt: Epochs = 1
    version: Literal["v2", "v4"] = "v4"
    denoised: Annotated[bool, Meta(description="train on the denoised slices")] = True
    overrides: Annotated[Overrides, Meta(description="key=value list or object, keys of the allow-list")] = []
    callback_url: CallbackUrl | None = None


class ResumeBody(msgspec.Struct, **Base):
    model_id: ModelRef
    epochs_sovits: Epochs = 2
    epochs_gpt: Epochs = 2
    overrides: Annotated[Overrides, Meta(description="key=value list or object, keys of the allow-list")] = []
    callback_url: CallbackUrl | None = None


class RefForm(msgspec.Struct, **Base):
    text: Annotated[RefText, Meta(description="its transcript (default for ref_text)")] | None = None
    language: Language | None = None


def _synthesis_fields() -> list[tuple[str, Any, Any]]:
    """The client's synthesis parameters: SynthesisParams' fields that carry ``bounds``, with them."""
    out = []
    for f in dataclasses.fields(SynthesisParams):
        bounds = f.metadata.get("bounds")
        if bounds is None:
            continue
        kind = f.metadata.get("choices")
        if kind is not None:
            annotation: Any = Literal[tuple(kind)]  # type: ignore[valid-type]
        else:
            base = int if f.type in ("int", "int | None") else float
            annotation = Annotated[base, Meta(**bounds, description=f.metadata.get("doc", ""))]
        if "None" in str(f.type):
            annotation = annotation | None
        out.append((f.name, annotation, f.default))
    return out


SynthesisFields = msgspec.defstruct("SynthesisFields", _synthesis_fields(), **Base)


class SynthesisRequest(SynthesisFields, **Base):
    model_id: ModelRef
    target_text: Text
    ref_audio_file_id: Annotated[FileId, Meta(description="from /uploadRef; absent: the voice's own")] | None = None
    ref_text: RefText | None = None
    ref_language: SynthLanguage | None = None
    target_language: SynthLanguage = "zh"


AUDIO_FORMATS = tuple(ENCODINGS)
StreamMode = Literal[STREAM_MODES + ("0", "1", "2", "3", "true", "false")]  # type: ignore[valid-type]


FirstChunk = Annotated[int, Meta(ge=1, le=200, description="GPT tokens before the first chunk")]
ChunkLength = Annotated[int, Meta(ge=2, le=400, description="tokens per chunk (fixed) / before a cut (token)")]
ModeChoice = Annotated[StreamMode, Meta(description="whole | fragment | token | fixed (upstream's 0-3); absent: token")]


class StreamQuery(SynthesisRequest, **Base):
    media_type: Annotated[Literal[AUDIO_FORMATS], Meta(description="wav (default), mp3, opus, aac, flac, pcm")] = "wav"  # type: ignore[valid-type]
    streaming_mode: ModeChoice | None = None
    first_chunk_length: FirstChunk | None = None
    min_chunk_length: ChunkLength | None = None


class InferenceBody(SynthesisRequest, **Base):
    callback_url: CallbackUrl | None = None


_FILE_ID = "expected YYYYmmddHHMMSSffffff.<8 hex>.<32 hex>"
FORMATS = {"file_id": _FILE_ID, "ref_audio_file_id": _FILE_ID, "target_text": "must not be blank",
           "model_id": "expected m-<32 hex>, models:/NAME@ALIAS or models:/NAME/VERSION"}  # fmt: skip
SYNTHESIS_NAMES = tuple(name for name, _, _ in _synthesis_fields())
S = TypeVar("S", bound=msgspec.Struct)


def parse(fields: dict[str, str], shape: type[S]) -> S:
    """Form fields (text) as ``shape``: JSON text where the shape wants a list or an object, numbers and booleans
    from their text; 422 naming the field and what it accepts."""
    values: dict[str, Any] = {}
    for name, raw in fields.items():
        if name in _containers(shape) and raw.lstrip()[:1] in ("[", "{"):
            try:
                values[name] = json.loads(raw)
            except (ValueError, RecursionError):
                raise ApiError(422, "invalid", f"{name[:40]}: not valid JSON", name=name[:40]) from None
        elif raw != "" or name in _strings(shape):
            values[name] = raw
    try:
        return msgspec.convert(values, shape, strict=False)
    except msgspec.ValidationError as exc:
        raise validation_error(exc) from None


def validation_error(exc: msgspec.ValidationError) -> ApiError:
    """msgspec's message as a 422 that names the field (``missing`` for a required one not given)."""
    text = str(exc)
    if text.startswith("Object missing required field"):
        name = text.split("`")[1]
        return ApiError(422, "missing", f"{name} is required", name=name)
    if text.startswith("Object contains unknown field"):
        name = text.split("`")[1][:40]
        return ApiError(422, "invalid", f"unknown field {name!r}", name=name)
    path = text.rsplit(" - at `", 1)
    name = path[1].rstrip("`").removeprefix("$.").split("[")[0].split(".")[0] if len(path) == 2 else "body"
    why = FORMATS.get(name, "not in its format") if "matching regex" in path[0] else path[0][:300]
    return ApiError(422, "invalid", f"{name}: {why}", name=name)


def _containers(shape: type[msgspec.Struct]) -> set[str]:
    info = msgspec.inspect.type_info(shape)
    return {f.name for f in info.fields if _is_container(f.type)}


def _strings(shape: type[msgspec.Struct]) -> set[str]:
    info = msgspec.inspect.type_info(shape)
    return {f.name for f in info.fields if isinstance(_bare(f.type), msgspec.inspect.StrType)}


def _bare(t):
    while isinstance(t, msgspec.inspect.Metadata):
        t = t.type
    return t


def _is_container(t) -> bool:
    t = _bare(t)
    if isinstance(t, msgspec.inspect.UnionType):
        return any(_is_container(x) for x in t.types)
    return isinstance(t, msgspec.inspect.ListType | msgspec.inspect.DictType)


def params_of(request: msgspec.Struct) -> dict[str, Any]:
    """The synthesis parameters a request gave, by name (SynthesisParams' keywords)."""
    return {name: getattr(request, name) for name in SYNTHESIS_NAMES}
