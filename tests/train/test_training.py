"""End to end: a real (tiny) training on the sample voice, MLflow tracking and registry, resume, pyfunc, failures."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml

from mockvox.data.store import DatasetStore
from mockvox.infer.registry import download_voice, model_info, resolve_model_id, version_model_id
from mockvox.train.config import compose_train
from mockvox.train.run import train
from mockvox.train.tracking import Tracker
from tests.conftest import SAMPLES

pytestmark = pytest.mark.slow


def _cfg(data_dir: Path, file_id: str, *extra: str):
    return compose_train([
        "experiment=demo", f"paths.data_dir={data_dir}", f"data.file_id={file_id}", "data.min_items=8",
        "epochs.sovits=1", "epochs.gpt=1", "callbacks.progress=false", *extra,
    ])  # fmt: skip


@pytest.fixture(scope="module")
def trained(dataset, whisper_dir):
    """The module's voice; its training ends with the default evaluation (Whisper tiny.en here)."""
    data_dir, file_id, _ = dataset
    cfg = _cfg(data_dir, file_id, "asr.model=tiny.en", f"asr.models_dir={whisper_dir}")
    return cfg, train(cfg)


def test_training_tracks_params_metrics_artifacts_and_registers(trained):
    cfg, result = trained
    tracker = Tracker.from_config(cfg.logger)
    assert result.model_id.startswith("m-") and result.version == 1 and result.epochs == {"sovits": 1, "gpt": 1}
    parent = tracker.client.get_run(result.run_id)
    assert parent.data.params["model.version"] == "v2" and parent.data.params["data.file_id"] == cfg.data.file_id
    assert parent.data.tags["mockvox.dataset_version"] == DatasetStore(cfg.paths.data_dir).versions(
        cfg.data.file_id)[-1]["version"]  # fmt: skip
    children = tracker.client.search_runs([tracker.experiment_id], f"tags.mlflow.parentRunId = '{result.run_id}'")
    stages = {c.data.tags["mockvox.stage"]: c for c in children}
    assert set(stages) == {"sovits", "gpt"}
    # Lightning's names: per step `<split>/<name>_step`, per epoch `<split>/<name>_epoch`
    assert {"train/loss_mel_epoch", "train/loss_d_step", "train/loss_g_epoch"} <= set(stages["sovits"].data.metrics)
    assert {"train/loss_step", "train/acc_epoch"} <= set(stages["gpt"].data.metrics)
    history = tracker.client.get_metric_history(stages["gpt"].info.run_id, "train/loss_step")
    assert len(history) >= 2  # per step
    for stage, run in stages.items():
        paths = [a.path for a in tracker.client.list_artifacts(run.info.run_id)]
        assert "checkpoints" in paths and "samples" in paths, (stage, paths)
        samples = tracker.client.list_artifacts(run.info.run_id, "samples/epoch_000")
        kinds = {Path(a.path).suffix for a in samples}
        assert ".png" in kinds, (stage, samples)
        if stage == "sovits":
            assert ".wav" in kinds
    versions = tracker.client.search_model_versions(f"name='{result.name}'")
    assert [int(v.version) for v in versions] == [1] and version_model_id(versions[0]) == result.model_id
    assert resolve_model_id(tracker, f"models:/{result.name}@latest") == result.model_id
    assert resolve_model_id(tracker, f"models:/{result.name}/1") == result.model_id


def test_training_ends_with_an_evaluation_beside_its_floor_and_ceiling(trained, dataset, tmp_path):
    from mockvox.data.datasets import HELD_OUT

    cfg, result = trained
    data_dir, file_id, _ = dataset
    # one of the sample's three slices is held out (ceil(0.1 * 3)), never the default reference
    assert len(result.holdout) == 1
    tracker = Tracker.from_config(cfg.logger)
    voice = download_voice(tracker, result.model_id, tmp_path)
    meta = yaml.safe_load((voice / "mockvox.yaml").read_text())
    assert meta["training"]["holdout"] == result.holdout and len(meta["holdout"]) == 1
    assert (voice / meta["holdout"][0]["audio"]).is_file() and meta["holdout"][0]["text"]
    assert result.holdout[0] not in meta["reference"]["audio"]
    from mockvox.data.datasets import GPTDataset

    features = next(Path(cfg.paths.features_dir).glob(f"{file_id}/*/name2text.json")).parent
    held = GPTDataset(features, min_items=0, exclude=result.holdout)
    assert held.dropped[result.holdout[0]] == HELD_OUT and result.holdout[0] not in held.unique_keys
    # the scores: on the run, in the result, with the floor (random start) and the ceiling (the real slice)
    evaluation = result.evaluation
    assert evaluation["model_id"] == result.model_id and evaluation["run_id"] == result.run_id
    metrics = tracker.client.get_run(result.run_id).data.metrics
    for prefix in ("eval/", "eval/floor/", "eval/ceiling/"):
        for name in ("wer", "cer", "speaker_sim", "dnsmos", "duration_ratio"):
            assert np.isfinite(metrics[prefix + name]) and metrics[prefix + name] == result.metrics[prefix + name]
    assert {row["voice"] for row in evaluation["sentences"]} == {"voice", "floor", "real"}
    assert metrics["eval/ceiling/wer"] < metrics["eval/wer"]  # a one-epoch voice from scratch is no speaker yet
    artifacts = {a.path for a in tracker.client.list_artifacts(result.run_id, "eval")}
    assert {"eval/sentences.json", "eval/summary.png", "eval/audio"} <= artifacts
    version = tracker.client.get_model_version(result.name, str(result.version))
    assert float(version.tags["eval/wer"]) == pytest.approx(metrics["eval/wer"], abs=1e-4)


def test_voice_folder_uses_official_export_formats(trained, tmp_path):
    from mockvox.checkpoints import load_gpt_checkpoint, load_sovits_checkpoint

    cfg, result = trained
    voice = download_voice(Tracker.from_config(cfg.logger), result.model_id, tmp_path)
    meta = yaml.safe_load((voice / "mockvox.yaml").read_text())
    assert meta["version"] == "v2" and meta["sample_rate"] == 32000
    assert meta["training"]["epochs"] == {"sovits": 1, "gpt": 1}
    reference = meta["reference"]  # a dataset slice bundled as the logged model's input example
    assert reference["language"] == "en" and reference["text"] and (voice / reference["audio"]).is_file()
    gpt = load_gpt_checkpoint(voice / meta["gpt"]["file"])
    assert all(k.startswith("model.") for k in gpt.weight) and next(iter(gpt.weight.values())).dtype.is_floating_point
    sovits = load_sovits_checkpoint(voice / meta["sovits"]["file"])
    assert not any(k.startswith("enc_q.") for k in sovits.weight)


def test_pyfunc_predicts_audio_at_the_model_rate(trained):
    import pandas as pd

    cfg, result = trained
    model = mlflow.pyfunc.load_model(f"models:/{result.model_id}")
    ref = SAMPLES / "voice_en.ogg"
    out = model.predict(
        pd.DataFrame([{"text": "Hello there, my friend.", "ref_audio": str(_reference(ref)),
                       "prompt_text": "This is a test.", "prompt_lang": "en", "text_lang": "en"}]),
        params={"seed": 1, "max_tokens": 40},
    )  # fmt: skip
    audio = out.iloc[0]["audio"]
    assert out.iloc[0]["sample_rate"] == 32000
    assert audio.ndim == 1 and np.isfinite(audio).all() and np.abs(audio).max() <= 1.0
    pause = int(0.3 * 32000)  # fragment_interval after the fragment
    assert 10 * 1280 <= len(audio) - pause <= 40 * 1280 and (len(audio) - pause) % 1280 == 0  # whole tokens


def _reference(path: Path) -> Path:
    """A 5 s reference cut from the sample (the official 3-10 s rule)."""
    import soundfile as sf

    from mockvox.audio.io import load_audio

    out = Path(tempfile.gettempdir()) / "mockvox-ref5s.wav"
    if not out.exists():
        audio, _ = load_audio(path, 32000)
        sf.write(out, audio[: 5 * 32000], 32000)
    return out


def test_info_reports_version_epochs_dataset_metrics(trained, tmp_path):
    cfg, result = trained
    info = model_info(Tracker.from_config(cfg.logger), result.model_id, tmp_path)
    assert info["version"] == "v2" and info["epochs"] == {"sovits": 1, "gpt": 1}
    assert info["file_id"] == cfg.data.file_id and info["registered"][0]["version"] == 1
    assert any(k.startswith("gpt/train/") for k in info["metrics"])


def test_resume_adds_epochs_and_audio_into_a_new_version(trained, dataset, tmp_path):
    from omegaconf import OmegaConf

    from mockvox.train.resume import load_resume_state

    cfg, first = trained
    data_dir, file_id, pipe = dataset
    pipe.add(file_id, SAMPLES / "voice_en.ogg")  # new audio since the first training
    tracker = Tracker.from_config(cfg.logger)
    state = load_resume_state(tracker, first.model_id, tmp_path / "cache")
    assert state.epochs == {"sovits": 1, "gpt": 1} and set(state.checkpoints) == {"sovits", "gpt"}
    resumed_cfg = OmegaConf.create(state.config)
    resumed_cfg.epochs = {"sovits": 1, "gpt": 2}
    resumed_cfg.resume_from = first.model_id
    resumed_cfg.evaluate = False
    second = train(resumed_cfg, resume=state)
    assert second.holdout == first.holdout and second.evaluation is None  # the same slices stay out
    assert second.model_id != first.model_id and second.version == 2 and second.name == first.name
    assert second.epochs == {"sovits": 2, "gpt": 3}
    new_version = DatasetStore(data_dir).versions(file_id)[-1]["version"]
    assert tracker.client.get_run(second.run_id).data.tags["mockvox.dataset_version"] == new_version
    assert resolve_model_id(tracker, f"models:/{first.name}@latest") == second.model_id
    old = mlflow.pyfunc.load_model(f"models:/{first.name}/1")  # the old version still loads
    assert old.metadata.model_id == first.model_id


def test_interrupted_training_leaves_the_old_model_intact(trained, monkeypatch, tmp_path):
    from mockvox.train import stages

    cfg, first = trained
    tracker = Tracker.from_config(cfg.logger)
    before = sorted(int(v.version) for v in tracker.client.search_model_versions(f"name='{first.name}'"))
    voice = download_voice(tracker, first.model_id, tmp_path / "before")
    digest = {p.name: p.read_bytes() for p in voice.iterdir() if p.is_file()}

    def interrupted(stage, *args, **kwargs):
        if stage == "gpt":
            raise KeyboardInterrupt("simulated Ctrl-C in the GPT stage")
        return real(stage, *args, **kwargs)

    real = stages.run_stage
    monkeypatch.setattr(stages, "run_stage", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    after = sorted(int(v.version) for v in tracker.client.search_model_versions(f"name='{first.name}'"))
    assert after == before
    runs = tracker.client.search_runs([tracker.experiment_id], "attributes.status = 'KILLED'")
    assert runs, "the interrupted run is marked KILLED"
    shutil.rmtree(tmp_path / "after", ignore_errors=True)
    again = download_voice(tracker, first.model_id, tmp_path / "after")
    assert {p.name: p.read_bytes() for p in again.iterdir() if p.is_file()} == digest
    assert mlflow.pyfunc.load_model(f"models:/{first.model_id}") is not None


def test_tiny_v4_trains_registers_and_predicts_48khz(dataset, whisper_dir):
    import pandas as pd

    data_dir, file_id, _ = dataset
    cfg = compose_train(["experiment=tiny_v4", f"paths.data_dir={data_dir}", f"data.file_id={file_id}",
                         "callbacks.progress=false", "logger.experiment_name=v4", "name=v4-voice",
                         "asr.model=tiny.en", f"asr.models_dir={whisper_dir}", "evaluation.limit=1",
                         "evaluation.max_tokens=20", "evaluation.chart=false"])  # fmt: skip
    result = train(cfg)
    assert result.model_id.startswith("m-") and result.version == 1
    # the v4 floor: the random base generator under zero LoRA adapters, with the voice's reference
    kinds = {row["voice"] for row in result.evaluation["sentences"]}
    assert kinds == {"voice", "floor", "real"} and "eval/floor/wer" in result.metrics
    model = mlflow.pyfunc.load_model("models:/v4-voice@latest")
    row = {"text": "Hello there.", "ref_audio": str(_reference(SAMPLES / "voice_en.ogg")),
           "prompt_text": "This is a test.", "prompt_lang": "en", "text_lang": "en"}  # fmt: skip
    out = model.predict(pd.DataFrame([row]), params={"seed": 2, "max_tokens": 20, "sample_steps": 4})
    audio = out.iloc[0]["audio"]
    pause = int(0.3 * 48000)
    assert out.iloc[0]["sample_rate"] == 48000 and np.isfinite(audio).all()
    assert 10 * 1920 <= len(audio) - pause <= 20 * 1920 and (len(audio) - pause) % 1920 == 0  # 1920 samples/token
