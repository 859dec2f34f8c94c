"""SoVITS v4 generator: re-implements GPT-SoVITS ``module/models.py::SynthesizerTrnV3`` (version "v4").

Design: the official parameter names and shapes (``enc_p``, ``ref_enc``, ``ssl_proj``, ``quantizer`` shared with v2
in :class:`~mockvox.models.sovits_common.SoVITSBase`; ``bridge``, ``wns1``, ``linear_mel``, ``cfm.estimator``), so
``s2Gv4.pth`` loads with ``load_state_dict``. Every size is a constructor argument (the official hard-codes the DiT,
``wns1`` and the 512-d bridge) with official defaults; :data:`TINY` exercises every block on a CPU. The chunked
generation of ``TTS.using_vocoder_synthesis`` (sequential, prompt carried over) and
``using_vocoder_synthesis_batched_infer`` (all chunks in one batch, 12-frame overlap, SOLA cross-fade) lives in
:func:`generate_mel` / :func:`synthesize`.

Data flow (25 Hz codes -> 50 Hz encoder -> 100 Hz mel):
    codes -RVQ decode, nearest x2-> enc_p(+phones, ge) [B,192,T50] -bridge-> [B,512,T50] -nearest x2->
    wns1(ge) -> fea [B,512,T100] -CFM(prompt mel, n Euler steps)-> normalised mel [B,100,T100] -> vocoder 48 kHz
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mockvox.audio.mel_v4 import denorm_spec
from mockvox.models.sovits_common import TINY_ENCODER, SoVITSBase
from mockvox.modules.cfm import CFM, flow_matching_loss, random_prompt_lengths
from mockvox.modules.commons import sequence_mask
from mockvox.modules.dit import DiT
from mockvox.modules.wavenet import WN

OFFICIAL_DIT: dict = dict(dim=1024, depth=22, heads=16, dim_head=64, ff_mult=2, conv_layers=4)
# Small sizes that still build every block (the encoder sizes shared with the v2 preset).
TINY: dict = dict(
    **TINY_ENCODER,
    cond_channels=32,
    wns_layers=2,
    dit=dict(dim=64, depth=2, heads=2, dim_head=32, ff_mult=2, conv_layers=1),
)
# Keys of the official s2.json model section that v4 does not use (decoder/posterior/flow of v2).
_UNUSED_CONFIG = {
    "resblock", "resblock_kernel_sizes", "resblock_dilation_sizes", "upsample_rates", "upsample_initial_channel",
    "upsample_kernel_sizes", "n_layers_q", "use_spectral_norm", "semantic_frame_rate", "version", "n_speakers",
    "use_sdp", "segment_size",
}  # fmt: skip


class WNEncoder(nn.Module):
    """Official ``models.Encoder`` (``wns1``): 1x1 ``pre`` -> masked WaveNet conditioned on ``ge`` -> 1x1 ``proj``."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int, kernel_size: int, n_layers: int, gin: int):
        super().__init__()
        self.pre = nn.Conv1d(in_channels, hidden, 1)
        self.enc = WN(hidden, kernel_size, 1, n_layers, gin_channels=gin)
        self.proj = nn.Conv1d(hidden, out_channels, 1)

    def forward(self, x: Tensor, lengths: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
        mask = sequence_mask(lengths, x.size(2)).unsqueeze(1).to(x.dtype)  # [B, 1, T]
        x = self.enc(self.pre(x) * mask, mask, g=g)
        return self.proj(x) * mask, mask


class SynthesizerTrnV3(SoVITSBase):
    """SoVITS v4 generator with official defaults (``s2.json`` model section, 25 Hz codes, v2 symbols).

    ``encoder`` takes the shared sizes of :class:`SoVITSBase` (``spec_channels``, ``gin_channels``, ``ssl_dim`` ...).
    With ``freeze_quantizer`` the text encoder is frozen too (no gradients, eval mode), as upstream.
    """

    frozen_parts = ("ssl_proj", "quantizer", "enc_p")

    def __init__(
        self,
        cond_channels: int = 512,
        wns_layers: int = 8,
        mel_channels: int = 100,
        dit: dict | None = None,
        **encoder: Any,
    ):
        super().__init__(**encoder)
        self.bridge = nn.Sequential(nn.Conv1d(self.hidden_channels, cond_channels, 1), nn.LeakyReLU())
        self.wns1 = WNEncoder(cond_channels, cond_channels, cond_channels, 5, wns_layers, self.gin_channels)
        self.linear_mel = nn.Conv1d(cond_channels, mel_channels, 1)
        dit_cfg = {**OFFICIAL_DIT, **(dit or {}), "mel_dim": mel_channels, "text_dim": cond_channels}
        self.cfm = CFM(mel_channels, DiT(**dit_cfg))
        if self.freeze_quantizer:
            for name in self.frozen_parts:
                getattr(self, name).requires_grad_(False)

    @classmethod
    def tiny(cls, **overrides) -> SynthesizerTrnV3:
        return cls(**{**TINY, **overrides})

    @classmethod
    def from_official_config(cls, model_cfg: dict, **overrides) -> SynthesizerTrnV3:
        """Build from the ``model`` section of an official ``s2.json``-style config (decoder keys ignored)."""
        if model_cfg.get("semantic_frame_rate", "25hz") != "25hz":
            raise ValueError("only 25 Hz semantic codes are supported")
        cfg = {k: v for k, v in model_cfg.items() if k not in _UNUSED_CONFIG}
        unknown = set(cfg) - cls.config_keys()
        if unknown:
            raise ValueError(f"unknown SoVITS v4 config keys: {sorted(unknown)}")
        return cls(**{**cfg, **overrides})

    def _features(self, x: Tensor, lengths: Tensor, ge: Tensor) -> Tensor:
        fea = F.interpolate(self.bridge(x), scale_factor=2, mode="nearest")  # [B, cond, 2 T50]
        return self.wns1(fea, lengths, ge)[0]

    @torch.no_grad()
    def decode_encp(
        self,
        codes: Tensor,
        text: Tensor,
        refer: Tensor | None,
        ge: Tensor | None = None,
        speed: float = 1.0,
        fixed_grid: bool = False,
    ) -> tuple[Tensor, Tensor]:
        """Conditioning features for the CFM.

        Args:
            codes: semantic codes ``[1, B, T25]``; text: phone ids ``[B, N]``.
            refer: reference linear spectrogram ``[B, spec_channels, Tr]`` (used only when ``ge`` is None).

        Returns:
            (fea ``[B, cond, 4 T25]`` at speed 1, else ``[B, cond, 2 (int(2 T25 / speed) + 1)]`` with frames beyond
            ``int(4 T25 / speed) + 1`` zeroed; ``ge [B, gin, 1]``).
        """
        if ge is None:
            ge = self.reference_embedding(refer)
        t25 = codes.size(2)
        n_out = 4 * t25 if speed == 1 else int(4 * t25 / speed) + 1
        out_lengths = torch.full((text.size(0),), n_out, dtype=torch.long, device=codes.device)
        x, _, _, _ = self.encode_codes(codes, text, ge, speed, fixed_grid)
        return self._features(x, out_lengths, ge), ge

    def forward(
        self,
        ssl: Tensor,
        spec: Tensor,
        mel: Tensor,
        spec_lengths: Tensor,
        text: Tensor,
        text_lengths: Tensor,
        mel_lengths: Tensor,
        prompt_lens: Tensor | None = None,
        shortcut: bool = False,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Training loss on ``ssl [B, ssl_dim, T50]``, ``spec [B, spec_channels, T50]``, norm. ``mel [B, 100, T100]``.

        ``prompt_lens`` defaults to the official random draw; ``shortcut`` selects the self-consistency target
        (the official recipe picks it with probability 0.3).
        """
        ge = self.reference_embedding(spec, spec_lengths)
        with self.frozen():
            quantized, _ = self.quantize(ssl)
            x, _, _, _ = self.enc_p(quantized, spec_lengths, text, text_lengths, ge)
        fea = self._features(x, mel_lengths, ge)
        if prompt_lens is None:
            prompt_lens = random_prompt_lengths(mel_lengths, generator)
        n = min(mel.shape[-1], fea.shape[-1])
        return flow_matching_loss(
            self.cfm.estimator, mel[:, :, :n], mel_lengths, prompt_lens, fea[:, :, :n], shortcut, generator
        )


# ---------------------------------------------------------------- chunked generation (TTS.using_vocoder_synthesis*)


@dataclass(frozen=True)
class ChunkConfig:
    """Official v4 values of ``TTS.vocoder_configs``."""

    t_ref: int = 500  # at most this many reference frames form the prompt
    t_chunk: int = 1000  # prompt + generated frames per CFM call
    overlap: int = 12  # batched mode: frames shared by consecutive chunks
    upsample: int = 480  # vocoder samples per frame
    sola_search: int = 320  # batched mode: samples searched for the best splice


def align_prompt(fea_ref: Tensor, mel_ref: Tensor, t_ref: int = 500) -> tuple[Tensor, Tensor]:
    """Crop reference features ``[1, cond, Tf]`` and normalised mel ``[1, 100, Tm]`` to their common length,
    keeping at most the last ``t_ref`` frames."""
    n = min(mel_ref.shape[2], fea_ref.shape[2], t_ref) if mel_ref.shape[2] else 0
    start = min(mel_ref.shape[2], fea_ref.shape[2]) - n
    return fea_ref[:, :, start : start + n], mel_ref[:, :, start : start + n]


def generate_sequential(
    cfm: CFM, fea_ref: Tensor, mel_ref: Tensor, fea_todo: Tensor, steps: int, chunk: ChunkConfig = ChunkConfig(), **kw
) -> Tensor:
    """Official sequential mode: each chunk is prompted by the previous chunk's last frames.

    ``fea_ref``/``mel_ref`` come from :func:`align_prompt`; ``fea_todo [1, cond, T]`` -> mel ``[1, 100, T]``.
    """
    t_min = mel_ref.shape[2]
    chunk_len = chunk.t_chunk - t_min
    outs = []
    for start in range(0, fea_todo.shape[2], chunk_len):
        part = fea_todo[:, :, start : start + chunk_len]
        mu = torch.cat([fea_ref, part], 2).transpose(1, 2)  # [1, T, cond]
        lens = torch.tensor([mu.shape[1]], device=mu.device)
        mel = cfm.inference(mu, lens, mel_ref, steps, **kw)[:, :, mel_ref.shape[2] :]
        mel_ref, fea_ref = mel[:, :, -t_min:], part[:, :, -t_min:]
        outs.append(mel)
    return torch.cat(outs, 2)


def plan_batched_chunks(total: int, chunk_len: int, overlap: int) -> tuple[list[int], int]:
    """Start frames (in the ``overlap``-left-padded sequence) of the batched-mode chunks and the last one's padding."""
    if chunk_len <= overlap:
        raise ValueError(f"chunk length {chunk_len} must exceed the overlap {overlap} (shorten the reference prompt)")
    starts, pos, padding = [], 0, 0
    while True:
        if pos:
            pos -= overlap
        if pos >= total + overlap:
            return starts, padding
        starts.append(pos)
        padding = max(0, pos + chunk_len - (total + overlap))
        pos += chunk_len


def generate_batched(
    cfm: CFM, fea_ref: Tensor, mel_ref: Tensor, fea_todo: Tensor, steps: int, chunk: ChunkConfig = ChunkConfig(), **kw
) -> tuple[Tensor, int]:
    """Official parallel mode: every chunk shares the reference prompt and runs in one CFM batch.

    Returns the chunks' mels laid end to end ``[1, 100, n * chunk_len]`` and the padding of the last chunk.
    """
    chunk_len = chunk.t_chunk - mel_ref.shape[2]
    padded = F.pad(fea_todo, (chunk.overlap, 0))
    starts, padding = plan_batched_chunks(fea_todo.shape[2], chunk_len, chunk.overlap)
    parts = [F.pad(padded[:, :, s : s + chunk_len], (0, max(0, s + chunk_len - padded.shape[2]))) for s in starts]
    feats = torch.cat(parts, 0)  # [n, cond, chunk_len]
    mu = torch.cat([fea_ref.expand(len(parts), -1, -1), feats], 2).transpose(1, 2)
    lens = torch.full((len(parts),), mu.shape[1], device=mu.device)
    mel = cfm.inference(mu, lens, mel_ref, steps, **kw)[:, :, -chunk_len:]  # [n, 100, chunk_len]
    return mel.permute(1, 0, 2).reshape(1, mel.shape[1], -1), padding


def sola_stitch(fragments: list[Tensor], overlap: int, search: int = 320) -> Tensor:
    """Join waveform fragments: each next fragment is shifted (within ``search`` samples) to best match the
    previous fragment's last ``overlap`` samples (normalised cross-correlation), then Hann cross-faded over them."""
    frags = [f.float() for f in fragments]
    window = torch.hann_window(2 * overlap, device=frags[0].device)
    for i in range(len(frags) - 1):
        tail, nxt = frags[i][-overlap:], frags[i + 1]
        probe = nxt[: overlap + search]
        corr = F.conv1d(probe.view(1, 1, -1), tail.view(1, 1, -1)).view(-1)
        energy = F.conv1d(probe.view(1, 1, -1) ** 2, torch.ones_like(tail).view(1, 1, -1)).view(-1) + 1e-8
        shift = int((corr / energy.sqrt()).argmax())
        joined = nxt[shift:].clone()
        joined[:overlap] = window[:overlap] * joined[:overlap] + window[overlap:] * tail
        frags[i], frags[i + 1] = frags[i][:-overlap], joined
    return torch.cat(frags, 0).to(fragments[0].dtype)


@torch.inference_mode()
def synthesize(
    model: SynthesizerTrnV3,
    vocoder: nn.Module,
    fea_ref: Tensor,
    mel_ref: Tensor,
    fea_todo: list[Tensor],
    steps: int = 32,
    batched: bool = False,
    chunk: ChunkConfig = ChunkConfig(),
    **kw,
) -> list[Tensor]:
    """Waveforms (48 kHz, ``[480 T_i]`` each) for target features ``fea_todo[i] [1, cond, T_i]``.

    ``fea_ref``/``mel_ref``: reference features from :meth:`SynthesizerTrnV3.decode_encp` and the normalised v4 mel
    of the reference audio (cropped here with :func:`align_prompt`). ``kw`` goes to :meth:`CFM.inference`.
    """
    fea_ref, mel_ref = align_prompt(fea_ref, mel_ref, chunk.t_ref)
    voc_dtype = next(vocoder.parameters()).dtype

    def vocode(mel: Tensor) -> Tensor:  # normalised mel [1, 100, T] -> [480 T] float32
        return vocoder(denorm_spec(mel).to(voc_dtype))[0, 0].float()

    if not batched:
        return [vocode(generate_sequential(model.cfm, fea_ref, mel_ref, f, steps, chunk, **kw)) for f in fea_todo]
    lengths = [f.shape[2] for f in fea_todo]
    mel, padding = generate_batched(model.cfm, fea_ref, mel_ref, torch.cat(fea_todo, 2), steps, chunk, **kw)
    audio = vocode(mel)
    step = (chunk.t_chunk - mel_ref.shape[2]) * chunk.upsample
    audio = sola_stitch(list(audio.split(step)), chunk.overlap * chunk.upsample, chunk.sola_search)
    # official: audio[a:-pad], which is empty when pad == 0; here the tail is kept then
    audio = audio[chunk.overlap * chunk.upsample : audio.shape[0] - padding * chunk.upsample]
    out = []
    for n in lengths:
        out.append(audio[: n * chunk.upsample])
        audio = audio[n * chunk.upsample :]
    return out
