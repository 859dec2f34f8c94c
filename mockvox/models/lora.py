"""LoRA fine-tuning of SoVITS v4: GPT-SoVITS `s2_train_v3_lora.py` recipe and the `process_ckpt.savee` v4 export.

Recipe: peft LoRA (``init_lora_weights=True``: A random, B zero) on the DiT attention projections ``to_q``, ``to_k``,
``to_v``, ``to_out.0`` of ``model.cfm`` (rank and alpha configurable, official alpha = rank = 32), while the
non-frozen modules outside the CFM (``ref_enc``, ``bridge``, ``wns1``, ``linear_mel``) train fully; ``ssl_proj``,
``quantizer`` and ``enc_p`` stay frozen. Export (official layout): every state-dict entry that is not a frozen
parameter (trainable parameters and all buffers), in fp16, as ``{"weight", "config", "info", "lora_rank"}`` with
the 2-byte header ``b"04"`` in place of the zip magic ``PK``. Loading: base ``s2Gv4.pth`` weights, wrap with the
file's rank, load the file non-strictly, merge (``W + alpha/r * B A``) so the keys return to ``cfm.estimator.*``.
Deviation: the export also carries ``lora_alpha`` (the official loader ignores it and assumes alpha = rank).
Resident voices (:func:`overlay_lora`) do not merge: a voice is a shallow overlay of a base generator that several
voices share, holding only its own adapters and the entries that differ from the base.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn

from mockvox.modules.adapters import LoraLinear

LORA_TARGETS = ["to_k", "to_q", "to_v", "to_out.0"]
FULLY_TRAINED = ("ref_enc", "bridge", "wns1", "linear_mel")
V4_LORA_HEADER = b"04"
DEFAULT_RANK = 32


def lora_config(rank: int = DEFAULT_RANK, alpha: float | None = None) -> LoraConfig:
    """The official LoRA config (alpha defaults to the rank, as upstream)."""
    return LoraConfig(
        target_modules=list(LORA_TARGETS), r=rank, lora_alpha=rank if alpha is None else alpha, init_lora_weights=True
    )


def has_lora(model: nn.Module) -> bool:
    return isinstance(model.cfm, PeftModel)


def add_lora(model: nn.Module, rank: int = DEFAULT_RANK, alpha: float | None = None) -> nn.Module:
    """Wrap ``model.cfm`` with LoRA (its base weights become frozen); returns ``model``."""
    if has_lora(model):
        raise ValueError("model.cfm already carries LoRA adapters; merge them first")
    model.cfm = get_peft_model(model.cfm, lora_config(rank, alpha))
    return model


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold the adapters into the DiT weights (``W + alpha/r * B A``); keys return to ``cfm.estimator.*``."""
    if has_lora(model):
        model.cfm = model.cfm.merge_and_unload()
    return model


def lora_rank(model: nn.Module) -> int:
    return int(model.cfm.peft_config["default"].r)


def lora_alpha(model: nn.Module) -> float:
    return float(model.cfm.peft_config["default"].lora_alpha)


def trainable_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Parameters the official recipe optimises (LoRA A/B + the fully trained modules)."""
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def exported_keys(model: nn.Module) -> list[str]:
    """State-dict keys of the export: everything but frozen parameters (buffers included) and ``enc_q``."""
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    return [k for k in model.state_dict() if k not in frozen and "enc_q" not in k]


def export_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """fp16 CPU copy of the :func:`exported_keys` entries."""
    state = model.state_dict()
    return {
        k: state[k].detach().to("cpu", torch.float16) if state[k].is_floating_point() else state[k].detach().cpu()
        for k in exported_keys(model)
    }


def lora_checkpoint(model: nn.Module, config: Any = None, info: str = "") -> dict[str, Any]:
    """The object the official v4 LoRA export pickles."""
    if not has_lora(model):
        raise ValueError("model has no LoRA adapters: call add_lora() before training/exporting")
    return {
        "weight": export_state_dict(model),
        "config": config,
        "info": info,
        "lora_rank": lora_rank(model),
        "lora_alpha": lora_alpha(model),
    }


def save_lora(model: nn.Module, path: str | Path, config: Any = None, info: str = "") -> None:
    """Write the official v4 LoRA file (torch zip with header ``b"04"``)."""
    from mockvox.checkpoints import write_checkpoint

    write_checkpoint(lora_checkpoint(model, config, info), path, header=V4_LORA_HEADER)


def apply_lora_checkpoint(model: nn.Module, ckpt: dict[str, Any], merge: bool = True) -> nn.Module:
    """Load a v4 LoRA export into ``model`` (already holding the base ``s2Gv4`` weights), then merge.

    Raises:
        ValueError: the object is not a v4 LoRA export or does not fit the model.
    """
    if "lora_rank" not in ckpt or "weight" not in ckpt:
        raise ValueError(f"not a SoVITS v4 LoRA export: keys {sorted(ckpt)}; expected 'weight' and 'lora_rank'")
    rank = int(ckpt["lora_rank"])
    add_lora(model, rank, ckpt.get("lora_alpha", rank))
    ref = model.state_dict()
    weights = {k: v.to(ref[k].dtype) if k in ref and v.is_floating_point() else v for k, v in ckpt["weight"].items()}
    result = model.load_state_dict(weights, strict=False)
    missing_lora = [k for k in result.missing_keys if "lora_" in k]
    if result.unexpected_keys or missing_lora:
        raise ValueError(
            f"LoRA export does not fit the model: unexpected {result.unexpected_keys[:5]}, missing {missing_lora[:5]}"
        )
    return merge_lora(model) if merge else model


def load_lora(model: nn.Module, path: str | Path, merge: bool = True) -> nn.Module:
    """Read an official (or MockVox) v4 LoRA file and apply it to ``model``."""
    from mockvox.checkpoints import read_checkpoint

    return apply_lora_checkpoint(model, read_checkpoint(path), merge)


def _plain_key(key: str) -> str:
    """peft naming (``cfm.base_model.model.<path>[.base_layer].<name>``) back to the plain model's."""
    return key.replace("cfm.base_model.model.", "cfm.", 1).replace(".base_layer.", ".")


def _split_export(ckpt: dict[str, Any], base: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, LoraLinear]]:
    """The export's entries that differ from ``base`` (cast to its dtypes) and its adapters, by plain module path."""
    if "lora_rank" not in ckpt or "weight" not in ckpt:
        raise ValueError(f"not a SoVITS v4 LoRA export: keys {sorted(ckpt)}; expected 'weight' and 'lora_rank'")
    rank = int(ckpt["lora_rank"])
    scale = float(ckpt.get("lora_alpha", rank)) / rank
    state, modules = base.state_dict(keep_vars=True), dict(base.named_modules())
    owned, halves = {}, {}
    for key, value in ckpt["weight"].items():
        if ".lora_A." in key or ".lora_B." in key:
            path, half = _plain_key(key).split(".lora_")
            halves.setdefault(path, {})[half[0]] = value
            continue
        plain = _plain_key(key)
        if plain not in state:
            raise ValueError(f"LoRA export does not fit the base generator: unexpected entry {plain!r}")
        ref = state[plain]
        value = value.to(ref.device, ref.dtype if value.is_floating_point() else value.dtype)
        if value.shape != ref.shape:
            raise ValueError(f"LoRA export entry {plain!r} has shape {tuple(value.shape)}, the base {tuple(ref.shape)}")
        if not torch.equal(value, ref.detach()):
            owned[plain] = value
    adapters = {}
    for path, pair in halves.items():
        layer = modules.get(path)
        if not isinstance(layer, nn.Linear) or set(pair) != {"A", "B"}:
            raise ValueError(f"LoRA export does not fit the base generator: adapter {path!r}")
        w = layer.weight
        adapters[path] = LoraLinear(layer, pair["A"].to(w.device, w.dtype), pair["B"].to(w.device, w.dtype), scale)
    return owned, adapters


def _overlay(module: nn.Module, prefix: str, owned: dict, adapters: dict, touched: set[str]) -> nn.Module:
    """A shallow copy of ``module``: untouched children are the same objects, touched ones overlaid in turn."""
    new = copy.copy(module)
    new._parameters, new._buffers, new._modules = dict(module._parameters), dict(module._buffers), dict(module._modules)
    new.__dict__.pop("_onednn_packed", None)
    for name in module._parameters:
        if prefix + name in owned:
            new._parameters[name] = nn.Parameter(owned[prefix + name], requires_grad=False)
    for name in module._buffers:
        if prefix + name in owned:
            new._buffers[name] = owned[prefix + name]
    for name, child in module._modules.items():
        path = prefix + name
        if path in adapters:
            new._modules[name] = adapters[path]
        elif path in touched:
            new._modules[name] = _overlay(child, path + ".", owned, adapters, touched)
    return new


def overlay_lora(base: nn.Module, ckpt: dict[str, Any]) -> nn.Module:
    """A voice over a shared ``base`` generator (eval mode, on its final device and dtype), without merging.

    The result shares every base tensor the export leaves unchanged, holds its own copies of the entries that differ
    (the fully trained ``ref_enc`` / ``bridge`` / ``wns1`` / ``linear_mel``) and wraps each adapted projection in a
    :class:`~mockvox.modules.adapters.LoraLinear` over the base layer. ``base`` is never modified, and stays alive as
    long as the overlay does. Same output as :func:`apply_lora_checkpoint` up to rounding.

    Raises:
        ValueError: the object is not a v4 LoRA export or does not fit ``base``.
    """
    owned, adapters = _split_export(ckpt, base)
    touched = set()
    for key in [*owned, *adapters]:
        parts = key.split(".")
        touched.update(".".join(parts[:i]) for i in range(1, len(parts)))
    voice = _overlay(base, "", owned, adapters, touched)
    voice.__dict__["_shared_base"] = base  # a plain attribute, not a submodule: keeps the shared parts alive
    return voice
