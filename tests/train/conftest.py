"""A real dataset (the sample voice through slicer + Whisper tiny.en, no denoising) shared by the training tests."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import SAMPLES


@pytest.fixture(scope="session")
def dataset(tmp_path_factory, whisper_dir):
    """``(data_dir, file_id, pipeline)`` in a fresh git + DVC project."""
    from mockvox.data.asr import AsrConfig
    from mockvox.data.pipeline import DatasetPipeline, PrepareConfig
    from mockvox.data.store import DatasetStore
    from mockvox.data.versioning import DatasetVersioner

    root = tmp_path_factory.mktemp("train-project")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / ".gitignore").write_text("/data/*\n!/data/dvc/\n")
    DatasetVersioner.init_repo(root, str(root.parent / "remote"))
    settings = PrepareConfig(asr=AsrConfig(model="tiny.en", models_dir=str(whisper_dir)))
    pipe = DatasetPipeline(DatasetStore(root / "data"), settings)
    result = pipe.upload(SAMPLES / "voice_en.ogg", "en", denoise_audio=False)
    return root / "data", result.file_id, pipe
