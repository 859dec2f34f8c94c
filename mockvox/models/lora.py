"""LoRA fine-tuning of SoVITS v4: GPT-SoVITS `s2_train_v3_lora.py` recipe and the `process_ckpt.savee` v4 export.

Recipe: peft LoRA (``init_lora_weights=True``: A random, B zero) on the DiT attention projections ``to_q``, ``to_k``,
``to_v``, ``to_out.0`` of ``model.cfm`` (rank and alpha configurable, official alpha = rank = 32), while the
non-frozen modules outside the CFM (``ref_enc``, ``bridge``, ``wns1``, ``linear_mel``) train fully; ``ssl_proj``,
``quantizer`` and ``enc_p`` stay frozen. Export (official layout): every state-dict entry that is not a frozen
parameter (trainable parameters and all buffers), in fp16, as ``{"weight", "config", "info", "lora_rank"}`` with
the 2-byte header ``b"04"`` in place of the zip magic ``PK``. Loading: base ``s2Gv4.pth`` weights, wrap with the
file's rank, load the file non-strictly, merge (``W + alpha/r * B A``) so the keys return to ``cfm.estimator.*``.
Deviation: the export also carries ``lora_alpha`` (the official loader ignores it and assumes alpha = rank).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn

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
