"""Training config helpers shared by ``python -m mockvox.train``, ``mockvox train`` and the API.

Each stage's settings live under the model group: ``model.gpt`` and ``model.sovits`` hold the network sizes
(``net``), the optimiser and scheduler (``_target_`` + ``_partial_``), the data module and the ``train`` settings.
:data:`MOVED` names where the keys of the earlier layout (``gpt_train.*``, ``model.sovits_train.*``) went;
:func:`upgrade_train_config` brings a config saved with it (a voice trained before) to the current one.
"""

from __future__ import annotations

from collections.abc import Mapping

from omegaconf import DictConfig, OmegaConf, open_dict

STAGE_KEYS = ("net", "discriminator", "optimizer", "scheduler", "data", "train")  # children of model.gpt/sovits
MOVED = {  # earlier key (prefix) -> current key, or what replaced it
    "gpt_train.epochs": "model.gpt.train.epochs",
    "gpt_train.accumulate": "model.gpt.train.accumulate",
    "gpt_train.dpo": "model.gpt.train.dpo",
    "gpt_train.dpo_beta": "model.gpt.train.dpo_beta",
    "gpt_train.batch_size": "model.gpt.data.batch_size",
    "gpt_train.max_sec": "model.gpt.data.max_sec",
    "gpt_train.min_ps_ratio": "model.gpt.data.min_ps_ratio",
    "gpt_train.max_ps_ratio": "model.gpt.data.max_ps_ratio",
    "gpt_train.optimizer": "model.gpt.optimizer",
    "gpt_train.scheduler.name": "the group model/gpt/scheduler=official|warmup_cosine",
    "gpt_train.scheduler.lr": "model.gpt.optimizer.lr x model.gpt.scheduler.gamma (official: 0.01 x 0.2)",
    "gpt_train.scheduler": "model.gpt.scheduler (with model/gpt/scheduler=warmup_cosine)",
    "model.sovits_train.batch_size": "model.sovits.data.batch_size",
    "model.sovits_train.lr_decay": "model.sovits.scheduler.gamma",
    "model.sovits_train.lr": "model.sovits.optimizer.lr",
    "model.sovits_train.betas": "model.sovits.optimizer.betas",
    "model.sovits_train.eps": "model.sovits.optimizer.eps",
    "model.sovits_train": "model.sovits.train",
}


class ConfigError(ValueError):
    """The composed training config is not usable; the message names the setting."""


def moved(key: str) -> str | None:
    """Where the earlier config key ``key`` went (None: it did not move)."""
    for old in sorted(MOVED, key=len, reverse=True):
        if key == old or key.startswith(old + "."):
            new = MOVED[old]
            return new + key[len(old) :] if new.startswith("model.") and " " not in new else new
    parts = key.split(".")
    if len(parts) > 2 and parts[:2] in (["model", "gpt"], ["model", "sovits"]) and parts[2] not in STAGE_KEYS:
        return ".".join([*parts[:2], "net", *parts[2:]])  # a network size
    return None


def compose_train(overrides: list[str]) -> DictConfig:
    """The resolved ``conf/train.yaml`` with Hydra overrides (``model=v2 model/size=tiny ...``) applied."""
    from mockvox.config import compose

    for item in overrides:
        key = item.lstrip("+~").partition("=")[0]
        if new := moved(key):
            raise ConfigError(f"{key} has moved: {new} (each stage's settings live under model.gpt / model.sovits)")
    return compose("train", overrides)


def _leaves(tree: Mapping, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, Mapping) and value:
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def is_earlier_layout(config: Mapping) -> bool:
    """Whether ``config`` has the stage settings of the earlier layout (``gpt_train``, ``model.sovits_train``)."""
    return "gpt_train" in config or "sovits_train" in (config.get("model") or {})


def upgrade_train_config(config: Mapping) -> DictConfig:
    """``config`` in the current layout: today's defaults for its version, size and schedule with every value of
    the earlier layout at its new key (:data:`MOVED`); a current config comes back as it is."""
    old = OmegaConf.to_container(OmegaConf.create(dict(config)), resolve=True)
    if not is_earlier_layout(old):
        return OmegaConf.create(old)
    model, gpt = old.pop("model"), old.pop("gpt_train", {})
    scheduler = gpt.pop("scheduler", {})
    choice = "official" if scheduler.get("name", "constant") == "constant" else scheduler["name"]
    choices = {"model": model["version"], "model/size": model["size"], "model/gpt/scheduler": choice,
               "pretrained": old["pretrained"]["name"], "data.file_id": old["data"]["file_id"]}  # fmt: skip
    base = compose_train([f"{k}={v}" for k, v in choices.items()])
    leaves = {f"gpt_train.{k}": v for k, v in _leaves(gpt).items()}
    leaves |= {f"model.sovits_train.{k}": v for k, v in _leaves(model.pop("sovits_train", {})).items()}
    for net in ("gpt", "sovits"):
        leaves |= {f"model.{net}.net.{k}": v for k, v in (model.pop(net, None) or {}).items()}
    leaves |= {f"model.{k}": v for k, v in _leaves(model).items()}  # version, size, hubert, vocoder sizes ...
    if choice == "official":
        leaves["model.gpt.scheduler.gamma"] = scheduler.get("lr", 0.002) / gpt.get("optimizer", {}).get("lr", 0.01)
    else:
        leaves |= {f"model.gpt.scheduler.{k}": v for k, v in scheduler.items() if k not in ("name", "lr")}
    for key, value in leaves.items():
        OmegaConf.update(base, moved(key) or key, value, force_add=True)
    with open_dict(base):
        for key, value in old.items():  # paths, data, trainer, logger, epochs, seed ... as they were
            base[key] = value
    return base
