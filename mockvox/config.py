"""Compose the Hydra configs in ``conf/`` from code (CLI, API, DVC stages) and build typed settings from them."""

from __future__ import annotations

import functools
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
_KEY = r"(?P<top>[A-Za-z_][\w-]*)(?:[./@][\w-]+)*"  # a Hydra key path: dots, group slashes, @package
_OVERRIDE = re.compile(rf"^(?:\+\+|\+|~)?{_KEY}=")  # key=value, +key=value, ++key=value, ~key=value
_DELETION = re.compile(rf"^~{_KEY}$")  # ~key


def compose(name: str, overrides: list[str] | None = None) -> DictConfig:
    """The resolved config ``conf/<name>.yaml`` with Hydra overrides applied."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name=name, overrides=list(overrides or []))
    finalize_paths(cfg)
    OmegaConf.resolve(cfg)
    return cfg


def read_option(group: str, option: str) -> dict:
    """``conf/<group>/<option>.yaml`` as plain data, not composed (interpolations stay text): a table code reads."""
    import yaml

    return yaml.safe_load((CONF_DIR / group / f"{option}.yaml").read_text(encoding="utf-8")) or {}


def load_params(path: str | Path) -> DictConfig:
    """A config composed elsewhere (DVC's ``params.yaml``) with its paths made absolute, as :func:`compose` does."""
    cfg = OmegaConf.load(path)
    finalize_paths(cfg)
    return cfg


def finalize_paths(cfg: DictConfig) -> DictConfig:
    """Make every ``paths.*`` absolute and fill an unset ``paths.pretrained_dir`` from the MockVox home.

    Runs before the rest of the config is resolved, so values interpolated from ``paths`` see the final ones; in a
    config resolved earlier (``params.yaml``), null model folders copied from ``paths.pretrained_dir`` are filled too.
    Idempotent.
    """
    from mockvox import paths

    node = cfg.get("paths")
    if node is None:
        return cfg
    for key in list(node):
        value = node[key]
        if value is None and key == "pretrained_dir":
            node[key] = str(paths.pretrained_dir())
        elif isinstance(value, str):
            node[key] = str(paths.absolute(value))
    for group, key in (("asr", "models_dir"), ("pretrained", "dir")):
        if cfg.get(group) is not None and key in cfg[group] and cfg[group][key] is None:
            cfg[group][key] = node.get("pretrained_dir")
    return cfg


@functools.lru_cache(maxsize=1)
def config_roots() -> frozenset[str]:
    """What an override's key can start with: the config groups of ``conf/`` and the top-level keys of its configs."""
    import yaml

    keys = {"hydra"} | {p.name for p in CONF_DIR.iterdir() if p.is_dir()}
    for path in CONF_DIR.glob("*.yaml"):
        keys |= set(yaml.safe_load(path.read_text(encoding="utf-8")) or {}) - {"defaults"}
    return frozenset(keys)


def is_override(arg: str) -> bool:
    """``KEY=VALUE`` whose key names a config group or key (``asr=gpu``, ``slicer.max_length_ms=15000``).

    Anything else with an ``=`` (a text such as ``E=mc2 is famous``) is not an override.
    """
    match = _OVERRIDE.match(arg) or _DELETION.match(arg)
    return bool(match) and match["top"] in config_roots()


def split_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
    """``(arguments, overrides)`` of a command line: Hydra overrides may stand anywhere before a ``--``.

    After ``--`` every argument is a plain argument (``mockvox inference M ref.wav prompt -- "seed=1 is a text"``).
    """
    end = argv.index("--") if "--" in argv else len(argv)
    overrides = [a for a in argv[:end] if is_override(a)]
    rest = [a for a in argv[:end] if not is_override(a)] + argv[end:]
    return rest, overrides


def add_command(sub, name: str, func, help_: str, config: str = "conf/"):
    """A ``mockvox`` subcommand whose description says which config its ``KEY=VALUE`` overrides go to."""
    note = f"KEY=VALUE arguments whose key is a config group or key override {config} (none after --)"
    parser = sub.add_parser(name, help=help_, description=f"{help_}. {note}.")
    parser.set_defaults(func=func)
    return parser
