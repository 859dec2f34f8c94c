"""Training config helpers shared by ``python -m mockvox.train``, ``mockvox train`` and the API."""

from __future__ import annotations

from omegaconf import DictConfig


def compose_train(overrides: list[str]) -> DictConfig:
    """The resolved ``conf/train.yaml`` with Hydra overrides (``model=v2 model/size=tiny ...``) applied."""
    from mockvox.config import compose

    return compose("train", overrides)
