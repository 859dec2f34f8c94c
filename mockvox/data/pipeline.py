"""upload / add / revise: recordings in, sliced + denoised + transcribed + versioned datasets out.

Every operation prepares its result in a staging folder and swaps it into place with renames, ASR manifest last,
so a failure at any step leaves the previous dataset exactly as it was.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import filelock
import numpy as np

from mockvox.audio.denoise import DenoiseConfig, denoise
from mockvox.audio.io import AudioError, load_audio, resample, write_wav
from mockvox.audio.slicer import Slicer, SlicerConfig, loudness_mix
from mockvox.audio.spectrogram import OFFICIAL
from mockvox.data.asr import ASR_SAMPLE_RATE, AsrConfig, Transcriber, check_language
from mockvox.data.ids import new_file_id, slice_key, validate_file_id, validate_slice_key
from mockvox.data.store import DatasetStore, asr_result, swap_dir, write_json_atomic
from mockvox.data.versioning import DatasetVersioner

SAMPLE_RATE = OFFICIAL.sampling_rate  # the slice rate: slice keys count samples at it (the SoVITS input rate)
Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class PrepareConfig:
    """Preprocessing settings (``conf/prepare.yaml`` composes them)."""

    slicer: SlicerConfig = field(default_factory=SlicerConfig)
    denoise: DenoiseConfig = field(default_factory=DenoiseConfig)
    asr: AsrConfig = field(default_factory=AsrConfig)
    max_seconds: float = 3600.0  # longest accepted recording
    min_seconds: float = 0.6  # shorter recordings are rejected: training uses slices longer than 0.6 s only
    peak: float = 0.9  # per-slice loudness mix (official slice_audio.py)
    alpha: float = 0.25


def prepare_settings(cfg) -> tuple[PrepareConfig, Path]:
    """``PrepareConfig`` and the data root from a composed ``prepare`` config."""
    settings = PrepareConfig(
        slicer=SlicerConfig(**cfg.slicer),
        denoise=DenoiseConfig(**cfg.denoiser),
        asr=AsrConfig(**cfg.asr),
        max_seconds=float(cfg.max_seconds),
        peak=float(cfg.peak),
        alpha=float(cfg.alpha),
        min_seconds=float(cfg.min_seconds),
    )
    return settings, Path(cfg.paths.data_dir)


@dataclass
class DatasetResult:
    file_id: str
    version: str
    new_keys: list[str]
    results: list[dict]
    upload_id: str | None = None

    def as_dict(self) -> dict:
        return {
            "file_id": self.file_id,
            "version": self.version,
            "slices": len(self.new_keys),
            "total_slices": len(self.results),
            "upload_id": self.upload_id,
            "asr": [r for r in self.results if r["key"] in set(self.new_keys)],
        }


class RevisionError(ValueError):
    """A revision request that cannot be applied (unknown key, duplicate, empty text...)."""


class DatasetBusy(RuntimeError):
    """Another change of the dataset holds it (a recording being added): retry later."""


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


class DatasetPipeline:
    """The dataset operations over one store."""

    def __init__(
        self,
        store: DatasetStore,
        config: PrepareConfig | None = None,
        transcriber: Transcriber | None = None,
        versioner: DatasetVersioner | None = None,
    ) -> None:
        self.store = store
        self.cfg = config or PrepareConfig()
        self.transcriber = transcriber or Transcriber(self.cfg.asr)
        self._versioner = versioner

    @property
    def versioner(self) -> DatasetVersioner:
        if self._versioner is None:
            self._versioner = DatasetVersioner(self.store)
        return self._versioner

    def locked(self, file_id: str, timeout: float = 3600) -> filelock.FileLock:
        """One change at a time per dataset, across threads and processes (an API revising while a worker adds)."""
        folder = self.store.root / ".locks"
        folder.mkdir(parents=True, exist_ok=True)
        return filelock.FileLock(folder / f"{validate_file_id(file_id)}.lock", timeout=timeout)

    # -- operations ---------------------------------------------------------------------------------------------
    def upload(
        self,
        path: str | os.PathLike,
        language: str = "zh",
        denoise_audio: bool = True,
        progress: Progress = _no_progress,
        file_id: str | None = None,
    ) -> DatasetResult:
        """Create a dataset from one recording (under ``file_id`` when the caller minted it, e.g. the API)."""
        check_language(language)
        file_id = validate_file_id(file_id) if file_id is not None else new_file_id()
        if self.store.exists(file_id):
            raise ValueError(f"dataset {file_id} exists already")
        audio = self._load(path)
        upload_name = self._save_upload(path, file_id)
        staging = self.store.staging_dir()
        try:
            keys, texts, lengths = self._process(audio, 0, language, denoise_audio, staging, progress)
            results = [asr_result(k, t) for k, t in zip(keys, texts, strict=True)]
            source = {"upload": upload_name, "offset": 0, "samples": len(audio)}
            with self.versioner.locked():  # the change and its version record in one turn
                self._commit(
                    file_id,
                    staging,
                    {"language": language, "denoised": denoise_audio, "results": results},
                    {"sample_rate": SAMPLE_RATE, "sources": [source], "slices": lengths},
                    fresh=True,
                )
                version = self.versioner.record(file_id, "upload")
        except BaseException:
            (self.store.upload_dir() / upload_name).unlink(missing_ok=True)
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return DatasetResult(file_id, version, keys, results, upload_id=file_id)

    def add(self, file_id: str, path: str | os.PathLike, progress: Progress = _no_progress) -> DatasetResult:
        """Append a recording to an existing dataset; its slices are placed after every earlier source."""
        with self.locked(file_id):
            return self._add(file_id, path, progress)

    def _add(self, file_id: str, path: str | os.PathLike, progress: Progress) -> DatasetResult:
        output = self.store.read_output(file_id)
        info = self.store.read_dataset(file_id)
        audio = self._load(path)
        add_id = new_file_id()
        offset = max(s["offset"] + s["samples"] for s in info["sources"])
        upload_name = self._save_upload(path, add_id)
        staging = self.store.staging_dir()
        try:
            self._link_existing(file_id, staging, output["denoised"])
            keys, texts, lengths = self._process(
                audio, offset, output["language"], output["denoised"], staging, progress
            )
            output["results"] += [asr_result(k, t) for k, t in zip(keys, texts, strict=True)]
            info["sources"].append({"upload": upload_name, "offset": offset, "samples": len(audio)})
            info["slices"].update(lengths)
            with self.versioner.locked():
                self._commit(file_id, staging, output, info)
                version = self.versioner.record(file_id, "add")
        except BaseException:
            (self.store.upload_dir() / upload_name).unlink(missing_ok=True)
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return DatasetResult(file_id, version, keys, output["results"], upload_id=add_id)

    def revise(self, file_id: str, results: Iterable[dict], remove: Iterable[str] = (),
               wait_s: float = 3600) -> DatasetResult:  # fmt: skip
        """Set the text of the given keys (others keep theirs); ``remove`` drops slices from the dataset.

        Raises:
            DatasetBusy: another change held the dataset for ``wait_s`` seconds.
        """
        try:
            with self.locked(file_id, wait_s):
                return self._revise(file_id, results, remove)
        except filelock.Timeout:
            raise DatasetBusy(f"dataset {file_id} is busy with another change (a recording being added)") from None

    def _revise(self, file_id: str, results: Iterable[dict], remove: Iterable[str]) -> DatasetResult:
        output = self.store.read_output(file_id)
        info = self.store.read_dataset(file_id)
        texts, remove = self._check_revision(output, results, remove)
        kept = []
        for item in output["results"]:
            if item["key"] in remove:
                continue
            if item["key"] in texts:
                item = asr_result(item["key"], texts[item["key"]])  # a revised text clears the empty flag
            kept.append(item)
        output["results"] = kept
        for key in remove:
            info["slices"].pop(key, None)
        staging = self.store.staging_dir()
        try:
            if remove:
                self._link_existing(file_id, staging, output["denoised"], skip=remove)
            with self.versioner.locked():
                self._commit(file_id, staging, output, info, audio=bool(remove))
                version = self.versioner.record(file_id, "revision")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return DatasetResult(file_id, version, sorted(texts), output["results"])

    def process_to(
        self,
        path: str | os.PathLike,
        language: str,
        denoise_audio: bool,
        out_dir: Path,
        progress: Progress = _no_progress,
    ) -> list[dict]:
        """Process one recording into a plain folder (``sliced/``, ``denoised/``, ``output.json``), for DVC stages."""
        check_language(language)
        audio = self._load(path)
        out_dir = Path(out_dir)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = self.store.staging_dir()
        try:
            keys, texts, _ = self._process(audio, 0, language, denoise_audio, staging, progress)
            results = [asr_result(k, t) for k, t in zip(keys, texts, strict=True)]
            write_json_atomic(
                staging / "output.json", {"language": language, "denoised": denoise_audio, "results": results}
            )
            swap_dir(staging, out_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return results

    # -- steps --------------------------------------------------------------------------------------------------
    def _load(self, path: str | os.PathLike) -> np.ndarray:
        audio, _ = load_audio(path, SAMPLE_RATE, max_seconds=self.cfg.max_seconds)
        if len(audio) < self.cfg.min_seconds * SAMPLE_RATE:
            raise AudioError(
                f"{Path(path).name}: {len(audio) / SAMPLE_RATE:.2f} s of audio is shorter than the minimum useful "
                f"length of {self.cfg.min_seconds:g} s; upload a recording of speech"
            )
        return audio

    def _save_upload(self, path: str | os.PathLike, upload_id: str) -> str:
        ext = Path(path).suffix.lower().lstrip(".") or "data"
        if not ext.isalnum() or len(ext) > 8:
            ext = "data"
        name = f"{upload_id}.{ext}"
        target = self.store.upload_dir() / name
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{name}.tmp")
        shutil.copyfile(path, tmp)
        os.replace(tmp, target)
        return name

    def _process(
        self, audio: np.ndarray, offset: int, language: str, denoise_audio: bool, staging: Path, progress: Progress
    ) -> tuple[list[str], list[str], dict[str, int]]:
        """Slice (+ denoise) into ``staging`` and transcribe; keys are sample ranges shifted by ``offset``."""
        progress("slice", 0, 1)
        slices = Slicer(SAMPLE_RATE, self.cfg.slicer).slice(audio)
        progress("slice", 1, 1)
        clean = None
        if denoise_audio:
            progress("denoise", 0, 1)
            clean = denoise(audio, SAMPLE_RATE, self.cfg.denoise)
            progress("denoise", 1, 1)
        keys, texts, lengths = [], [], {}
        progress("asr", 0, len(slices))
        for n, piece in enumerate(slices):
            raw = audio[piece.start : piece.end]
            if float(np.abs(raw).max()) == 0.0:
                continue
            key = slice_key(offset + piece.start, offset + piece.end)
            write_wav(staging / "sliced" / f"{key}.wav", loudness_mix(raw, self.cfg.peak, self.cfg.alpha), SAMPLE_RATE)
            if clean is not None:
                denoised = loudness_mix(clean[piece.start : piece.end], self.cfg.peak, self.cfg.alpha)
                write_wav(staging / "denoised" / f"{key}.wav", denoised, SAMPLE_RATE)
            # Whisper hears the raw slice: it is trained on noisy speech and gating artefacts cost it words.
            texts.append(self.transcriber.transcribe(resample(raw, SAMPLE_RATE, ASR_SAMPLE_RATE), language))
            keys.append(key)
            lengths[key] = piece.end - piece.start
            progress("asr", n + 1, len(slices))
        if not keys:
            raise AudioError("no speech slices found in the recording")
        if not any(text.strip() for text in texts):
            seconds = sum(lengths.values()) / SAMPLE_RATE
            raise AudioError(
                f"no speech recognised in the recording: Whisper {self.cfg.asr.model!r} found no {language} words in "
                f"its {len(keys)} slice(s) ({seconds:.1f} s); upload a recording of speech"
            )
        return keys, texts, lengths

    def _link_existing(self, file_id: str, staging: Path, denoised: bool, skip: Iterable[str] = ()) -> None:
        """Hard-link the dataset's current slices into ``staging`` (copy where links are not possible)."""
        skip = set(skip)
        dirs = [("sliced", self.store.sliced_dir(file_id))]
        if denoised:
            dirs.append(("denoised", self.store.denoised_dir(file_id)))
        for name, src in dirs:
            dst = staging / name
            dst.mkdir(parents=True, exist_ok=True)
            for wav in src.glob("*.wav"):
                if wav.stem in skip:
                    continue
                try:
                    os.link(wav, dst / wav.name)
                except OSError:
                    shutil.copy2(wav, dst / wav.name)

    def _commit(
        self, file_id: str, staging: Path, output: dict, info: dict, fresh: bool = False, audio: bool = True
    ) -> None:
        """Swap the staged slices and the new manifests into place, ASR folder last."""
        asr = staging / "asr"
        write_json_atomic(asr / "output.json", output)
        write_json_atomic(asr / "dataset.json", info)
        if audio:
            swap_dir(staging / "sliced", self.store.sliced_dir(file_id))
            if output["denoised"]:
                swap_dir(staging / "denoised", self.store.denoised_dir(file_id))
        swap_dir(asr, self.store.asr_dir(file_id))

    @staticmethod
    def _check_revision(output: dict, results: Iterable[dict], remove: Iterable[str]) -> tuple[dict, set]:
        known = {item["key"] for item in output["results"]}
        if not isinstance(results, list):
            raise RevisionError('results must be a JSON array of {"key", "text"} objects')
        texts: dict[str, str] = {}
        for item in results:
            if (
                not isinstance(item, dict)
                or not isinstance(item.get("key"), str)
                or not isinstance(item.get("text"), str)
            ):
                raise RevisionError(f'invalid item {item!r}: expected {{"key": str, "text": str}}')
            key = validate_slice_key(item["key"])
            if key not in known:
                raise RevisionError(f"unknown key {key!r}: not a slice of this dataset")
            if key in texts:
                raise RevisionError(f"key {key!r} appears twice")
            if not item["text"].strip():
                raise RevisionError(f"empty text for key {key!r}: remove the slice instead (remove option)")
            texts[key] = item["text"].strip()
        remove = {validate_slice_key(k) for k in remove}
        unknown = sorted(remove - known)
        if unknown:
            raise RevisionError(f"cannot remove unknown keys: {', '.join(unknown)}")
        if remove & texts.keys():
            raise RevisionError("a key cannot be both revised and removed")
        if remove >= known:
            raise RevisionError("removing every slice would leave an empty dataset")
        return texts, remove
