"""Resume plumbing without a tracking server: where a voice is downloaded, and that it is loaded once."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from mockvox.infer.registry import voice_cache_dir
from mockvox.train import resume, run, stages
from mockvox.train.config import compose_train
from mockvox.train.tracking import Tracker

SERVER = "http://host:5000"


class _Client:
    def __init__(self) -> None:
        self.destinations: list[Path] = []

    def download_artifacts(self, run_id: str, path: str, dst: str) -> str:
        self.destinations.append(Path(dst))
        out = Path(dst) / Path(path).name
        out.write_bytes(b"checkpoint")
        return str(out)


class _ServerTracker:
    """What resume needs of a Tracker on an MLflow tracking server."""

    tracking_uri = SERVER

    def __init__(self) -> None:
        self.client = _Client()


class _Stop(Exception):
    """Raised where a real run would start building networks: everything the test checks happened before."""


@pytest.fixture()
def registry(monkeypatch, tmp_path):
    """A registered tiny v2 voice ``m-1``; records every download folder and every resume-state load."""
    monkeypatch.chdir(tmp_path)  # a relative folder derived from the URI would land here
    trained = compose_train(["experiment=demo", "data.file_id=ds", f"paths.data_dir={tmp_path}/old"])
    training = {"runs": {"sovits": "run-s", "gpt": "run-g"}, "epochs": {"sovits": 1, "gpt": 1},
                "config": OmegaConf.to_container(trained, resolve=True)}  # fmt: skip
    meta = {"version": "v2", "gpt": {}, "sovits": {}, "hubert": {}, "training": training}
    seen = {"caches": [], "loads": 0}

    def download_voice(tracker, model_id: str, cache: Path) -> Path:
        seen["caches"].append(Path(cache))
        voice = Path(cache) / model_id
        voice.mkdir(parents=True, exist_ok=True)
        (voice / "mockvox.yaml").write_text(yaml.safe_dump(meta))
        return voice

    real_load = resume.load_resume_state

    def counted_load(*args, **kwargs):
        seen["loads"] += 1
        return real_load(*args, **kwargs)

    monkeypatch.setattr(resume, "resolve_model_id", lambda tracker, ref: ref.removeprefix("models:/"))
    monkeypatch.setattr(resume, "download_voice", download_voice)
    monkeypatch.setattr(resume, "registered_versions", lambda tracker, mid: [{"name": "voice-ds", "version": 1}])
    monkeypatch.setattr(resume, "load_resume_state", counted_load)
    monkeypatch.setattr(run, "load_resume_state", counted_load)
    tracker = _ServerTracker()
    monkeypatch.setattr(Tracker, "from_config", classmethod(lambda cls, cfg: tracker))
    return tracker, seen


def _stop_before_training(monkeypatch) -> list:
    """Let ``train()`` run up to the networks on a stand-in dataset store; returns the states it resumed from."""

    class Store:
        def __init__(self, root) -> None:
            self.root = root

        def manifest(self, file_id: str) -> dict:
            return {"file_id": file_id, "version": "v1"}

    resumed = []

    def resume_networks(cfg, state):
        resumed.append(state)
        raise _Stop

    monkeypatch.setattr(run, "DatasetStore", Store)
    monkeypatch.setattr(stages, "check_speech", lambda cfg, store: 60.0, raising=False)
    monkeypatch.setattr(run, "resume_networks", resume_networks)
    return resumed


def test_voices_are_cached_under_the_data_root_with_a_tracking_server(registry, tmp_path):
    tracker, seen = registry
    cfg = compose_train(["data.file_id=ds", f"logger.tracking_uri={SERVER}", f"paths.data_dir={tmp_path}/data"])
    assert cfg.logger.tracking_uri == SERVER
    cache = voice_cache_dir(cfg)
    assert cache == tmp_path / "data" / "models"
    state = resume.load_resume_state(tracker, "m-1", cache)
    assert state.voice_dir == cache / "m-1" and state.name == "voice-ds" and state.epochs == {"sovits": 1, "gpt": 1}
    assert set(state.checkpoints) == {"sovits", "gpt"}
    assert all(cache in p.parents for p in [*tracker.client.destinations, *state.checkpoints.values()])
    assert not (tmp_path / "http:").exists()


def test_train_with_resume_from_loads_into_the_data_root(registry, monkeypatch, tmp_path):
    tracker, seen = registry
    resumed = _stop_before_training(monkeypatch)
    cfg = compose_train(["experiment=demo", "data.file_id=ds", "resume_from=m-1", f"logger.tracking_uri={SERVER}",
                         f"paths.data_dir={tmp_path}/data"])  # fmt: skip
    with pytest.raises(_Stop):
        run.train(cfg)
    assert seen["loads"] == 1 and seen["caches"] == [tmp_path / "data" / "models"]
    assert resumed[0].model_id == "m-1"


def test_mockvox_resume_loads_the_voice_once(registry, monkeypatch, tmp_path):
    from mockvox.cli import main

    tracker, seen = registry
    resumed = _stop_before_training(monkeypatch)
    with pytest.raises(_Stop):
        main(["resume", "models:/m-1", "--epochs_gpt", "3", f"logger.tracking_uri={SERVER}",
              f"paths.data_dir={tmp_path}/data"])  # fmt: skip
    assert seen["loads"] == 1  # the CLI's load is handed to train(), which does not download it again
    assert seen["caches"] == [tmp_path / "data" / "models"]
    assert resumed[0].model_id == "m-1" and len(tracker.client.destinations) == 2


def test_a_voice_from_before_evaluations_resumes_with_the_callers_evaluation(tmp_path):
    old = OmegaConf.to_container(compose_train(["experiment=demo", "data.file_id=ds"]), resolve=True)
    for key in ("evaluate", "evaluation", "asr"):
        old.pop(key)
    state = resume.ResumeState("m-old", "voice-ds", tmp_path, old, {"sovits": 1, "gpt": 1})
    base = compose_train(["data.file_id=ds", "evaluation.limit=2", "asr.model=tiny.en"])
    cfg = resume.resume_config(state, base, 1, 1)
    assert cfg.evaluate is True and cfg.evaluation.limit == 2 and cfg.asr.model == "tiny.en"
    current = {**old, "evaluate": False, "evaluation": {**base.evaluation, "limit": 5}}
    kept = resume.resume_config(resume.ResumeState("m-new", None, tmp_path, current, {}), base, 1, 1)
    assert kept.evaluate is False and kept.evaluation.limit == 5  # a voice's own settings stay
