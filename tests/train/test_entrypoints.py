"""Entry points on the real sample dataset: one-batch runs per stage and version, sweeps, the DVC pipeline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mockvox.train.config import compose_train
from mockvox.train.run import train
from mockvox.train.tracking import Tracker

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("experiment", ["demo", "tiny_v4"])
def test_fast_dev_run_of_both_stages_registers_nothing(dataset, experiment, tmp_path):
    data_dir, file_id, _ = dataset
    cfg = compose_train([f"experiment={experiment}", "debug=fdr", f"paths.data_dir={data_dir}",
                         f"data.file_id={file_id}", "callbacks.progress=false",
                         f"logger.experiment_name=fdr-{experiment}"])  # fmt: skip
    tracker = Tracker.from_config(cfg.logger)
    registered_before = _registry(tracker)  # the store is shared with the other tests on this dataset
    result = train(cfg)
    assert result.model_id is None and result.version is None and result.name is None
    assert {
        "sovits/train/loss_mel_step" if experiment == "demo" else "sovits/train/loss_cfm_step",
        "gpt/train/loss_step",
    } <= set(result.metrics)
    assert _registry(tracker) == registered_before  # no registry version at all, under voice-{id} or another name
    assert not tracker.client.search_logged_models(experiment_ids=[tracker.experiment_id])  # nor a logged model
    runs = tracker.client.search_runs([tracker.experiment_id])
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)  # parent + two stages


def _registry(tracker: Tracker) -> set[tuple[str, str]]:
    return {(v.name, v.version) for v in tracker.client.search_model_versions("")}


def _env() -> dict:
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    keep = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return {
        **keep,
        "PATH": path,
        "PYTHONPATH": str(REPO),
        "DVC_NO_ANALYTICS": "1",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "0",
    }


def test_optuna_sweep_of_two_jobs_minimises_the_evaluation_cer(dataset, whisper_dir, tmp_path):
    data_dir, file_id, _ = dataset
    cmd = [sys.executable, "-m", "mockvox.train", "-m", "hparams_search=optuna", "hparams_search.objective=eval/cer",
           "experiment=demo", "hydra.sweeper.n_trials=2", "hydra.sweeper.sampler.n_startup_trials=2",
           f"paths.data_dir={data_dir}", f"data.file_id={file_id}", "data.min_items=4", "epochs.sovits=1",
           "epochs.gpt=1", "callbacks.progress=false", "callbacks.samples.every_n_epochs=0", "name=sweep-voice",
           "logger.experiment_name=sweep", "asr.model=tiny.en", f"asr.models_dir={whisper_dir}",
           "evaluation.limit=1", "evaluation.max_tokens=40", "evaluation.floor=false",
           "evaluation.chart=false"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    tracker = Tracker(f"sqlite:///{data_dir}/mlflow.db", "sweep")
    parents = [r for r in tracker.client.search_runs([tracker.experiment_id]) if "mockvox.stage" not in r.data.tags]
    assert len(parents) == 2
    lrs = {r.data.params["model.gpt.optimizer.lr"] for r in parents}
    assert len(lrs) == 2  # Optuna proposed two learning rates
    versions = tracker.client.search_model_versions("name='sweep-voice'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    (results,) = (data_dir / "hydra" / "multirun").rglob("optimization_results.yaml")
    best = yaml.safe_load(results.read_text())
    cers = sorted(r.data.metrics["eval/cer"] for r in parents)  # each job's evaluation, the value it returned
    assert best["best_value"] == pytest.approx(cers[0]) and set(best["best_params"]) == {
        "model.gpt.optimizer.lr", "model.sovits.optimizer.lr"}  # fmt: skip


def test_an_objective_the_training_does_not_produce_is_a_clear_error():
    from mockvox.train.__main__ import objective
    from mockvox.train.run import TrainResult

    result = TrainResult(None, None, None, None, None, None, metrics={"gpt/train/loss_epoch": 2.0})
    assert objective(result, "gpt/train/loss_epoch") == 2.0
    with pytest.raises(KeyError, match=r"'eval/cer'.*evaluate=true.*gpt/train/loss_epoch"):
        objective(result, "eval/cer")
    result.evaluation = {"error": "FileNotFoundError: no Whisper model"}
    with pytest.raises(KeyError, match="the evaluation failed: FileNotFoundError"):
        objective(result, "eval/cer")


def test_dvc_repro_runs_prepare_features_train_evaluate_on_the_sample(tmp_path, whisper_dir):
    project = tmp_path / "project"
    project.mkdir()
    for name in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy(REPO / name, project / name)
    shutil.copytree(REPO / "conf", project / "conf")
    (project / "samples").mkdir()
    shutil.copy(REPO / "samples" / "voice_en.ogg", project / "samples")
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].values()
    for dep in {d for stage in stages for d in stage.get("deps", []) if d.startswith("mockvox/")}:
        if (REPO / dep).is_dir():  # dependency paths of the stages (the code itself comes from PYTHONPATH)
            (project / dep).mkdir(parents=True, exist_ok=True)
        else:
            (project / dep).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / dep, project / dep)
    env = {**_env(), "MOCKVOX_PRETRAINED": str(whisper_dir)}  # models come from the home, not the project
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=project, check=True, env=env)
    proc = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    metrics = json.loads((project / "data" / "dvc_stages" / "train.json").read_text())
    assert metrics["model_id"].startswith("m-") and metrics["epochs"] == {"sovits": 4, "gpt": 4}
    assert "eval/wer" not in metrics["metrics"]  # params.yaml: evaluate=false, the evaluate stage does it
    scores = json.loads((project / "data" / "dvc_stages" / "eval.json").read_text())
    assert scores["model_id"] == metrics["model_id"] and scores["metric"] == "wer"
    for key in ("eval/wer", "eval/speaker_sim", "eval/dnsmos", "eval/floor/wer", "eval/ceiling/wer"):
        assert isinstance(scores[key], float), (key, scores)
    shown = subprocess.run([sys.executable, "-m", "dvc", "metrics", "show", "--json"], cwd=project, env=env,
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert "eval/speaker_sim" in shown.stdout  # DVC reads the evaluation as metrics
    features = json.loads((project / "data" / "dvc_stages" / "features.json").read_text())
    assert features["items"] >= 2
    assert (project / "dvc.lock").is_file()
    again = subprocess.run(
        [sys.executable, "-m", "dvc", "status"], cwd=project, env=env, capture_output=True, text=True
    )
    assert "up to date" in again.stdout.lower() or again.stdout.strip() == "", again.stdout
