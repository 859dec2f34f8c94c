"""The MockVox home (installed models, per user) and the data root (per project) as code and configs see them."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from mockvox import paths
from mockvox.config import compose, finalize_paths, load_params
from mockvox.data.asr import AsrConfig, AsrModelUnavailable, resolve_model
from mockvox.text.en_dict import data_dir

ENV = ("MOCKVOX_HOME", "MOCKVOX_PRETRAINED", "MOCKVOX_TEXT_DATA", "MOCKVOX_DATA", "MOCKVOX_ROOT", "XDG_CACHE_HOME")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def clean_env(monkeypatch, tmp_path):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    return tmp_path / "user"


def test_default_home_is_in_the_user_cache(clean_env, monkeypatch, tmp_path):
    assert paths.home() == clean_env / ".cache" / "mockvox"
    assert paths.pretrained_dir() == clean_env / ".cache" / "mockvox" / "pretrained"
    assert data_dir() == paths.text_data_dir() == clean_env / ".cache" / "mockvox" / "text"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.home() == tmp_path / "xdg" / "mockvox"


def test_environment_moves_the_home_and_its_parts(clean_env, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MOCKVOX_HOME", "rel/home")  # relative: made absolute against the working directory
    assert paths.home() == tmp_path / "rel" / "home"
    assert paths.pretrained_dir() == tmp_path / "rel" / "home" / "pretrained"
    assert data_dir() == tmp_path / "rel" / "home" / "text"
    monkeypatch.setenv("MOCKVOX_HOME", "~/mv")
    assert paths.home() == clean_env / "mv"
    monkeypatch.setenv("MOCKVOX_PRETRAINED", str(tmp_path / "weights"))
    monkeypatch.setenv("MOCKVOX_TEXT_DATA", str(tmp_path / "text"))
    assert paths.pretrained_dir() == tmp_path / "weights" and data_dir() == tmp_path / "text"


def test_configs_find_the_same_models_from_every_folder(clean_env, monkeypatch, tmp_path):
    monkeypatch.setenv("MOCKVOX_HOME", str(tmp_path / "home"))
    seen = []
    for folder in (tmp_path / "a", tmp_path / "b" / "c"):
        folder.mkdir(parents=True)
        monkeypatch.chdir(folder)
        cfg = compose("prepare")
        assert cfg.paths.data_dir == str(folder / "data")  # the data root stays per project, absolute
        seen.append((cfg.paths.pretrained_dir, cfg.asr.models_dir))
    assert seen == [(str(tmp_path / "home" / "pretrained"),) * 2] * 2


def test_pretrained_dir_overrides_win(clean_env, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MOCKVOX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MOCKVOX_PRETRAINED", str(tmp_path / "env"))
    train = compose("train", ["data.file_id=x"])
    assert train.paths.pretrained_dir == train.pretrained.dir == train.asr.models_dir == str(tmp_path / "env")
    cfg = compose("prepare", ["paths.pretrained_dir=mine", "paths.data_dir='~/d'"])
    assert cfg.asr.models_dir == str(tmp_path / "mine") and cfg.paths.data_dir == str(clean_env / "d")


def test_params_yaml_keeps_no_machine_paths_and_is_finalised_when_loaded(clean_env, monkeypatch, tmp_path):
    raw = OmegaConf.load(REPO / "params.yaml")
    assert raw.paths.pretrained_dir is None and raw.asr.models_dir is None and raw.pretrained.dir is None
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MOCKVOX_HOME", str(tmp_path / "home"))
    cfg = load_params(REPO / "params.yaml")
    home = str(tmp_path / "home" / "pretrained")
    assert cfg.paths.pretrained_dir == cfg.asr.models_dir == cfg.pretrained.dir == home
    assert cfg.paths.data_dir == str(tmp_path / "data") and cfg.paths.features_dir.startswith(str(tmp_path))
    assert OmegaConf.to_container(finalize_paths(cfg)) == OmegaConf.to_container(cfg)  # idempotent


def test_missing_whisper_model_names_the_absolute_home_folder(clean_env, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MOCKVOX_HOME", "home")
    with pytest.raises(AsrModelUnavailable, match=str(tmp_path / "home" / "pretrained" / "faster-whisper-small")):
        resolve_model(AsrConfig(model="small", download_root=str(tmp_path / "hf")))
