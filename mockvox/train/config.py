"""Training config helpers shared by ``python -m mockvox.train``, ``mockvox train`` and the API."""

from __future__ import annotations

from omegaconf import DictConfig

SIZES = ("tiny", "official")


def expand_shorthands(overrides: list[str]) -> list[str]:
    """``model=tiny`` is shorthand for ``model.size=tiny`` (the version stays whatever ``model`` selects)."""
    out = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if sep and key.lstrip("+~") == "model" and value in SIZES:
            out.append(f"model.size={value}")
        else:
            out.append(item)
    return out


def compose_train(overrides: list[str]) -> DictConfig:
    from mockvox.config import compose

    return compose("train", expand_shorthands(overrides))
