"""Token-level streaming: semantic tokens are decoded to audio in chunks while the GPT is still sampling.

Modes (upstream ``api_v2.py`` ``streaming_mode`` 0-3 are aliases, in this order):

* ``whole`` - one chunk with the whole text (today's non-streaming synthesis);
* ``fragment`` - one chunk per text fragment (upstream's ``return_fragment``);
* ``token`` - the first chunk after ``first_tokens`` tokens, later chunks cut between two silence-like tokens
  (cosine similarity of their GPT audio embedding to the mute token's, upstream's mode 2) once ``chunk_tokens`` are
  pending, at the latest after ``max_chunk_tokens``;
* ``fixed`` - the first chunk after ``first_tokens``, then every ``chunk_tokens`` tokens (upstream's mode 3).

How a chunk is decoded (v2 and every SoVITS of its family): the text encoder runs on all tokens so far; a chunk
ends ``lookahead`` tokens before the last sampled one, so its last frames are decoded with some right context;
HiFi-GAN runs over the chunk plus ``context_frames`` latent frames before it (decoded again, their audio dropped;
12 covers the official decoder's reach of about 11 frames), the flow over 32 frames more (its reach); the prior
noise is drawn per frame (:class:`FrameNoise`), so a frame gets the same noise whatever chunk decodes it. The audio
of the first ``fade_frames`` after a chunk's end is kept back and cross-faded (raised cosine) with the next chunk's
decode of the same frames. Away from the joins the waveform is, within float error, the whole decode's; near them
it differs only by what the text encoder learns from later tokens.

v4 (beyond upstream, which streams v3/v4 only per fragment): the CFM generates each chunk's mel frames with, as its
prompt, the last ``v4_prompt_frames`` frames of [reference mel ; mel generated so far] and their features, so every
chunk continues the previous one; the vocoder runs over each chunk plus ``v4_vocoder_context`` frames before it, the
last ``v4_vocoder_hold`` frames are vocoded again with the next chunk, and joins are cross-faded as above.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
import torch

from mockvox.audio.mel_v4 import denorm_spec
from mockvox.models.sovits_v4 import ChunkConfig, align_prompt

MODES = ("whole", "fragment", "token", "fixed")
UPSTREAM_MODES = dict(enumerate(MODES))  # api_v2.py streaming_mode 0-3 (and False/True = 0/1)
CHUNKED = ("token", "fixed")
WINDOW_BUCKET = 8  # decoder / vocoder windows are multiples of this many frames (see bucketed_start)
FLOW_CONTEXT = 32  # frames each side that reach a frame through the official flow (4 couplings x 4 layers x k 5)


def stream_mode(value: object) -> str:
    """A mode name from a name, upstream's 0-3 (int or text) or a boolean; ``ValueError`` naming what is accepted."""
    if isinstance(value, bool):
        return MODES[int(value)]
    if isinstance(value, int) and value in UPSTREAM_MODES:
        return UPSTREAM_MODES[value]
    text = str(value).strip().lower()
    if text in MODES:
        return text
    if text in ("0", "1", "2", "3"):
        return UPSTREAM_MODES[int(text)]
    if text in ("true", "false"):
        return MODES[text == "true"]
    raise ValueError(f"streaming_mode {str(value)[:40]!r} is unknown; accepted: {', '.join(MODES)} (or 0-3)")


def _setting(default, doc: str, lo: float, hi: float):
    return field(default=default, metadata={"doc": doc, "bounds": (lo, hi)})


@dataclass(frozen=True)
class StreamConfig:
    """How a stream is cut and joined (``conf/infer.yaml: stream``)."""

    mode: str = "token"
    first_tokens: int = _setting(6, "tokens before the first chunk (25 tokens = 1 s of speech)", 1, 200)
    chunk_tokens: int = _setting(16, "fixed: tokens per chunk; token: fewest before a cut is looked for", 2, 400)
    max_chunk_tokens: int = _setting(40, "token: a chunk is cut here at the latest", 2, 1500)
    lookahead: int = _setting(2, "tokens sampled past a chunk's end before it is decoded (right context)", 0, 25)
    context_frames: int = _setting(12, "latent frames (50 Hz) decoded again before each chunk", 0, 400)
    fade_frames: int = _setting(2, "frames cross-faded at each join (v2: 50 Hz, v4: 100 Hz)", 0, 50)
    mute_token: int = _setting(486, "token: the silence token whose embedding marks a cut", 0, 1023)
    split_threshold: float = _setting(0.0, "token: similarity above which a token counts as silence", -1, 1)
    v4_prompt_frames: int = _setting(250, "v4: mel frames (100 Hz) of context prompting each chunk's CFM", 8, 1000)
    v4_vocoder_context: int = _setting(16, "v4: mel frames vocoded again before each chunk", 0, 400)
    v4_vocoder_hold: int = _setting(6, "v4: last mel frames of a chunk vocoded again with the next", 0, 100)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", stream_mode(self.mode))
        for f in fields(self):
            bounds = f.metadata.get("bounds")
            value = getattr(self, f.name)
            if bounds is not None and not bounds[0] <= value <= bounds[1]:
                raise ValueError(f"stream {f.name} {value} must be in [{bounds[0]:g}, {bounds[1]:g}]")
        if self.fade_frames > 2 * self.lookahead and self.mode in CHUNKED:
            raise ValueError(f"stream fade_frames {self.fade_frames} needs lookahead >= {(self.fade_frames + 1) // 2}")
        if self.v4_vocoder_hold < self.fade_frames:
            raise ValueError("stream v4_vocoder_hold must be >= fade_frames")

    @classmethod
    def from_mapping(cls, values: dict | None, **overrides) -> StreamConfig:
        """From a config mapping (unknown keys: ``ValueError``), then ``overrides`` (None values ignored)."""
        merged = {**dict(values or {}), **{k: v for k, v in overrides.items() if v is not None}}
        unknown = set(merged) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown stream settings: {', '.join(sorted(unknown))}")
        return cls(**merged)


@dataclass
class AudioChunk:
    """A piece of a stream, ready to play."""

    audio: np.ndarray  # float32 mono in [-1, 1]
    sample_rate: int
    offset: int  # samples of the stream before this chunk
    fragment: int  # index of the text fragment it belongs to
    tokens: int  # semantic tokens of that fragment decoded up to the end of this chunk
    final: bool  # the last chunk of its fragment (its trailing silence included)
    elapsed: float  # seconds from the request to this chunk being ready
    timing: dict[str, float] = field(default_factory=dict)  # first chunk: where its time went

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.sample_rate


class ChunkPolicy:
    """Where the next chunk ends (a token index), given the tokens sampled so far."""

    def __init__(self, cfg: StreamConfig, silence: torch.Tensor | None = None):
        self.cfg = cfg
        self.silence = silence  # [V] similarity of each token's embedding to the mute token's (token mode)
        self.done = 0  # tokens already given to a chunk

    def cut(self, tokens: list[int]) -> int | None:
        cfg = self.cfg
        ready = len(tokens) - cfg.lookahead
        pending = ready - self.done
        if self.done == 0:
            return ready if pending >= cfg.first_tokens else None
        if cfg.mode == "fixed" or self.silence is None:
            return self.done + cfg.chunk_tokens if pending >= cfg.chunk_tokens else None
        if pending < cfg.chunk_tokens:
            return None
        score = self.silence[tokens[self.done : ready]] - cfg.split_threshold
        score = torch.where(score < 0, torch.full_like(score, -1.0), score)
        pairs = (score[:-1] + score[1:])[cfg.chunk_tokens - 1 :]  # a cut between two silent tokens
        if pairs.numel() and float(pairs.max()) >= 0:
            return self.done + cfg.chunk_tokens + int(pairs.argmax())
        return ready if pending >= cfg.max_chunk_tokens else None


def silence_similarity(embedding: torch.Tensor, mute_token: int) -> torch.Tensor:
    """Cosine similarity ``[V]`` of every row of the GPT's audio embedding table to the mute token's row."""
    table = embedding.detach().float().cpu()
    return torch.nn.functional.cosine_similarity(table, table[mute_token : mute_token + 1], dim=1)


class FrameNoise:
    """Standard normal noise ``[1, channels, frames]`` whose frame ``t`` depends only on the seed and ``t``: drawn in
    fixed blocks of frames from one CPU generator, so any prefix of a fragment sees the noise of the whole."""

    def __init__(self, seed: int, channels: int, block: int = 64):
        self.generator = torch.Generator().manual_seed(seed)
        self.channels, self.block = channels, block
        self.frames = torch.empty(0, channels)

    def take(self, start: int, stop: int, like: torch.Tensor) -> torch.Tensor:
        while self.frames.shape[0] < stop:
            more = torch.randn(self.block, self.channels, generator=self.generator)
            self.frames = torch.cat([self.frames, more])
        return self.frames[start:stop].T.unsqueeze(0).to(like.device, like.dtype)


def bucketed_start(start: int, stop: int, bucket: int = WINDOW_BUCKET) -> int:
    """The start of a decoding window ending at ``stop`` that reaches back at least to ``start``, widened (with more
    real context) to a multiple of ``bucket`` frames: a convolution's first call at a new length builds its kernels
    (oneDNN), which costs as much as the call itself, and bucketed lengths repeat."""
    length = stop - max(0, start)
    return max(0, stop - -(-length // bucket) * bucket)


def fragment_seed(seed: int, index: int) -> int:
    """The noise seed of fragment ``index`` of a request seeded with ``seed``."""
    return (seed * 1_000_003 + index * 0x9E3779B1 + 1) % (1 << 63)


class _Joiner:
    """Emits the audio of consecutive frame ranges, cross-fading each range's head with the previous range's tail."""

    def __init__(self, hop: int):
        self.hop = hop
        self.tail = np.zeros(0, dtype=np.float32)

    def emit(self, audio: np.ndarray, frames: int, fade: int) -> np.ndarray:
        """``audio`` covers ``frames`` new frames then ``fade`` frames kept back for the next join."""
        body, self.tail, previous = audio[: frames * self.hop], audio[frames * self.hop :], self.tail
        body = body.astype(np.float32, copy=True)
        n = min(len(previous), len(body))
        if n:
            ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)).astype(np.float32)
            body[:n] = previous[:n] * (1 - ramp) + body[:n] * ramp
        return body


class V2Chunks:
    """Chunked SoVITS v2 decoding of one fragment (see the module docstring)."""

    def __init__(self, sovits, ge: torch.Tensor, phones: torch.Tensor, noise_scale: float, speed: float,
                 noise: FrameNoise, cfg: StreamConfig | None = None, fixed_grid: bool = True):  # fmt: skip
        self.sovits, self.ge, self.phones = sovits, ge, phones
        self.noise_scale, self.speed, self.noise = noise_scale, speed, noise
        self.cfg = cfg or StreamConfig()
        self.fixed_grid = fixed_grid
        self.hop = sovits.hop_length
        self.emitted = 0  # frames whose audio is out
        self.joiner = _Joiner(self.hop)

    def end_frame(self, tokens: int) -> int:
        """Frames (50 Hz, after the speed change) fully determined by the first ``tokens`` tokens."""
        return 2 * tokens if self.speed == 1 else int(2 * tokens / self.speed)

    @torch.inference_mode()
    def push(self, tokens: torch.Tensor, cut: int, final: bool) -> np.ndarray:
        """Audio of the frames up to token ``cut`` (all frames when ``final``) not yet emitted."""
        if tokens.numel() == 0:
            return np.zeros(0, dtype=np.float32)
        s = self.sovits
        _, m_p, logs_p, y_mask = s.encode_codes(tokens.view(1, 1, -1), self.phones, self.ge, self.speed,
                                                self.fixed_grid)  # fmt: skip
        total = m_p.shape[2]
        end = total if final else min(self.end_frame(cut), total)
        if end <= self.emitted and not final:
            return np.zeros(0, dtype=np.float32)
        fade = 0 if final else min(self.cfg.fade_frames, total - end)
        w0 = bucketed_start(self.emitted - self.cfg.context_frames, total)  # the decoder's window
        f0 = max(0, w0 - FLOW_CONTEXT)  # the flow's: wider, so that z is exact over the decoder's
        m, logs, mask = m_p[:, :, f0:], logs_p[:, :, f0:], y_mask[:, :, f0:]
        z_p = m + self.noise.take(f0, total, m) * torch.exp(logs) * self.noise_scale
        z = s.flow(z_p, mask, g=self.ge, reverse=True) * mask
        wav = s.dec(z[:, :, w0 - f0 :], g=self.ge)[0, 0].float().cpu().numpy()
        seg = wav[(self.emitted - w0) * self.hop : (end + fade - w0) * self.hop]
        out = self.joiner.emit(seg, end - self.emitted, fade)
        self.emitted = end
        return out


class V4Chunks:
    """Chunked SoVITS v4 generation and vocoding of one fragment (see the module docstring)."""

    def __init__(self, sovits, vocoder, ge: torch.Tensor, fea_ref: torch.Tensor, mel_ref: torch.Tensor,
                 phones: torch.Tensor, speed: float, steps: int, cfg: StreamConfig | None = None,
                 fixed_grid: bool = True):  # fmt: skip
        self.sovits, self.vocoder, self.ge, self.phones = sovits, vocoder, ge, phones
        self.speed, self.steps = speed, steps
        self.cfg = cfg or StreamConfig()
        self.fixed_grid = fixed_grid
        self.fea_ref, self.mel_ref = align_prompt(fea_ref, mel_ref, ChunkConfig().t_ref)
        self.mel = mel_ref.new_zeros(1, mel_ref.shape[1], 0)  # generated (normalised) mel so far
        self.hop = ChunkConfig().upsample
        self.emitted = 0  # mel frames whose audio is out
        self.joiner = _Joiner(self.hop)
        self.voc_dtype = next(vocoder.parameters()).dtype

    def end_frame(self, tokens: int) -> int:
        return 4 * tokens if self.speed == 1 else 2 * int(2 * tokens / self.speed)

    @torch.inference_mode()
    def push(self, tokens: torch.Tensor, cut: int, final: bool) -> np.ndarray:
        if tokens.numel() == 0:
            return np.zeros(0, dtype=np.float32)
        cfg = self.cfg
        fea, _ = self.sovits.decode_encp(tokens.view(1, 1, -1), self.phones, None, ge=self.ge, speed=self.speed,
                                         fixed_grid=self.fixed_grid)  # fmt: skip
        fea = fea.float()
        total = fea.shape[2]
        end = total if final else min(self.end_frame(cut), total)
        done = self.mel.shape[2]
        if end > done:
            k = cfg.v4_prompt_frames
            ctx_fea = torch.cat([self.fea_ref, fea[:, :, :done]], 2)[:, :, -k:]
            ctx_mel = torch.cat([self.mel_ref, self.mel], 2)[:, :, -k:]
            mu = torch.cat([ctx_fea, fea[:, :, done:end]], 2).transpose(1, 2)  # [1, P + new, cond]
            lens = torch.tensor([mu.shape[1]], device=mu.device)
            new = self.sovits.cfm.inference(mu, lens, ctx_mel, self.steps)[:, :, ctx_mel.shape[2] :]
            self.mel = torch.cat([self.mel, new.float()], 2)
        voc_end = end if final else end - cfg.v4_vocoder_hold
        if voc_end <= self.emitted and not final:
            return np.zeros(0, dtype=np.float32)
        fade = 0 if final else min(cfg.fade_frames, end - voc_end)
        w0 = bucketed_start(self.emitted - cfg.v4_vocoder_context, end)
        wav = self.vocoder(denorm_spec(self.mel[:, :, w0:end]).to(self.voc_dtype))[0, 0].float().cpu().numpy()
        seg = wav[(self.emitted - w0) * self.hop : (voc_end + fade - w0) * self.hop]
        out = self.joiner.emit(seg, voc_end - self.emitted, fade)
        self.emitted = voc_end
        return out
