"""Reference recordings uploaded for synthesis: checked at upload (3-10 s, decodable), kept as WAV with metadata."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import msgspec

from api.schemas import RefOut
from mockvox.atomic import write_text
from mockvox.audio.io import AudioError, load_audio, resample, write_wav
from mockvox.audio.probe import AudioLimits
from mockvox.data.ids import new_file_id, validate_file_id

REF_SECONDS = (3.0, 10.0)


class RefStore:
    """``{root}/{id}.wav`` + ``{id}.json`` per reference."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _paths(self, ref_id: str) -> tuple[Path, Path]:
        validate_file_id(ref_id)
        return self.root / f"{ref_id}.wav", self.root / f"{ref_id}.json"

    def add(self, upload: Path, filename: str, text: str | None, language: str | None,
            header: AudioLimits | None = None, max_rate: int = 48000, name: str | None = None) -> RefOut:  # fmt: skip
        """Check and keep a reference (``AudioError`` for undecodable audio or a duration outside 3-10 s).

        ``header``: what its header may declare (probed before anything is decoded, then decoded in bounded blocks);
        it is kept at ``max_rate`` at most.
        """
        import time

        limits = replace(header or AudioLimits(), min_seconds=0.0, max_seconds=REF_SECONDS[1] + 0.5)
        audio, sr = load_audio(upload, limits=limits)  # the range is checked below, with its own message
        if sr > max_rate:
            audio, sr = resample(audio, sr, max_rate), max_rate
        seconds = len(audio) / sr
        if not REF_SECONDS[0] <= seconds <= REF_SECONDS[1]:
            raise AudioError(f"reference audio is {seconds:.2f} s long; accepted: 3-10 s")
        ref_id = new_file_id()
        wav, meta = self._paths(ref_id)
        self.root.mkdir(parents=True, exist_ok=True)
        write_wav(wav, audio, sr)
        info = RefOut(ref_id, round(seconds, 3), int(sr), text, language, Path(filename).name[:200], time.time(),
                      name)  # fmt: skip
        write_text(meta, msgspec.json.encode(info).decode())
        return info

    def get(self, ref_id: str) -> RefOut | None:
        wav, meta = self._paths(ref_id)
        if not (wav.is_file() and meta.is_file()):
            return None
        return msgspec.json.decode(meta.read_bytes(), type=RefOut)

    def update(self, ref_id: str, **changes) -> RefOut:
        """The reference with ``changes`` (its transcript, language) kept."""
        wav, meta = self._paths(ref_id)
        info = msgspec.structs.replace(msgspec.json.decode(meta.read_bytes(), type=RefOut), **changes)
        write_text(meta, msgspec.json.encode(info).decode())
        return info

    def audio(self, ref_id: str) -> Path:
        return self._paths(ref_id)[0]

    def list(self, offset: int = 0, limit: int = 50) -> tuple[list[RefOut], int]:
        metas = sorted(self.root.glob("*.json")) if self.root.is_dir() else []
        page = [msgspec.json.decode(p.read_bytes(), type=RefOut) for p in metas[offset : offset + limit]]
        return page, len(metas)

    def delete(self, ref_id: str) -> bool:
        wav, meta = self._paths(ref_id)
        found = meta.is_file()
        meta.unlink(missing_ok=True)
        wav.unlink(missing_ok=True)
        return found
