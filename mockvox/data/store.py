"""The dataset store: per file id, the uploads, raw and denoised slices and the ASR manifest, all written atomically.

Layout under the data root (MockVox's, plus bookkeeping):
    upload/{id}.{ext}                 the recording as uploaded (``add`` stores its recording under its own id)
    sliced/{id}/{key}.wav             raw slices, 32 kHz int16, ``key`` = ``{start:010d}_{end:010d}``
    denoised/{id}/{key}.wav           the same slices denoised at 32 kHz (absent when denoise is off)
    asr/{id}/output.json              {"language", "denoised", "results": [{"key", "text"}]}; a slice in which
                                      no speech was recognised also has ``"empty": true`` (not trained on)
    asr/{id}/dataset.json             sources (uploads and their offsets on the dataset timeline) and slice lengths
    dvc/{id}.dvc                      the DVC record of the current version
    versions/{id}.jsonl               one line per version: hash, operation, time
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from mockvox import atomic
from mockvox.data.ids import validate_file_id


class DatasetNotFound(LookupError):
    """No dataset with this file id."""


def write_json_atomic(path: Path, data) -> None:
    """Write JSON beside ``path`` and rename it into place."""
    atomic.write_text(path, json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def asr_result(key: str, text: str) -> dict:
    """One ``output.json`` result; an empty transcript is flagged ``"empty": true``."""
    text = text.strip()
    return {"key": key, "text": text} if text else {"key": key, "text": "", "empty": True}


def has_transcript(result: dict) -> bool:
    """Whether training may use a result: it has text and no ``empty`` flag (revising its text clears the flag)."""
    return bool(result["text"].strip()) and not result.get("empty")


def swap_dir(staged: Path, final: Path) -> None:
    """Replace directory ``final`` by ``staged`` with renames only (the old copy is removed afterwards)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if not final.exists():
        os.replace(staged, final)
        return
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(final, old)
    try:
        os.replace(staged, final)
    except BaseException:
        os.replace(old, final)
        raise
    shutil.rmtree(old, ignore_errors=True)


class DatasetStore:
    """Paths and reads of the datasets under one data root; every file id is validated before use."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).resolve()
        self._recover()

    def _recover(self) -> None:
        """Undo a directory swap interrupted between its two renames."""
        for kind in ("sliced", "denoised", "asr"):
            base = self.root / kind
            if not base.is_dir():
                continue
            for old in base.glob(".*.old"):
                final = base / old.name[1:-4]
                if not final.exists():
                    os.replace(old, final)

    def upload_dir(self) -> Path:
        return self.root / "upload"

    def sliced_dir(self, file_id: str) -> Path:
        return self.root / "sliced" / validate_file_id(file_id)

    def denoised_dir(self, file_id: str) -> Path:
        return self.root / "denoised" / validate_file_id(file_id)

    def asr_dir(self, file_id: str) -> Path:
        return self.root / "asr" / validate_file_id(file_id)

    def output_json(self, file_id: str) -> Path:
        return self.asr_dir(file_id) / "output.json"

    def dataset_json(self, file_id: str) -> Path:
        return self.asr_dir(file_id) / "dataset.json"

    def versions_file(self, file_id: str) -> Path:
        return self.root / "versions" / f"{validate_file_id(file_id)}.jsonl"

    def staging_dir(self) -> Path:
        """A fresh private directory on the data root's file system (so renames out of it are atomic)."""
        base = self.root / ".staging"
        base.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=base))

    def exists(self, file_id: str) -> bool:
        return self.output_json(file_id).is_file()

    def read_output(self, file_id: str) -> dict:
        path = self.output_json(file_id)
        if not path.is_file():
            raise DatasetNotFound(f"no dataset with file id {file_id}")
        return json.loads(path.read_text(encoding="utf-8"))

    def read_dataset(self, file_id: str) -> dict:
        self.read_output(file_id)
        return json.loads(self.dataset_json(file_id).read_text(encoding="utf-8"))

    def versions(self, file_id: str) -> list[dict]:
        path = self.versions_file(file_id)
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def audio_dir(self, file_id: str) -> Path:
        """Where the training audio of the dataset lives (denoised slices when the dataset is denoised)."""
        return self.denoised_dir(file_id) if self.read_output(file_id)["denoised"] else self.sliced_dir(file_id)

    def manifest(self, file_id: str) -> dict:
        """Everything known about a dataset: ASR results, sources, slices, and its versions."""
        output = self.read_output(file_id)
        info = self.read_dataset(file_id)
        versions = self.versions(file_id)
        return {
            "file_id": file_id,
            "language": output["language"],
            "denoised": output["denoised"],
            "version": versions[-1]["version"] if versions else None,
            "sources": info["sources"],
            "slices": len(output["results"]),
            "duration_s": round(sum(info["slices"].values()) / info["sample_rate"], 3),
            "results": output["results"],
            "empty": [r["key"] for r in output["results"] if not has_transcript(r)],  # not trained on
            "versions": versions,
            "paths": {
                "sliced": str(self.sliced_dir(file_id)),
                "denoised": str(self.denoised_dir(file_id)) if output["denoised"] else None,
                "asr": str(self.output_json(file_id)),
            },
        }
