"""SoVITS v2 generator: re-implements GPT-SoVITS ``module/models.py::SynthesizerTrn`` (version "v2", 25 Hz codes).

Design: the official parameter names and shapes (``ssl_proj``, ``quantizer``, ``enc_p``, ``ref_enc``, ``enc_q``,
``flow``, ``dec``), so official ``s2G*.pth`` weights load with ``load_state_dict``; every size is a constructor
argument (the official hard-codes MRTE, SSL and style sizes) with official defaults, and :data:`TINY` exercises
every block on a CPU.
``enc_q`` is optional (fine-tuned exports drop it); the training forward accepts the two random draws (posterior
noise, slice positions) so a stored run can be reproduced. v1, v2Pro and speaker-verification inputs are not covered.

Data flow (50 Hz frames, 25 Hz codes):
    ssl [B,768,T] -ssl_proj(k2,s2)-> [B,768,T/2] -RVQ-> codes / quantized -nearest x2-> enc_p(+text, ge) -> m_p, logs_p
    spec [B,1025,T] -ref_enc(first 704 bins)-> ge [B,512,1];  spec -enc_q-> z -flow-> z_p;  z -dec-> wav (640 x T)
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mockvox.modules.commons import eval_mode, rand_slice_segments, remove_weight_norm, sequence_mask
from mockvox.modules.flows import ResidualCouplingBlock
from mockvox.modules.hifigan import Generator
from mockvox.modules.quantize import ResidualVectorQuantizer
from mockvox.modules.style import MelStyleEncoder
from mockvox.modules.text_encoder import V2_SYMBOLS, TextEncoder
from mockvox.modules.wavenet import PosteriorEncoder

# Sizes small enough for CPU unit tests that still build every block (hop = 4 * 4 = 16 samples per frame).
TINY: dict = dict(
    spec_channels=65,
    segment_size=8,
    inter_channels=16,
    hidden_channels=16,
    filter_channels=32,
    n_heads=2,
    n_layers=2,
    resblock_kernel_sizes=(3, 5),
    resblock_dilation_sizes=((1, 3, 5), (1, 3, 5)),
    upsample_rates=(4, 4),
    upsample_initial_channel=32,
    upsample_kernel_sizes=(8, 8),
    gin_channels=24,
    ssl_dim=32,
    codebook_size=16,
    ref_bins=48,
    mrte_hidden=24,
    style_hidden=16,
    enc_q_layers=2,
    flow_wn_layers=2,
    n_flows=2,
)


@dataclass
class TrainOutput:
    """What the generator training step needs (shapes for batch B, T padded frames, S = segment frames)."""

    y_hat: torch.Tensor  # [B, 1, S * hop]
    commit_loss: torch.Tensor  # [1]
    ids_slice: torch.Tensor  # [B] start frame of each decoded slice
    z_mask: torch.Tensor  # [B, 1, T]
    z: torch.Tensor  # [B, inter, T] posterior sample
    z_p: torch.Tensor  # [B, inter, T] flowed sample
    m_p: torch.Tensor  # [B, inter, T] prior mean
    logs_p: torch.Tensor
    m_q: torch.Tensor  # posterior mean
    logs_q: torch.Tensor
    quantized: torch.Tensor  # [B, ssl_dim, T]


class SynthesizerTrn(nn.Module):
    """SoVITS v2 generator with official defaults (``s2.json`` model section, 25 Hz, v2 symbols)."""

    def __init__(
        self,
        spec_channels: int = 1025,
        segment_size: int = 32,
        inter_channels: int = 192,
        hidden_channels: int = 192,
        filter_channels: int = 768,
        n_heads: int = 2,
        n_layers: int = 6,
        kernel_size: int = 3,
        p_dropout: float = 0.1,
        resblock: str = "1",
        resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11),
        resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        upsample_rates: tuple[int, ...] = (10, 8, 2, 2, 2),
        upsample_initial_channel: int = 512,
        upsample_kernel_sizes: tuple[int, ...] = (16, 16, 8, 2, 2),
        gin_channels: int = 512,
        n_symbols: int = V2_SYMBOLS,
        ssl_dim: int = 768,
        codebook_size: int = 1024,
        ref_bins: int = 704,
        mrte_hidden: int = 512,
        mrte_heads: int = 4,
        style_hidden: int = 128,
        enc_q_layers: int = 16,
        flow_wn_layers: int = 4,
        n_flows: int = 4,
        use_enc_q: bool = True,
        freeze_quantizer: bool = True,
    ):
        super().__init__()
        if mrte_hidden != gin_channels:
            raise ValueError(f"mrte_hidden ({mrte_hidden}) must equal gin_channels ({gin_channels}): MRTE adds ge")
        if ref_bins > spec_channels:
            raise ValueError(f"ref_bins ({ref_bins}) exceeds spec_channels ({spec_channels})")
        self.segment_size = segment_size
        self.ref_bins = ref_bins
        self.freeze_quantizer = freeze_quantizer
        self.enc_p = TextEncoder(
            inter_channels, hidden_channels, filter_channels, n_heads, n_layers, kernel_size, p_dropout,
            ssl_dim=ssl_dim, n_symbols=n_symbols, mrte_hidden=mrte_hidden, mrte_heads=mrte_heads,
        )  # fmt: skip
        self.dec = Generator(
            inter_channels, resblock, resblock_kernel_sizes, resblock_dilation_sizes, upsample_rates,
            upsample_initial_channel, upsample_kernel_sizes, gin_channels=gin_channels,
        )  # fmt: skip
        if use_enc_q:
            self.enc_q = PosteriorEncoder(
                spec_channels, inter_channels, hidden_channels, 5, 1, enc_q_layers, gin_channels=gin_channels
            )
        self.flow = ResidualCouplingBlock(
            inter_channels, hidden_channels, 5, 1, flow_wn_layers, n_flows=n_flows, gin_channels=gin_channels
        )
        self.ref_enc = MelStyleEncoder(ref_bins, style_hidden=style_hidden, style_vector_dim=gin_channels)
        self.ssl_proj = nn.Conv1d(ssl_dim, ssl_dim, 2, stride=2)
        self.quantizer = ResidualVectorQuantizer(dimension=ssl_dim, n_q=1, bins=codebook_size)

    @classmethod
    def tiny(cls, **overrides) -> SynthesizerTrn:
        return cls(**{**TINY, **overrides})

    @classmethod
    def from_hparams(cls, hps: Mapping, **overrides) -> SynthesizerTrn:
        """Build from an official ``s2.json``-style config (``data``/``train``/``model`` sections, e.g. a checkpoint's
        ``config``): ``spec_channels = filter_length // 2 + 1``, ``segment_size = train.segment_size // hop_length``."""
        model, data = dict(hps["model"]), hps["data"]
        if model.get("semantic_frame_rate", "25hz") != "25hz":
            raise ValueError(f"semantic_frame_rate {model['semantic_frame_rate']!r} unsupported; accepted: '25hz'")
        if model.get("version", "v2") != "v2":
            raise ValueError(f"SoVITS version {model['version']!r} is not v2; accepted: 'v2'")
        accepted = inspect.signature(cls).parameters
        kwargs = {k: v for k, v in model.items() if k in accepted}
        kwargs["spec_channels"] = data["filter_length"] // 2 + 1
        kwargs["segment_size"] = hps["train"]["segment_size"] // data["hop_length"]
        return cls(**{**kwargs, **overrides})

    @property
    def hop_length(self) -> int:
        return int(torch.prod(torch.tensor([up.stride[0] for up in self.dec.ups])))

    def remove_weight_norm(self) -> SynthesizerTrn:
        """Fold all weight norms (inference only; the state dict then has ``weight`` instead of ``weight_g/_v``)."""
        remove_weight_norm(self)
        return self

    def reference_embedding(self, refer: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Linear spectrogram ``[B, spec_channels, T]`` -> ``ge [B, gin, 1]`` from its first ``ref_bins`` bins."""
        if lengths is None:
            lengths = torch.full((refer.size(0),), refer.size(2), dtype=torch.long, device=refer.device)
        mask = sequence_mask(lengths, refer.size(2)).unsqueeze(1).to(refer.dtype)
        return self.ref_enc(refer[:, : self.ref_bins] * mask, mask)

    def extract_latent(self, ssl: torch.Tensor) -> torch.Tensor:
        """HuBERT features ``[B, ssl_dim, T50]`` -> semantic codes ``[B, 1, T50 // 2]`` (25 Hz)."""
        return self.quantizer.encode(self.ssl_proj(ssl)).transpose(0, 1)

    def _quantize(self, ssl: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        frozen = (self.ssl_proj, self.quantizer) if self.freeze_quantizer else ()  # upstream: eval (no EMA, loss 0)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_quantizer), eval_mode(*frozen):
            quantized, _, commit_loss = self.quantizer(self.ssl_proj(ssl))
        return F.interpolate(quantized, size=quantized.shape[-1] * 2, mode="nearest"), commit_loss

    def forward(
        self,
        ssl: torch.Tensor,
        spec: torch.Tensor,
        spec_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        noise: torch.Tensor | None = None,
        uniform: torch.Tensor | None = None,
    ) -> TrainOutput:
        """Training forward on padded batches: ``ssl [B, ssl_dim, T]``, ``spec [B, spec_channels, T]`` (T even).

        ``noise [B, inter, T]`` and ``uniform [B]`` replace the posterior ``randn`` and the slice ``rand`` draws.
        """
        if not hasattr(self, "enc_q"):
            raise RuntimeError("the training forward needs enc_q: build the model with use_enc_q=True")
        ge = self.reference_embedding(spec, spec_lengths)
        quantized, commit_loss = self._quantize(ssl)
        _, m_p, logs_p, _ = self.enc_p(quantized, spec_lengths, text, text_lengths, ge)
        z, m_q, logs_q, y_mask = self.enc_q(spec, spec_lengths, g=ge, noise=noise)
        z_p = self.flow(z, y_mask, g=ge)
        z_slice, ids_slice = rand_slice_segments(z, spec_lengths, self.segment_size, uniform)
        y_hat = self.dec(z_slice, g=ge)
        return TrainOutput(y_hat, commit_loss, ids_slice, y_mask, z, z_p, m_p, logs_p, m_q, logs_q, quantized)

    @torch.no_grad()
    def decode(
        self,
        codes: torch.Tensor,
        text: torch.Tensor,
        refer: torch.Tensor | list[torch.Tensor],
        noise_scale: float = 0.5,
        speed: float = 1.0,
    ) -> torch.Tensor:
        """Synthesis: codes ``[1, B, T25]`` (or ``[n_q, B, T25]``), phones ``[B, N]``, reference spectrogram(s)
        ``[B, spec_channels, Tr]`` (a list: ``ge`` averaged) -> waveform ``[B, 1, T * hop]``.

        ``T = 2 * T25`` at speed 1, else ``int(2 * T25 / speed) + 1``. The waveform is float32 whatever the precision.
        """
        refs = refer if isinstance(refer, list | tuple) else [refer]
        dtype = self.ssl_proj.weight.dtype  # model precision (bfloat16 after .to(torch.bfloat16))
        ge = torch.stack([self.reference_embedding(r.to(dtype)) for r in refs], 0).mean(0)
        b = text.size(0)
        y_lengths = torch.full((b,), codes.size(2) * 2, dtype=torch.long, device=codes.device)
        text_lengths = torch.full((b,), text.size(-1), dtype=torch.long, device=text.device)
        quantized = self.quantizer.decode(codes).to(ge.dtype)
        quantized = F.interpolate(quantized, size=quantized.shape[-1] * 2, mode="nearest")
        _, m_p, logs_p, y_mask = self.enc_p(quantized, y_lengths, text, text_lengths, ge, speed)
        z_p = m_p + torch.randn_like(m_p) * torch.exp(logs_p) * noise_scale
        z = self.flow(z_p, y_mask, g=ge, reverse=True)
        return self.dec(z * y_mask, g=ge).float()
