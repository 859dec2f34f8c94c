"""Read and write GPT-SoVITS checkpoint formats (facts from ``GPT_SoVITS/process_ckpt.py`` and ``s1_train.py``).

* GPT ``.ckpt``: ``{"weight": {"model.<key>": tensor}, "config": {"data": ..., "model": ...}, "info": str}``.
* SoVITS ``.pth``: ``{"weight": state_dict, "config": hps, "info": str[, "lora_rank": int]}``; pretrained G keeps
  ``enc_q.*``, WebUI exports are fp16 without it; discriminators are ``{"weight": state_dict}``.
* WebUI exports of v3/v4 LoRA and v2Pro(Plus) replace the zip magic ``PK`` by a 2-byte version header ``03``-``06``.

Loading never imports GPT-SoVITS: ``weights_only`` first, then a restricted unpickler that rebuilds tensors and plain
containers only and turns any other pickled object (e.g. ``utils.HParams`` configs) into a ``PickledObject`` dict.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import os
import pickle
import types
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch

from mockvox import atomic

ZIP_MAGIC = b"PK"


class SovitsVersion(NamedTuple):
    symbols: str  # text-symbol set: "v1" or "v2"
    model: str  # "v1", "v2", "v2Pro", "v2ProPlus", "v3", "v4"
    lora: bool


HEADER_VERSIONS = {
    b"00": SovitsVersion("v1", "v1", False),
    b"01": SovitsVersion("v2", "v2", False),
    b"02": SovitsVersion("v2", "v3", False),
    b"03": SovitsVersion("v2", "v3", True),
    b"04": SovitsVersion("v2", "v4", True),
    b"05": SovitsVersion("v2", "v2Pro", False),
    b"06": SovitsVersion("v2", "v2ProPlus", False),
}
EXPORT_HEADERS = {"v3": b"03", "v4": b"04", "v2Pro": b"05", "v2ProPlus": b"06"}  # which exports get a header
PRETRAINED_MD5 = {  # md5 of the first 8192 bytes of the official pretrained generators
    "dc3c97e17592963677a4a1681f30c653": SovitsVersion("v2", "v2", False),  # s2G488k.pth (v1 pretrained)
    "6642b37f3dbb1f76882b69937c95a5f3": SovitsVersion("v2", "v2", False),  # s2G2333k.pth
    "43797be674a37c1c83ee81081941ed0f": SovitsVersion("v2", "v3", False),  # s2Gv3.pth
    "4f26b9476d0c5033e04162c486074374": SovitsVersion("v2", "v4", False),  # s2Gv4.pth
    "c7e9fce2223f3db685cdfa1e6368728a": SovitsVersion("v2", "v2Pro", False),  # s2Gv2Pro.pth
    "66b313e39455b57ab1b0bc0b239c9d0a": SovitsVersion("v2", "v2ProPlus", False),  # s2Gv2ProPlus.pth
}
V1_MAX_BYTES = 82978 * 1024  # official size rule for header-less files: smaller -> v1
V2_MAX_BYTES = 700 * 1024 * 1024  # smaller -> v2, else v3
V2PROPLUS_DECODER_WIDTH = 768  # s2v2ProPlus.json upsample_initial_channel (v2Pro: 512)


# --- safe loading -----------------------------------------------------------------------------------------------------
class PickledObject(dict):
    """Stand-in for a pickled object of a class we do not import; its state is kept as dict items.

    Attribute access mirrors the items (like GPT-SoVITS ``HParams``); re-pickling writes a plain dict.
    """

    pickled_class = "?"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], dict):
            self.update(args[0])
        elif args:
            self["_args"] = list(args)
        self.update(kwargs)

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            for part in state:
                if isinstance(part, dict):
                    self.update(part)
        elif isinstance(state, dict):
            self.update(state)
        else:
            self["_state"] = state

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __reduce__(self):
        return dict, (dict(self),)


_PLACEHOLDERS: dict[tuple[str, str], type] = {}
_SAFE_GLOBALS = {
    ("collections", "OrderedDict"),
    ("copyreg", "_reconstructor"),
    ("builtins", "object"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "slice"),
    ("builtins", "complex"),
    ("_codecs", "encode"),
    ("torch", "Size"),
    ("torch", "device"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor_v3"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch.nn.parameter", "Parameter"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
}


def _placeholder(module: str, name: str) -> type:
    key = (module, name)
    if key not in _PLACEHOLDERS:
        _PLACEHOLDERS[key] = type(name, (PickledObject,), {"pickled_class": f"{module}.{name}"})
    return _PLACEHOLDERS[key]


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS or (
            module == "torch" and isinstance(getattr(torch, name, None), torch.dtype)
        ):
            return getattr(importlib.import_module(module), name)
        return _placeholder(module, name)


def _restricted_load(file, **kwargs):
    return _RestrictedUnpickler(file, **kwargs).load()


_restricted_pickle = types.ModuleType("mockvox_restricted_pickle")
_restricted_pickle.Unpickler = _RestrictedUnpickler
_restricted_pickle.load = _restricted_load
_restricted_pickle.__name__ = "pickle"  # torch.load passes encoding args only to modules named pickle


def _open_payload(path: Path) -> tuple[Any, bytes]:
    """The torch file as a path or an in-memory buffer with ``PK`` restored, and its first two bytes."""
    with open(path, "rb") as f:
        head = f.read(2)
    if head == ZIP_MAGIC or head[:1] == b"\x80":  # zip or legacy pickle
        return path, head
    if len(head) == 2 and head.isdigit():
        data = bytearray(path.read_bytes())
        data[:2] = ZIP_MAGIC
        return io.BytesIO(bytes(data)), head
    raise ValueError(f"{path}: not a torch checkpoint (starts with {head!r}; expected b'PK' or a header b'00'-b'06')")


def read_checkpoint(path: str | os.PathLike, mmap: bool = False) -> dict:
    """Load a torch checkpoint safely (plain zip, legacy pickle, or WebUI export with a 2-byte version header)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    source, head = _open_payload(path)
    use_mmap = mmap and head == ZIP_MAGIC
    try:
        return torch.load(source, map_location="cpu", weights_only=True, mmap=use_mmap)
    except pickle.UnpicklingError:
        if isinstance(source, io.BytesIO):
            source.seek(0)
        return torch.load(source, map_location="cpu", weights_only=False, pickle_module=_restricted_pickle)


def write_checkpoint(obj: dict, path: str | os.PathLike, header: bytes | None = None) -> Path:
    """Write ``obj`` with ``torch.save`` atomically (temp file beside, then rename); ``header`` replaces ``PK``.

    Mappings are written as plain dicts (placeholders of unknown classes included), so ``weights_only`` loads work.
    """
    path = Path(path)
    buf = io.BytesIO()
    torch.save(plain(obj), buf)
    data = buf.getvalue()
    if header is not None:
        if len(header) != 2 or not header.isdigit():
            raise ValueError(f"version header must be two ASCII digits like b'04', got {header!r}")
        data = header + data[2:]
    return atomic.write_bytes(path, data)


def plain(obj: Any) -> Any:
    """Recursively turn mappings (incl. ``PickledObject``) into plain dicts, so any unpickler can read them."""
    if isinstance(obj, OrderedDict) and not isinstance(obj, PickledObject):
        return OrderedDict((k, plain(v)) for k, v in obj.items())
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if type(obj) in (list, tuple):
        return type(obj)(plain(v) for v in obj)
    return obj


def _weights(state_dict: dict[str, torch.Tensor], half: bool, skip: str | None = None) -> OrderedDict:
    out = OrderedDict()
    for k, v in state_dict.items():
        if skip is not None and skip in k:
            continue
        v = v.detach().cpu().contiguous()
        out[k] = v.half() if half and v.is_floating_point() else v
    return out


# --- GPT --------------------------------------------------------------------------------------------------------------
@dataclass
class GPTCheckpoint:
    weight: dict[str, torch.Tensor]  # official names, ``model.`` prefix
    config: dict
    info: str | None = None


def load_gpt_checkpoint(path: str | os.PathLike) -> GPTCheckpoint:
    """Official GPT ``.ckpt`` (pretrained or WebUI export)."""
    ckpt = read_checkpoint(path)
    if "weight" not in ckpt:
        raise ValueError(f"{path}: no 'weight' entry; keys are {sorted(ckpt)}")
    return GPTCheckpoint(ckpt["weight"], plain(ckpt.get("config") or {}), ckpt.get("info"))


def save_gpt_checkpoint(
    path: str | os.PathLike,
    model_state: dict[str, torch.Tensor],
    model_config: dict,
    info: str = "GPT-e0",
    max_sec: int = 54,
    half: bool = True,
) -> Path:
    """Write a WebUI-style GPT export that GPT-SoVITS loads (fp16 by default, ``model.`` prefixed keys)."""
    weight = _weights({k if k.startswith("model.") else f"model.{k}": v for k, v in model_state.items()}, half)
    config = {"data": {"max_sec": max_sec, "pad_val": 1024}, "model": dict(model_config)}
    return write_checkpoint({"weight": weight, "config": config, "info": info}, path)


# --- SoVITS v2 --------------------------------------------------------------------------------------------------------
@dataclass
class SovitsCheckpoint:
    weight: dict[str, torch.Tensor]
    config: dict = field(default_factory=dict)
    info: str | None = None
    version: SovitsVersion | None = None
    lora_rank: int | None = None


def detect_sovits_version(path: str | os.PathLike) -> SovitsVersion:
    """Official order: md5 of the first 8 KiB (pretrained files) -> 2-byte header -> file size."""
    path = Path(path)
    with open(path, "rb") as f:
        first = f.read(8192)
    known = PRETRAINED_MD5.get(hashlib.md5(first).hexdigest())
    if known is not None:
        return known
    head = first[:2]
    if head != ZIP_MAGIC:
        if head not in HEADER_VERSIONS:
            raise ValueError(f"{path}: unknown SoVITS version header {head!r}")
        return HEADER_VERSIONS[head]
    size = path.stat().st_size
    if size < V1_MAX_BYTES:
        return SovitsVersion("v1", "v1", False)
    return SovitsVersion("v2", "v2" if size < V2_MAX_BYTES else "v3", False)


def sovits_version_from_weights(weight: dict[str, torch.Tensor], config: dict | None = None) -> SovitsVersion:
    """Version guessed from the keys: v3/v4 have ``cfm.*``, v2Pro(Plus) ``sv_emb``, 322 symbols means v1.

    v2Pro and v2ProPlus differ only in decoder sizes: ``config.model.version`` decides when it names one of them,
    else the official decoder width (``dec.conv_pre`` 768 channels: v2ProPlus, else v2Pro).
    """
    emb = weight.get("enc_p.text_embedding.weight")
    symbols = "v1" if emb is not None and emb.shape[0] == 322 else "v2"
    if any(k.startswith("cfm.") for k in weight):
        return SovitsVersion("v2", "v4", False)
    if "sv_emb.weight" in weight or any(k.startswith("ge_to512.") for k in weight):
        named = ((config or {}).get("model") or {}).get("version")
        if named in ("v2Pro", "v2ProPlus"):
            return SovitsVersion("v2", named, False)
        conv_pre = weight.get("dec.conv_pre.weight")
        wide = conv_pre is not None and conv_pre.shape[0] == V2PROPLUS_DECODER_WIDTH
        return SovitsVersion("v2", "v2ProPlus" if wide else "v2Pro", False)
    return SovitsVersion(symbols, symbols, False)


def load_sovits_checkpoint(path: str | os.PathLike) -> SovitsCheckpoint:
    """Official SoVITS ``.pth`` (G or D, pretrained or WebUI export; headers accepted)."""
    ckpt = read_checkpoint(path)
    if "weight" not in ckpt:
        raise ValueError(f"{path}: no 'weight' entry; keys are {sorted(ckpt)}")
    config = plain(ckpt.get("config") or {})
    version = detect_sovits_version(path)
    if version.model in ("v1", "v2") and not version.lora:
        version = sovits_version_from_weights(ckpt["weight"], config)
    return SovitsCheckpoint(ckpt["weight"], config, ckpt.get("info"), version, ckpt.get("lora_rank"))


def save_sovits_checkpoint(
    path: str | os.PathLike,
    state_dict: dict[str, torch.Tensor],
    config: dict | None = None,
    info: str | None = None,
    version: str = "v2",
    export: bool = True,
    lora_rank: int | None = None,
) -> Path:
    """Write SoVITS weights like GPT-SoVITS.

    ``export=True``: WebUI fine-tune export (fp16, no ``enc_q``; header ``03``-``06`` for v3/v4 LoRA and v2Pro(Plus)).
    ``export=False``: full weights as stored (pretrained-style G, or a discriminator when ``config`` is None).
    """
    obj: dict[str, Any] = {"weight": _weights(state_dict, half=export, skip="enc_q" if export else None)}
    if config is not None:
        obj["config"] = plain(config)
    if info is not None:
        obj["info"] = info
    if lora_rank is not None:
        obj["lora_rank"] = lora_rank
    header = EXPORT_HEADERS.get(version) if export and (lora_rank is not None or "Pro" in version) else None
    return write_checkpoint(obj, path, header)
