"""Non-streaming synthesis from a loaded voice: GPT-SoVITS ``TTS.run`` (v2 family / v4) behind MockVox's interface.

Order as upstream: check the request, build the prompt (reference 3-10 s at 16 kHz + 0.6 s of zeros -> HuBERT ->
prompt tokens; 32 kHz reference spectrogram, for v2Pro(Plus) with the SV embedding of the same peak-limited 32 kHz
waveform; v4 also the reference mel and the prompt's CFM features), split the target (``cut1`` by default, MockVox's
fixed choice), phones + BERT per fragment with the prompt's prepended for the
GPT, seeded sampling, then SoVITS decoding per fragment; fragments above full scale are normalised and followed by
``fragment_interval`` seconds of silence. Deviations: the silence uses the real output rate (upstream counts 32 kHz
samples even at 48 kHz), speed is checked against 0.25-4, requests fail with :class:`SynthesisError` instead of
yielding nothing, fragments are decoded one by one (no concatenated v2 batch decode), and the v2 prior noise is
drawn per frame (:class:`~mockvox.infer.streaming.FrameNoise`) so that a streamed decode meets the whole one.
:meth:`Synthesizer.stream` yields the audio in chunks as the GPT samples (:mod:`mockvox.infer.streaming`).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path

import cachetools
import numpy as np
import torch

from mockvox.audio.io import AudioError, load_audio, resample
from mockvox.audio.mel_v4 import mel_v4, norm_spec
from mockvox.audio.spectral import spectrogram_torch
from mockvox.data.features import semantic_codes
from mockvox.infer.streaming import (
    CHUNKED,
    AudioChunk,
    ChunkPolicy,
    FrameNoise,
    StreamConfig,
    V2Chunks,
    V4Chunks,
    fragment_seed,
    silence_similarity,
)
from mockvox.models.hubert import SAMPLE_RATE as HUBERT_RATE
from mockvox.models.hubert import pad_prompt
from mockvox.models.sovits_v2 import VERSIONS as V2_FAMILY
from mockvox.models.sovits_v4 import synthesize as synthesize_v4
from mockvox.models.t2s_decode import SamplingConfig, decode_steps, generate
from mockvox.text.bert import phones_and_bert_many
from mockvox.text.modes import MODE_ALIASES, MODES, normalize_mode, segments_for_mode
from mockvox.text.split import METHODS, SPLITS, split_text
from mockvox.text.symbols import cleaned_text_to_sequence
from mockvox.voice import LoadedVoice

log = logging.getLogger(__name__)
LANGUAGES = MODES + tuple(MODE_ALIASES)
REF_SECONDS = (3.0, 10.0)  # official: 48000-160000 samples at 16 kHz
SPEED_RANGE = (0.25, 4.0)
TEXT_CACHE_SIZE = 256  # fragments whose phones and BERT features a Synthesizer keeps
RefAudio = str | Path | tuple[np.ndarray, int] | tuple[int, np.ndarray]
Progress = Callable[[int, int], None]


class SynthesisError(ValueError):
    """A request that cannot be synthesised; the message names the problem and what is accepted."""


def _param(default, doc: str, choices: tuple[str, ...] | None = None, **bounds):
    """A synthesis parameter: its default, what it does and its accepted range (``ge``/``gt``/``le``), written once
    for the library's check, the CLI and the API's request shapes."""
    meta = {"doc": doc, "bounds": bounds, **({"choices": choices} if choices else {})}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class SynthesisParams:
    """Sampling and decoding settings (official ``TTS.run`` defaults, MockVox's ``cut1`` split)."""

    top_k: int = _param(15, "GPT sampling: the k most likely tokens", ge=1, le=1000)
    top_p: float = _param(1.0, "GPT sampling: nucleus mass", gt=0, le=1)
    temperature: float = _param(1.0, "GPT sampling temperature", ge=0.01, le=10)
    repetition_penalty: float = _param(1.35, "GPT repetition penalty", ge=0.01, le=10)
    speed: float = _param(1.0, "speaking rate", ge=SPEED_RANGE[0], le=SPEED_RANGE[1])
    seed: int | None = _param(None, "sampling seed; -1 or absent: a fresh random one", ge=-1, le=2**62)
    split: str = _param("cut1", "how the text is cut into fragments", choices=METHODS)
    noise_scale: float = _param(0.5, "v2 prior noise", ge=0, le=2)
    sample_steps: int = _param(32, "v4 CFM Euler steps", ge=1, le=128)
    fragment_interval: float = _param(0.3, "seconds of silence after each fragment", ge=0, le=5)
    batch_size: int = 1  # >1: GPT decodes that many fragments together (the library's, not a request's)
    max_tokens: int = _param(1500, "GPT tokens per fragment at most (25 per second of speech)", ge=1, le=1500)

    def check(self) -> None:
        """Raise :class:`SynthesisError` naming the first value out of its range."""
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or "bounds" not in f.metadata:
                if f.name == "batch_size" and value < 1:
                    raise SynthesisError(f"batch_size {value} must be >= 1")
                continue
            choices = f.metadata.get("choices")
            if choices is not None:
                if value not in choices:
                    raise SynthesisError(f"{f.name} {value!r} is unknown; accepted: {', '.join(choices)}")
                continue
            why = _out_of(value, f.metadata["bounds"])
            if why:
                raise SynthesisError(f"{f.name} {value} {why}")


def _out_of(value: float, bounds: dict) -> str | None:
    """Why ``value`` is outside ``bounds`` (None when inside): ``must be in [lo, hi]`` or ``must be >= lo``."""
    low = bounds.get("ge", bounds.get("gt"))
    high = bounds.get("le")
    inside = (low is None or (value >= low if "ge" in bounds else value > low)) and (high is None or value <= high)
    if inside:
        return None
    if low is not None and high is not None:
        return f"must be in {'[' if 'ge' in bounds else '('}{_num(low)}, {_num(high)}]"
    return f"must be {'>=' if 'ge' in bounds else '>'} {_num(low)}" if low is not None else f"must be <= {_num(high)}"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass
class Prompt:
    """What a reference recording and its transcript contribute to every fragment."""

    text: str  # transcript with final punctuation
    lang: str  # canonical language mode
    codes: torch.Tensor  # [1, P] prompt semantic tokens (25 Hz)
    phones: list[int]
    bert: torch.Tensor  # [1024, len(phones)]
    spec: torch.Tensor  # [1, 1025, Tr] reference linear spectrogram (32 kHz, 50 frames/s)
    ge: torch.Tensor | None = None  # [1, gin, 1] reference embedding
    fea_ref: torch.Tensor | None = None  # v4: [1, cond, 4 P] CFM features of the prompt
    mel_ref: torch.Tensor | None = None  # v4: [1, 100, Tm] normalised reference mel (100 frames/s)


@dataclass
class TextUnit:
    """One target fragment, ready for the GPT."""

    text: str
    phones: list[int]
    bert: torch.Tensor  # [1024, len(phones)]


def _language(lang: str, what: str) -> str:
    try:
        return normalize_mode(str(lang).strip().lower())
    except ValueError:
        raise SynthesisError(f"{what} {lang!r} is not supported; accepted: {', '.join(LANGUAGES)}") from None


def _nonempty(text: str, what: str) -> str:
    text = (text or "").strip("\n").strip()
    if not text:
        raise SynthesisError(f"{what} is empty; give the words to read")
    return text


def _prompt_text(text: str, mode: str) -> str:
    """Official: a transcript not ending with a split mark gets ``。`` (``.`` for English)."""
    return text if text[-1] in SPLITS else text + ("." if mode == "en" else "。")


def _read_reference(ref_audio: RefAudio) -> tuple[np.ndarray, int, str]:
    """Mono float32 samples, their rate and a content digest (the prompt cache key)."""
    if isinstance(ref_audio, str | Path):
        path = Path(ref_audio)
        try:
            audio, sr = load_audio(path)
        except AudioError as err:
            raise SynthesisError(f"reference audio: {err}") from err
        return audio, sr, hashlib.sha256(path.read_bytes()).hexdigest()
    first, second = ref_audio
    audio, sr = (second, first) if isinstance(first, int | np.integer) else (first, second)
    audio = np.asarray(audio)
    if np.issubdtype(audio.dtype, np.integer):
        audio = audio / float(np.iinfo(audio.dtype).max + 1)
    if audio.ndim == 2:  # [samples, channels] or [channels, samples]: average the shorter axis
        audio = audio.mean(axis=int(np.argmin(audio.shape)))
    if audio.ndim != 1 or audio.size == 0 or not np.isfinite(audio).all():
        raise SynthesisError("reference audio must be a non-empty, finite mono or multi-channel array")
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    return audio, int(sr), hashlib.sha256(audio.tobytes() + str(sr).encode()).hexdigest()


_GLOBAL_RNG = threading.Lock()  # torch's global generator is per process: requests in threads take turns on it


class _Rng:
    """Seeded randomness kept apart from the process: a generator for GPT sampling and a private copy of the global
    RNG for the ``randn`` draws inside SoVITS (prior noise, CFM start), restored around each use."""

    def __init__(self, seed: int, device: torch.device):
        self.seed = seed
        self.gpt = torch.Generator(device=device).manual_seed(seed)
        self.devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=self.devices):
            torch.manual_seed(seed)
            self.states = self._get()

    def _get(self) -> list[torch.Tensor]:
        return [torch.get_rng_state()] + [torch.cuda.get_rng_state(d) for d in self.devices]

    @contextmanager
    def active(self) -> Iterator[None]:
        """The request's RNG state as the global one; one request at a time, so threads never mix their draws."""
        with _GLOBAL_RNG, torch.random.fork_rng(devices=self.devices):
            torch.set_rng_state(self.states[0])
            for d, state in zip(self.devices, self.states[1:], strict=True):
                torch.cuda.set_rng_state(state, d)
            yield
            self.states = self._get()


class Synthesizer:
    """Text-to-speech with one loaded voice; reference prompts are cached by (audio content, text, language)."""

    def __init__(self, voice: LoadedVoice, cache_size: int = 8):
        self.voice = voice
        self.cache_size = cache_size
        self._cache: cachetools.LRUCache[tuple[str, str, str], Prompt] = cachetools.LRUCache(maxsize=cache_size)
        self._texts: cachetools.LRUCache[tuple[str, str], tuple[list[int], torch.Tensor]] = cachetools.LRUCache(
            maxsize=TEXT_CACHE_SIZE
        )  # phones and BERT features per (fragment, mode): repeated sentences skip the frontend
        self._lock = threading.Lock()

    @property
    def sample_rate(self) -> int:
        return self.voice.sample_rate

    # --- text ---------------------------------------------------------------------------------------------------------
    def phones_and_bert(self, text: str, mode: str) -> tuple[list[int], torch.Tensor]:
        """Phone ids and BERT features ``[1024, n]`` (zeros everywhere when the voice has no BERT)."""
        return self.phones_and_bert_many([text], mode)[0]

    def phones_and_bert_many(self, texts: list[str], mode: str) -> list[tuple[list[int], torch.Tensor]]:
        """:meth:`phones_and_bert` for several fragments: cached per fragment, the rest through one BERT batch."""
        with self._lock:
            known = {t: self._texts.get((t, mode)) for t in texts}
        todo = list(dict.fromkeys(t for t in texts if known[t] is None))
        if todo and self.voice.bert is not None:
            made = [(phones, bert.float()) for phones, bert, _ in phones_and_bert_many(todo, mode, self.voice.bert)]
        else:
            made = []
            for t in todo:
                phones = cleaned_text_to_sequence([p for s in segments_for_mode(t, mode) for p in s.phones])
                made.append((phones, torch.zeros(self.voice.gpt.config.bert_dim, len(phones))))
        with self._lock:
            for t, item in zip(todo, made, strict=True):
                known[t] = self._texts[(t, mode)] = item
        return [known[t] for t in texts]

    def text_units(self, text: str, mode: str, split: str) -> list[TextUnit]:
        """Split a target text (``split_text``) and convert each fragment (one BERT batch for all of them)."""
        try:
            pieces = split_text(text, split, mode)
        except ValueError as err:
            raise SynthesisError(f"text: {err}") from err
        if not pieces:
            raise SynthesisError("text has nothing to read")
        items = self.phones_and_bert_many(pieces, mode)
        return [TextUnit(piece, *item) for piece, item in zip(pieces, items, strict=True)]

    # --- prompt -------------------------------------------------------------------------------------------------------
    def prompt(self, ref_audio: RefAudio, prompt_text: str, prompt_lang: str) -> Prompt:
        """Prompt tokens, reference spectrogram (and v4 reference features) for a reference and its transcript.

        Raises:
            SynthesisError: unreadable reference, a duration outside 3-10 s, an empty transcript, a bad language.
        """
        mode = _language(prompt_lang, "prompt language")
        text = _prompt_text(_nonempty(prompt_text, "prompt text"), mode)
        audio, sr, digest = _read_reference(ref_audio)
        key = (digest, text, mode)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                return cached
        prompt = self._build_prompt(audio, sr, text, mode)
        with self._lock:
            self._cache[key] = prompt
        return prompt

    @torch.inference_mode()
    def _build_prompt(self, audio: np.ndarray, sr: int, text: str, mode: str) -> Prompt:
        v = self.voice
        wav16 = resample(audio, sr, HUBERT_RATE)
        lo, hi = (int(s * HUBERT_RATE) for s in REF_SECONDS)
        if not lo <= wav16.shape[0] <= hi:
            raise SynthesisError(
                f"reference audio is {wav16.shape[0] / HUBERT_RATE:.2f} s long; accepted: "
                f"{REF_SECONDS[0]:g}-{REF_SECONDS[1]:g} s"
            )
        ssl = v.hubert(pad_prompt(torch.from_numpy(wav16)).to(v.device))  # [1, C, T50]
        codes = semantic_codes(v.sovits, ssl.to(v.dtype))[0]  # [1, P]
        s = v.spectrogram  # the voice's reference spectrogram settings (official: 32 kHz, 50 frames/s)
        raw32 = torch.from_numpy(resample(audio, sr, s.sampling_rate)).unsqueeze(0).to(v.device)  # [1, N]
        peak = float(raw32.abs().max())
        ref32 = raw32 / min(2.0, peak) if peak > 1 else raw32
        spec = spectrogram_torch(ref32, s.filter_length, s.sampling_rate, s.hop_length, s.win_length)  # [1, 1025, Tr]
        phones, bert = self.phones_and_bert(text, mode)
        prompt = Prompt(text, mode, codes.long(), phones, bert.to(v.device), spec)
        pro = {} if v.sv is None else {"sv_emb": v.sv(ref32, s.sampling_rate)}  # v2Pro: [1, 20480], peak-limited ref
        prompt.ge = v.sovits.reference_embedding(spec.to(v.dtype), **pro)  # [1, gin, 1] (Pro: after the PReLU)
        if v.version == "v4":
            fea, _ = v.sovits.decode_encp(codes.unsqueeze(0), self._phone_tensor(phones), None, ge=prompt.ge)
            prompt.fea_ref = fea.float()
            prompt.mel_ref = norm_spec(mel_v4(raw32))  # upstream: raw (not peak-limited) reference
        return prompt

    def _phone_tensor(self, phones: list[int]) -> torch.Tensor:
        return torch.tensor([phones], dtype=torch.long, device=self.voice.device)  # [1, N]

    # --- generation ---------------------------------------------------------------------------------------------------
    def semantic_tokens(
        self, prompt: Prompt, units: list[TextUnit], params: SynthesisParams, generator: torch.Generator | None = None
    ) -> list[torch.Tensor]:
        """GPT sampling for a batch of fragments: generated tokens ``[n_i]`` (without EOS) per unit."""
        phones, berts = self._gpt_inputs(prompt, units)
        prompts = prompt.codes.expand(len(units), -1)
        return [r.tokens for r in generate(self.voice.gpt, phones, berts, prompts, _sampling(params), generator)]

    def _gpt_inputs(self, prompt: Prompt, units: list[TextUnit]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        dev = self.voice.device
        phones = [torch.tensor(prompt.phones + u.phones, dtype=torch.long, device=dev) for u in units]
        berts = [torch.cat([prompt.bert, u.bert.to(dev)], dim=1) for u in units]  # [1024, N_prompt + N_i]
        return phones, berts

    @torch.inference_mode()
    def decode(
        self, prompt: Prompt, unit: TextUnit, tokens: torch.Tensor, params: SynthesisParams, noise_seed: int = 0
    ) -> np.ndarray:
        """SoVITS waveform of one fragment (float32 at the voice's rate), before post-processing.

        v2 draws its prior noise per frame from ``noise_seed`` (the draw :meth:`stream` makes for the fragment)."""
        v = self.voice
        if tokens.numel() == 0:
            return np.zeros(0, dtype=np.float32)
        if v.version in V2_FAMILY:
            chunks = self._chunks(prompt, unit, params, StreamConfig("whole"), noise_seed, fixed_grid=False)
            return chunks.push(tokens, tokens.numel(), final=True)  # [1280 T25]
        codes, phones = tokens.view(1, 1, -1), self._phone_tensor(unit.phones)  # [1, 1, T25], [1, N]
        fea, _ = v.sovits.decode_encp(codes, phones, None, ge=prompt.ge, speed=params.speed)  # [1, cond, 4 T25]
        wav = synthesize_v4(v.sovits, v.vocoder, prompt.fea_ref, prompt.mel_ref, [fea.float()], params.sample_steps)
        return wav[0].float().cpu().numpy()  # [480 * frames]

    def _finish(self, audio: np.ndarray, interval: float) -> np.ndarray:
        peak = float(np.abs(audio).max()) if audio.size else 0.0
        if peak > 1:
            audio = audio / peak
        silence = np.zeros(round(self.sample_rate * interval), dtype=np.float32)
        return np.concatenate([audio.astype(np.float32), silence])

    # --- entry points -------------------------------------------------------------------------------------------------
    def fragments(
        self,
        ref_audio: RefAudio | None,
        prompt_text: str | None,
        prompt_lang: str | None,
        text: str,
        text_lang: str,
        params: SynthesisParams = SynthesisParams(),
        progress: Progress | None = None,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """``(sample rate, audio)`` per text fragment, its trailing silence included.

        Everything that can reject the request (parameters, languages, texts, reference) is checked before this
        returns, so a caller can answer with an error before the first fragment is computed. Without ``ref_audio``
        the voice's default reference speaks (its transcript and language unless ``prompt_text`` / ``prompt_lang``
        are given).
        """
        prompt, units, rng, _ = self._request(ref_audio, prompt_text, prompt_lang, text, text_lang, params)
        pieces = self._run(prompt, units, params, rng, progress)
        return ((self.sample_rate, audio) for audio, _ in pieces)

    def _request(self, ref_audio, prompt_text, prompt_lang, text, text_lang, params: SynthesisParams):
        """Everything a request needs, checked: ``(prompt, units, rng, timing)``; ``timing`` has the seconds of
        the reference prompt and of the text frontend."""
        params.check()
        ref_audio, prompt_text, prompt_lang = self._reference(ref_audio, prompt_text, prompt_lang)
        text_mode = _language(text_lang, "text language")
        text = _nonempty(text, "text")
        mark = time.perf_counter()
        prompt = self.prompt(ref_audio, prompt_text, prompt_lang)
        timing = {"prompt": time.perf_counter() - mark}
        mark = time.perf_counter()
        units = self.text_units(text, text_mode, params.split)
        timing["text"] = time.perf_counter() - mark
        seed = params.seed if params.seed is not None else secrets.randbits(63)
        return prompt, units, _Rng(seed, self.voice.device), timing

    def _reference(self, ref_audio, prompt_text, prompt_lang) -> tuple[RefAudio, str, str]:
        if ref_audio is not None:
            return ref_audio, prompt_text, prompt_lang
        default = self.voice.reference
        if default is None:
            raise SynthesisError("this voice has no default reference; give a reference recording and its transcript")
        return default.audio, prompt_text or default.text, prompt_lang or default.language

    def speak(
        self, text: str, text_lang: str | None = None, params: SynthesisParams = SynthesisParams(), progress=None
    ) -> tuple[int, np.ndarray]:
        """``text`` in the voice's default reference (``text_lang`` defaults to the reference's language)."""
        default = self.voice.reference
        lang = text_lang or (default.language if default is not None else "zh")
        return self.synthesize(None, None, None, text, lang, params, progress)

    def _run(
        self,
        prompt: Prompt,
        units: list[TextUnit],
        params: SynthesisParams,
        rng: _Rng,
        progress: Progress | None,
        timings: dict[str, float] | None = None,
    ) -> Iterator[tuple[np.ndarray, int]]:
        """``(audio, tokens)`` per fragment (its trailing silence included, the GPT tokens it took)."""
        done = 0
        for start in range(0, len(units), params.batch_size):
            batch = units[start : start + params.batch_size]
            began = time.perf_counter()
            tokens = self.semantic_tokens(prompt, batch, params, rng.gpt)
            _add(timings, "gpt", time.perf_counter() - began)
            for unit, toks in zip(batch, tokens, strict=True):
                began = time.perf_counter()
                with rng.active():
                    audio = self.decode(prompt, unit, toks, params, fragment_seed(rng.seed, done))
                _add(timings, "decode", time.perf_counter() - began)
                done += 1
                if progress is not None:
                    progress(done, len(units))
                yield self._finish(audio, params.fragment_interval), int(toks.numel())

    # --- streaming ----------------------------------------------------------------------------------------------------
    def stream(
        self,
        ref_audio: RefAudio | None,
        prompt_text: str | None,
        prompt_lang: str | None,
        text: str,
        text_lang: str,
        params: SynthesisParams = SynthesisParams(),
        stream: StreamConfig | str | int = "token",
    ) -> Iterator[AudioChunk]:
        """The text as :class:`~mockvox.infer.streaming.AudioChunk` s, each as soon as it is decoded.

        ``stream`` is a :class:`StreamConfig` or a mode (``whole``, ``fragment``, ``token``, ``fixed``; upstream's
        0-3). Like :meth:`fragments`, everything that can reject the request is checked before this returns. The
        first chunk's ``timing`` says where its time went: ``text`` (frontend), ``prompt`` (reference, 0 when
        cached), ``prefill``, ``tokens`` (sampling up to the first cut), ``decode`` (its SoVITS decode).
        """
        began = time.perf_counter()
        try:
            cfg = stream if isinstance(stream, StreamConfig) else StreamConfig(mode=stream)
        except ValueError as err:
            raise SynthesisError(str(err)) from None
        prompt, units, rng, timing = self._request(ref_audio, prompt_text, prompt_lang, text, text_lang, params)
        return self._stream(prompt, units, params, rng, cfg, timing, began)

    def _stream(self, prompt: Prompt, units: list[TextUnit], params: SynthesisParams, rng: _Rng, cfg: StreamConfig,
                timing: dict[str, float], began: float) -> Iterator[AudioChunk]:  # fmt: skip
        offset, first = 0, True
        if cfg.mode in CHUNKED:
            pieces = (
                (i, *piece) for i, unit in enumerate(units) for piece in self._stream_fragment(prompt, unit, params,
                                                                                            rng, cfg, i, timing)
            )  # fmt: skip
        else:
            frags = self._run(prompt, units, params, rng, None, timing)
            if cfg.mode == "fragment":
                pieces = ((i, audio, tokens, True) for i, (audio, tokens) in enumerate(frags))
            else:
                whole = list(frags)
                pieces = iter([(len(units) - 1, np.concatenate([a for a, _ in whole]), sum(n for _, n in whole), True)])
        for index, audio, tokens, final in pieces:
            if not len(audio):
                continue
            chunk = AudioChunk(audio, self.sample_rate, offset, index, tokens, final, time.perf_counter() - began)
            if first:
                chunk.timing = {k: round(v, 4) for k, v in timing.items()}
                log.debug("%s stream: first audio after %.3f s %s", cfg.mode, chunk.elapsed, chunk.timing)
                first = False
            offset += len(audio)
            yield chunk
        took = time.perf_counter() - began
        log.debug("%s stream: %.2f s of audio in %.2f s (real-time factor %.2f)", cfg.mode, offset / self.sample_rate,
                  took, took / max(offset / self.sample_rate, 1e-9))  # fmt: skip

    def _stream_fragment(self, prompt: Prompt, unit: TextUnit, params: SynthesisParams, rng: _Rng,
                         cfg: StreamConfig, index: int, timing: dict[str, float]) -> Iterator[tuple]:  # fmt: skip
        """``(audio, tokens, final)`` per chunk of one fragment, decoded while its tokens are sampled."""
        phones, berts = self._gpt_inputs(prompt, [unit])
        clock: dict[str, float] = {}
        steps = decode_steps(self.voice.gpt, phones, berts, prompt.codes, _sampling(params), rng.gpt, timings=clock)
        chunks = self._chunks(prompt, unit, params, cfg, fragment_seed(rng.seed, index), fixed_grid=True)
        policy = ChunkPolicy(cfg, self._silence(cfg.mute_token) if cfg.mode == "token" else None)
        tokens: list[int] = []
        mark = time.perf_counter()
        for step in steps:
            if step.finished:
                tokens = step.finished[0].tokens.tolist()
                break
            tokens.append(int(step.samples[0]))
            cut = policy.cut(tokens)
            if cut is None:
                continue
            if "tokens" not in timing:
                timing["prefill"] = clock.get("prefill", 0.0)
                timing["tokens"] = time.perf_counter() - mark - timing["prefill"]
                timing["first_tokens"] = cut
            audio = self._push(chunks, rng, tokens, cut, False, timing)
            policy.done = cut
            yield audio, cut, False
        if "tokens" not in timing:
            timing["prefill"] = clock.get("prefill", 0.0)
            timing["tokens"] = time.perf_counter() - mark - timing["prefill"]
            timing["first_tokens"] = len(tokens)
        audio = self._push(chunks, rng, tokens, len(tokens), True, timing)
        yield self._finish(audio, params.fragment_interval), len(tokens), True

    def _push(self, chunks, rng: _Rng, tokens: list[int], cut: int, final: bool, timing: dict) -> np.ndarray:
        mark = time.perf_counter()
        ids = torch.tensor(tokens, dtype=torch.long, device=self.voice.device)
        with rng.active():  # v4: the CFM's noise comes from the request's RNG
            audio = chunks.push(ids, cut, final)
        timing.setdefault("decode", time.perf_counter() - mark)
        return audio

    def _chunks(self, prompt: Prompt, unit: TextUnit, params: SynthesisParams, cfg: StreamConfig, seed: int,
                fixed_grid: bool) -> V2Chunks | V4Chunks:  # fmt: skip
        v, phones = self.voice, self._phone_tensor(unit.phones)
        if v.version in V2_FAMILY:
            noise = FrameNoise(seed, v.sovits.inter_channels)
            return V2Chunks(v.sovits, prompt.ge, phones, params.noise_scale, params.speed, noise, cfg, fixed_grid)
        return V4Chunks(v.sovits, v.vocoder, prompt.ge, prompt.fea_ref, prompt.mel_ref, phones, params.speed,
                        params.sample_steps, cfg, fixed_grid)  # fmt: skip

    def _silence(self, mute_token: int) -> torch.Tensor:
        with self._lock:
            cached = getattr(self, "_silence_cache", None)
            if cached is None or cached[0] != mute_token:
                emb = self.voice.gpt.ar_audio_embedding.word_embeddings.weight
                cached = self._silence_cache = (mute_token, silence_similarity(emb, mute_token))
        return cached[1]

    def synthesize(
        self,
        ref_audio: RefAudio | None,
        prompt_text: str | None,
        prompt_lang: str | None,
        text: str,
        text_lang: str,
        params: SynthesisParams = SynthesisParams(),
        progress: Progress | None = None,
    ) -> tuple[int, np.ndarray]:
        """The whole text as ``(sample rate, float32 mono audio in [-1, 1])``: 32 kHz for v2, 48 kHz for v4.

        Raises:
            SynthesisError: a request problem (languages, empty texts, reference duration, parameter ranges).
        """
        parts = [audio for _, audio in self.fragments(ref_audio, prompt_text, prompt_lang, text, text_lang, params,
                                                       progress)]  # fmt: skip
        return self.sample_rate, np.concatenate(parts)


def _sampling(params: SynthesisParams) -> SamplingConfig:
    return SamplingConfig(
        top_k=params.top_k,
        top_p=params.top_p,
        temperature=params.temperature,
        repetition_penalty=params.repetition_penalty,
        max_steps=params.max_tokens,
    )


def _add(timings: dict[str, float] | None, key: str, seconds: float) -> None:
    if timings is not None:
        timings[key] = timings.get(key, 0.0) + seconds
