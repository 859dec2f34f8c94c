"""From a voice's name to a ready :class:`Synthesizer`: the one path every caller takes (CLI, pyfunc, API, workers).

``model id | models:/name@alias | models:/name/version`` -> the model id (the registry is asked each time: an alias
may move) -> the voice folder, downloaded once into the data root's cache -> networks loaded on a device and precision
-> a synthesizer. :class:`VoiceCache` keeps several resident, least recently used evicted first, bounded by count and
by the bytes of their weights, and frees their memory on eviction. Voices opened here share their pretrained parts
(HuBERT, BERT, vocoder, the v2Pro SV network, the v4 base generator) through one
:class:`~mockvox.voice.SharedParts` per process, so two v4 voices on one base hold the base once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cachetools
import torch
from omegaconf import DictConfig

from mockvox.infer.pipeline import Synthesizer
from mockvox.infer.registry import Registry, download_voice, resolve_model_id
from mockvox.voice import LoadedVoice, SharedParts, load_voice

log = logging.getLogger(__name__)
PARTS = SharedParts()  # this process's shared pretrained networks (each freed with the last voice holding it)


@dataclass(frozen=True)
class VoiceSource:
    """Where voices come from: a tracking store, the local download cache and the installed pretrained parts."""

    registry: Registry
    cache_dir: Path
    pretrained_dir: Path

    @classmethod
    def from_config(cls, cfg: DictConfig) -> VoiceSource:
        """From a composed ``conf/infer.yaml`` (or any config with ``logger``, ``paths`` and ``cache.dir``)."""
        cache = cfg.get("cache") or {}
        cache_dir = cache.get("dir") or Path(cfg.paths.data_dir) / "models"
        return cls(Registry.from_config(cfg.logger), Path(cache_dir), Path(cfg.paths.pretrained_dir))

    def model_id(self, ref: str) -> str:
        return resolve_model_id(self.registry, ref)

    def folder(self, ref: str) -> Path:
        """The local voice folder of ``ref`` (downloaded on first use)."""
        return download_voice(self.registry, self.model_id(ref), self.cache_dir)


def apply_threads(cfg: DictConfig) -> None:
    """``threads`` of ``conf/infer.yaml``: torch's intra-op threads for this process (0 leaves torch's default)."""
    threads = int(cfg.get("threads") or 0)
    if threads < 0:
        raise ValueError(f"threads must be >= 0 (0 = all cores), got {threads}")
    if threads:
        torch.set_num_threads(threads)


def open_voice(ref: str, source: VoiceSource, device: str = "cpu", precision: str | Mapping = "fp32") -> Synthesizer:
    """One voice, loaded anew (no cache; pretrained parts shared with the process's other voices) -> synthesizer."""
    folder = source.folder(ref)
    return Synthesizer(load_voice(folder, source.pretrained_dir, device=device, precision=precision, parts=PARTS))


def _storages(voice: LoadedVoice) -> dict[int, int]:
    """``{storage address: bytes}`` of a voice's weights and buffers."""
    out = {}
    modules = [voice.gpt, voice.sovits, voice.hubert, voice.vocoder, voice.sv, getattr(voice.bert, "model", None)]
    for module in (m for m in modules if isinstance(m, torch.nn.Module)):
        for tensor in [*module.parameters(), *module.buffers()]:
            storage = tensor.untyped_storage()
            out[storage.data_ptr()] = storage.nbytes()
    return out


def voice_bytes(*voices: LoadedVoice) -> int:
    """Bytes held by the weights and buffers of ``voices`` together (a storage they share counted once)."""
    seen = {}
    for voice in voices:
        seen.update(_storages(voice))
    return sum(seen.values())


class VoicesBusy(RuntimeError):
    """Every resident voice is pinned (in use by a stream) and the cache is full: another voice cannot load now."""


class _Resident(cachetools.LRUCache):
    """LRU of synthesizers keyed by model id; a pinned voice is never evicted; counts what it evicts (the bounds are
    the cache's)."""

    evicted = 0

    def __init__(self, maxsize):
        super().__init__(maxsize)
        self.pins: dict[str, int] = {}

    def popitem(self):
        for _ in range(len(self)):
            model_id, synth = super().popitem()
            if self.pins.get(model_id):
                cachetools.LRUCache.__setitem__(self, model_id, synth)  # back, as the most recently used
                continue
            log.info("voice %s evicted from the cache", model_id)
            self.evicted += 1
            return model_id, synth
        raise VoicesBusy(f"all {len(self)} resident voice(s) are in use by streams; retry when one ends")


def _free_memory(device: torch.device) -> None:
    """Collect evicted voices (freed once no request in flight holds them); give the memory back to the system."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()  # CUDA blocks back to the driver
    _trim_heap()


@functools.cache
def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def _trim_heap() -> None:
    """glibc keeps freed heap pages mapped; ``malloc_trim`` returns them, so an evicted voice lowers the RSS."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


class VoiceCache:
    """Resident voices for a long-lived process: ``get(ref)`` -> :class:`Synthesizer`, thread-safe.

    At most ``max_voices`` voices and ``max_bytes`` of weights stay loaded (a single voice larger than ``max_bytes``
    still loads, alone); each voice loads once even when several threads ask for it together.
    """

    def __init__(self, source: VoiceSource, max_voices: int = 4, max_bytes: int | None = None,
                 device: str = "cpu", precision: str | Mapping = "fp32"):  # fmt: skip
        if max_voices < 1:
            raise ValueError(f"max_voices must be >= 1, got {max_voices}")
        self.source, self.device, self.precision = source, device, precision
        self.max_voices = max_voices
        self.max_bytes = max_bytes
        self._voices = _Resident(maxsize=float("inf"))  # bounds enforced in _admit (bytes shared between voices)
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    @classmethod
    def from_config(cls, cfg: DictConfig) -> VoiceCache:
        """From a composed ``conf/infer.yaml`` (its ``threads`` applies to this process)."""
        apply_threads(cfg)
        max_bytes = int(float(cfg.cache.max_gb) * 2**30) if cfg.cache.get("max_gb") else None
        return cls(VoiceSource.from_config(cfg), int(cfg.cache.max_voices), max_bytes, cfg.device, cfg.precision)

    def __len__(self) -> int:
        return len(self._voices)

    def __contains__(self, model_id: str) -> bool:
        return model_id in self._voices

    @property
    def resident_bytes(self) -> int:
        """Bytes of the resident voices' weights, shared parts counted once."""
        with self._lock:
            return self._bytes()

    def _bytes(self) -> int:
        peek = cachetools.Cache.__getitem__  # reading without touching the LRU order
        return voice_bytes(*(peek(self._voices, model_id).voice for model_id in list(self._voices)))

    def get(self, ref: str, pin: bool = False) -> Synthesizer:
        """The synthesizer of ``ref`` (model id or ``models:/`` URI), loaded on first use. ``pin``: it stays resident
        until :meth:`unpin` (a stream holds it), so the voices in memory never exceed the cache's bounds.

        Raises:
            VoicesBusy: the cache is full of pinned voices.
        """
        model_id = self.source.model_id(ref)
        synth = self._get(model_id)
        if pin:
            with self._lock:
                if model_id not in self._voices:  # evicted between its load and now: load it again
                    pin = False
                else:
                    self._voices.pins[model_id] = self._voices.pins.get(model_id, 0) + 1
            if not pin:
                return self.get(ref, pin=True)
        return synth

    def unpin(self, ref: str) -> None:
        """Let a voice pinned by :meth:`get` be evicted again (once per pin)."""
        model_id = self.source.model_id(ref)
        with self._lock:
            self._unpin(model_id)

    def _get(self, model_id: str) -> Synthesizer:
        with self._lock:
            synth = self._voices.get(model_id)
            if synth is not None:
                return synth
            gate = self._loading.setdefault(model_id, threading.Lock())
        with gate:  # one load per voice; other voices load or serve meanwhile
            with self._lock:
                synth = self._voices.get(model_id)
            if synth is None:
                synth = self._load(model_id)
            with self._lock:
                self._loading.pop(model_id, None)
        return synth

    def _load(self, model_id: str) -> Synthesizer:
        folder = download_voice(self.source.registry, model_id, self.source.cache_dir)
        with self._lock:  # make room first: the new voice's weights then replace the evicted ones in memory
            while len(self._voices) >= self.max_voices:
                self._voices.popitem()
        self._collect()
        voice = load_voice(folder, self.source.pretrained_dir, self.device, self.precision, parts=PARTS)
        synth = Synthesizer(voice)
        with self._lock:
            self._admit(model_id, synth)
        self._collect()
        log.info("voice %s loaded (%.1f MB, %d resident)", model_id, voice_bytes(voice) / 2**20, len(self._voices))
        return synth

    def _admit(self, model_id: str, synth: Synthesizer) -> None:
        """Insert, then evict the least recently used others until count and bytes fit (the new one always stays,
        unless the others are pinned: then it goes and :class:`VoicesBusy` is raised)."""
        self._voices[model_id] = synth
        self._voices.pins[model_id] = self._voices.pins.get(model_id, 0) + 1  # not itself evicted while making room
        try:
            while len(self._voices) > 1 and self._over():
                self._voices.popitem()
        except VoicesBusy:
            self._voices.pop(model_id, None)
            raise
        finally:
            self._unpin(model_id)

    def _unpin(self, model_id: str) -> None:
        left = self._voices.pins.get(model_id, 0) - 1
        if left > 0:
            self._voices.pins[model_id] = left
        else:
            self._voices.pins.pop(model_id, None)

    def _over(self) -> bool:
        too_many = len(self._voices) > self.max_voices
        return too_many or (self.max_bytes is not None and self._bytes() > self.max_bytes)

    def forget(self, model_id: str) -> bool:
        """Drop one voice (e.g. deleted from the store); True when it was resident."""
        with self._lock:
            found = self._voices.pop(model_id, None) is not None
        if found:
            _free_memory(torch.device(self.device))
        return found

    def clear(self) -> None:
        """Evict every voice."""
        with self._lock:
            while self._voices:
                self._voices.popitem()
        self._collect()

    def _collect(self) -> None:
        if self._voices.evicted:
            self._voices.evicted = 0
            _free_memory(torch.device(self.device))
