"""SampleCallback: samples of real tiny modules written as WAV/PNG and logged to MLflow or the run folder."""

from __future__ import annotations

import json
import re

import lightning as L
import soundfile as sf
import torch
from lightning.pytorch.loggers import MLFlowLogger
from mlflow.tracking import MlflowClient

from mockvox.train.callbacks import SampleCallback, StageProgressBar
from tests.train.test_modules import _loader, gpt_batch, gpt_module, sovits_batch, v2_module


def _trainer(**kw) -> L.Trainer:
    opts = dict(accelerator="cpu", enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    return L.Trainer(**{**opts, **kw})


def test_gpt_samples_become_mlflow_artifacts_every_epoch(tmp_path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    logger = MLFlowLogger(experiment_name="samples", tracking_uri=uri, artifact_location=str(tmp_path / "artifacts"))
    trainer = _trainer(max_epochs=2, logger=logger, callbacks=[SampleCallback(sample_rate=32000)])
    trainer.fit(gpt_module(), _loader([gpt_batch(0), gpt_batch(1)]))
    client = MlflowClient(tracking_uri=uri)
    for epoch in (0, 1):
        folder = f"samples/epoch_{epoch:03d}"
        names = {a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(logger.run_id, folder)}
        assert names == {"tokens.png", "attention.png", "summary.json"}
    local = client.download_artifacts(logger.run_id, "samples/epoch_001/summary.json", str(tmp_path / "dl"))
    summary = json.loads(open(local).read())
    assert summary["text_len"] == 9 and summary["prompt_len"] == 14 // 3  # first item of the first batch
    assert 0.0 <= summary["accuracy"] <= 1.0
    assert not (tmp_path / "samples").exists()


class _DataModule(L.LightningDataModule):
    def train_dataloader(self):
        return _loader([gpt_batch(0)])

    def sample_dataloader(self):
        return _loader([gpt_batch(5, phone_lens=(4, 7), sem_lens=(12, 9)), gpt_batch(6)])


def test_uses_the_first_sample_batch_of_the_datamodule(tmp_path) -> None:
    trainer = _trainer(max_epochs=1, logger=False, default_root_dir=tmp_path, limit_val_batches=0,
                       callbacks=[SampleCallback(sample_rate=32000)])  # fmt: skip
    trainer.fit(gpt_module(), datamodule=_DataModule())
    summary = json.loads((tmp_path / "samples" / "epoch_000" / "summary.json").read_text())
    assert summary["text_len"] == 4 and summary["prompt_len"] == 4


def test_sovits_wavs_and_mels_copied_to_the_run_folder_every_n_epochs(tmp_path) -> None:
    batch = sovits_batch(frames=(34, 30))
    trainer = _trainer(max_epochs=2, logger=False, default_root_dir=tmp_path,
                       callbacks=[SampleCallback(sample_rate=32000, every_n_epochs=2)])  # fmt: skip
    trainer.fit(v2_module(), _loader([batch]))
    assert not (tmp_path / "samples" / "epoch_000").exists()
    folder = tmp_path / "samples" / "epoch_001"
    assert {p.name for p in folder.iterdir()} == {"wav_real.wav", "wav_gen.wav", "mel.png"}
    real, sr = sf.read(folder / "wav_real.wav")
    assert sr == 32000 and len(real) == 34 * 640
    expected = torch.clamp(batch["wav"][0, 0, : 34 * 640], -1, 1).numpy()
    assert abs(real - expected).max() < 2 / 32767
    gen, _ = sf.read(folder / "wav_gen.wav")
    assert len(gen) == 34 * 640
    assert (folder / "mel.png").read_bytes()[:4] == b"\x89PNG"


def test_stage_bar_counts_every_batch_of_the_run_with_its_losses(tmp_path, capsys) -> None:
    trainer = _trainer(max_epochs=2, logger=False, default_root_dir=tmp_path, enable_progress_bar=True,
                       log_every_n_steps=1, callbacks=[StageProgressBar("gpt")])  # fmt: skip
    trainer.fit(gpt_module(), _loader([gpt_batch(0), gpt_batch(1)]))
    lines = [line for line in capsys.readouterr().err.replace("\r", "\n").splitlines() if line.strip()]
    assert re.fullmatch(r"\s+gpt 100%\|█+\| 4/4 batch \[00:\d\d, epoch 2/2, loss=\S+, acc=\S+\]", lines[-1])
    assert all("gpt" in line for line in lines)  # one bar, no other progress output
