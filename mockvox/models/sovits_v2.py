"""SoVITS v2 / v2Pro / v2ProPlus generator: re-implements GPT-SoVITS ``module/models.py::SynthesizerTrn`` (25 Hz).

Design: the official parameter names and shapes (``ssl_proj``, ``quantizer``, ``enc_p``, ``ref_enc``, ``enc_q``,
``flow``, ``dec``; v2Pro adds ``sv_emb``, ``ge_to512``, ``prelu``), so official ``s2G*.pth`` weights load with
``load_state_dict``; every size is a constructor argument (the official hard-codes MRTE, SSL and style sizes) with
the s2.json defaults, :data:`OFFICIAL_SIZES` holds what ``s2v2Pro.json`` / ``s2v2ProPlus.json`` change, and
:data:`TINY` exercises every block on a CPU. The semantic side (``enc_p``, ``ref_enc``, ``ssl_proj``, ``quantizer``)
and its sizes come from :class:`~mockvox.models.sovits_common.SoVITSBase`, shared with v4.
``enc_q`` is optional (fine-tuned exports drop it); the training forward accepts the two random draws (posterior
noise, slice positions) so a stored run can be reproduced. v1 is not covered.

v2Pro/v2ProPlus (``version``) condition on a speaker-verification embedding ``sv`` of each reference as well (20480-d,
:class:`~mockvox.models.eres2net.SpeakerEncoder`): ``ge = PReLU(ref_enc(spec) + sv_emb(sv))`` (gin_channels 1024),
averaged over references after the PReLU; MRTE adds ``ge_to512(ge)``, enc_q, flow and dec take ``ge`` itself.

Data flow (50 Hz frames, 25 Hz codes):
    ssl [B,768,T] -ssl_proj(k2,s2)-> [B,768,T/2] -RVQ-> codes / quantized -nearest x2-> enc_p(+text, ge) -> m_p, logs_p
    spec [B,1025,T] -ref_enc(first 704 bins)-> ge [B,gin,1];  spec -enc_q-> z -flow-> z_p;  z -dec-> wav (640 x T)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mockvox.models.eres2net import SV_DIM
from mockvox.models.sovits_common import TINY_ENCODER, SoVITSBase
from mockvox.modules.commons import rand_slice_segments, remove_weight_norm
from mockvox.modules.flows import ResidualCouplingBlock
from mockvox.modules.hifigan import Generator
from mockvox.modules.wavenet import PosteriorEncoder

# Sizes small enough for CPU unit tests that still build every block (hop = 4 * 4 = 16 samples per frame).
TINY: dict = dict(
    **TINY_ENCODER,
    segment_size=8,
    resblock_kernel_sizes=(3, 5),
    resblock_dilation_sizes=((1, 3, 5), (1, 3, 5)),
    upsample_rates=(4, 4),
    upsample_initial_channel=32,
    upsample_kernel_sizes=(8, 8),
    enc_q_layers=2,
    flow_wn_layers=2,
    n_flows=2,
)
TINY_PRO: dict = dict(gin_channels=32, sv_dim=40)  # on top of TINY for v2Pro: ge_to512 maps 32 -> mrte_hidden 24

PRO_VERSIONS = ("v2Pro", "v2ProPlus")
VERSIONS = ("v2", *PRO_VERSIONS)
# What s2v2Pro.json / s2v2ProPlus.json change in the constructor defaults (= s2.json).
OFFICIAL_SIZES: dict[str, dict] = {
    "v2": {},
    "v2Pro": dict(gin_channels=1024, p_dropout=0.0),
    "v2ProPlus": dict(
        gin_channels=1024, p_dropout=0.0, upsample_initial_channel=768, upsample_kernel_sizes=(20, 16, 8, 2, 2)
    ),
}


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


class SynthesizerTrn(SoVITSBase):
    """SoVITS v2 generator with official defaults (``s2.json`` model section, 25 Hz, v2 symbols).

    ``encoder`` takes the shared sizes of :class:`SoVITSBase` (``spec_channels``, ``gin_channels``, ``ssl_dim`` ...).
    ``version`` v2Pro/v2ProPlus adds the speaker-verification fusion (``sv_dim`` wide input); their official sizes
    are :data:`OFFICIAL_SIZES` (:meth:`official`).
    """

    def __init__(
        self,
        segment_size: int = 32,
        resblock: str = "1",
        resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11),
        resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        upsample_rates: tuple[int, ...] = (10, 8, 2, 2, 2),
        upsample_initial_channel: int = 512,
        upsample_kernel_sizes: tuple[int, ...] = (16, 16, 8, 2, 2),
        enc_q_layers: int = 16,
        flow_wn_layers: int = 4,
        n_flows: int = 4,
        use_enc_q: bool = True,
        version: str = "v2",
        sv_dim: int = SV_DIM,
        **encoder: Any,
    ):
        if version not in VERSIONS:
            raise ValueError(f"SoVITS version {version!r} is not a v2 model; accepted: {', '.join(VERSIONS)}")

        def decoder() -> dict[str, nn.Module]:  # dec, enc_q, flow: built right after enc_p, as upstream
            spec, inter, hidden, gin = self.spec_channels, self.inter_channels, self.hidden_channels, self.gin_channels
            parts: dict[str, nn.Module] = {
                "dec": Generator(
                    inter,
                    resblock,
                    resblock_kernel_sizes,
                    resblock_dilation_sizes,
                    upsample_rates,
                    upsample_initial_channel,
                    upsample_kernel_sizes,
                    gin_channels=gin,
                )  # fmt: skip
            }
            if use_enc_q:
                parts["enc_q"] = PosteriorEncoder(spec, inter, hidden, 5, 1, enc_q_layers, gin_channels=gin)
            parts["flow"] = ResidualCouplingBlock(
                inter, hidden, 5, 1, flow_wn_layers, n_flows=n_flows, gin_channels=gin
            )
            return parts

        is_pro = version in PRO_VERSIONS
        super().__init__(**encoder, mrte_projection=is_pro, decoder=decoder)
        self.segment_size, self.version, self.is_pro = segment_size, version, is_pro
        if self.is_pro:  # registered last, as upstream
            gin = self.gin_channels
            self.sv_emb = nn.Linear(sv_dim, gin)
            self.ge_to512 = nn.Linear(gin, self.mrte_hidden)  # official name; 512 = the MRTE width
            self.prelu = nn.PReLU(num_parameters=gin)

    @classmethod
    def tiny(cls, **overrides) -> SynthesizerTrn:
        pro = TINY_PRO if overrides.get("version") in PRO_VERSIONS else {}
        return cls(**{**TINY, **pro, **overrides})

    @classmethod
    def official(cls, version: str = "v2", **overrides) -> SynthesizerTrn:
        """The official network of ``version`` (s2.json, s2v2Pro.json or s2v2ProPlus.json sizes)."""
        if version not in OFFICIAL_SIZES:
            raise ValueError(f"unknown SoVITS version {version!r}; accepted: {', '.join(OFFICIAL_SIZES)}")
        return cls(**{**OFFICIAL_SIZES[version], "version": version, **overrides})

    @classmethod
    def from_hparams(cls, hps: Mapping, **overrides) -> SynthesizerTrn:
        """Build from an official ``s2.json``-style config (``data``/``train``/``model`` sections, e.g. a checkpoint's
        ``config``): ``spec_channels = filter_length // 2 + 1``, ``segment_size = train.segment_size // hop_length``;
        ``model.version`` (default v2) picks v2, v2Pro or v2ProPlus."""
        model, data = dict(hps["model"]), hps["data"]
        if model.get("semantic_frame_rate", "25hz") != "25hz":
            raise ValueError(f"semantic_frame_rate {model['semantic_frame_rate']!r} unsupported; accepted: '25hz'")
        if model.get("version", "v2") not in VERSIONS:
            raise ValueError(f"SoVITS version {model['version']!r} is not a v2 model; accepted: {', '.join(VERSIONS)}")
        accepted = cls.config_keys()
        kwargs = {k: v for k, v in model.items() if k in accepted}
        kwargs["spec_channels"] = data["filter_length"] // 2 + 1
        kwargs["segment_size"] = hps["train"]["segment_size"] // data["hop_length"]
        return cls(**{**kwargs, **overrides})

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, **overrides) -> SynthesizerTrn:
        """An official generator file (pretrained ``s2G*.pth`` or WebUI export, headers ``05``/``06`` included),
        loaded strictly in eval mode: the version comes from the file (md5, header, weights), the sizes are that
        version's :data:`OFFICIAL_SIZES` updated by the file's ``config``, ``enc_q`` is built iff the file has it
        (``use_enc_q=False`` drops it)."""
        from mockvox.checkpoints import load_sovits_checkpoint

        ckpt = load_sovits_checkpoint(path)
        version = ckpt.version.model
        if version not in VERSIONS or ckpt.version.lora:
            raise ValueError(f"{path}: a SoVITS {version} file; SynthesizerTrn loads {', '.join(VERSIONS)}")
        model_cfg, data = ckpt.config.get("model") or {}, ckpt.config.get("data") or {}
        sizes = {k: v for k, v in model_cfg.items() if k in cls.config_keys()}
        if "filter_length" in data:
            sizes["spec_channels"] = data["filter_length"] // 2 + 1
        if "segment_size" in (ckpt.config.get("train") or {}) and "hop_length" in data:
            sizes["segment_size"] = ckpt.config["train"]["segment_size"] // data["hop_length"]
        use_enc_q = any(k.startswith("enc_q.") for k in ckpt.weight)
        model = cls(**{**OFFICIAL_SIZES[version], **sizes, "version": version, "use_enc_q": use_enc_q, **overrides})
        weight = ckpt.weight if hasattr(model, "enc_q") else {k: v for k, v in ckpt.weight.items() if "enc_q" not in k}
        try:
            model.load_state_dict(weight, strict=True)
        except RuntimeError as err:
            raise ValueError(f"{path}: weights do not fit the SoVITS {version} generator ({err})") from err
        return model.eval()

    @property
    def hop_length(self) -> int:
        return int(torch.prod(torch.tensor([up.stride[0] for up in self.dec.ups])))

    def remove_weight_norm(self) -> SynthesizerTrn:
        """Fold all weight norms (inference only; the state dict then has ``weight`` instead of ``weight_g/_v``)."""
        remove_weight_norm(self)
        return self

    def reference_embedding(
        self, refer: torch.Tensor, lengths: torch.Tensor | None = None, sv_emb: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``ge [B, gin, 1]`` of reference spectrograms ``[B, spec_channels, T]``; v2Pro(Plus) fuse each item's
        speaker-verification embedding ``sv_emb [B, sv_dim]``: ``PReLU(ref_enc(spec) + sv_emb(sv))``."""
        ge = super().reference_embedding(refer, lengths)
        if not self.is_pro:
            if sv_emb is not None:
                raise ValueError(f"sv_emb given to a SoVITS {self.version} model; only {PRO_VERSIONS} use it")
            return ge
        if sv_emb is None:
            raise ValueError(
                f"SoVITS {self.version} needs the speaker-verification embedding sv_emb [B, {self.sv_emb.in_features}] "
                "of each reference (mockvox.models.eres2net.SpeakerEncoder)"
            )
        return self.prelu(ge + self.sv_emb(sv_emb.to(ge.dtype)).unsqueeze(-1))  # upstream: ge += ... in place

    def mrte_condition(self, ge: torch.Tensor) -> torch.Tensor:
        """The style MRTE adds: ``ge`` (v2), or ``ge_to512(ge)`` ``[B, mrte_hidden, 1]`` (v2Pro, v2ProPlus)."""
        return self.ge_to512(ge.transpose(1, 2)).transpose(1, 2) if self.is_pro else ge

    def forward(
        self,
        ssl: torch.Tensor,
        spec: torch.Tensor,
        spec_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        sv_emb: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        uniform: torch.Tensor | None = None,
    ) -> TrainOutput:
        """Training forward on padded batches: ``ssl [B, ssl_dim, T]``, ``spec [B, spec_channels, T]`` (T even),
        ``sv_emb [B, sv_dim]`` for v2Pro(Plus).

        ``noise [B, inter, T]`` and ``uniform [B]`` replace the posterior ``randn`` and the slice ``rand`` draws.
        """
        if not hasattr(self, "enc_q"):
            raise RuntimeError("the training forward needs enc_q: build the model with use_enc_q=True")
        ge = self.reference_embedding(spec, spec_lengths, sv_emb)
        with self.frozen():
            quantized, commit_loss = self.quantize(ssl)
        _, m_p, logs_p, _ = self.enc_p(quantized, spec_lengths, text, text_lengths, self.mrte_condition(ge))
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
        sv_emb: torch.Tensor | list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Synthesis: codes ``[1, B, T25]`` (or ``[n_q, B, T25]``), phones ``[B, N]``, reference spectrogram(s)
        ``[B, spec_channels, Tr]`` (a list: ``ge`` averaged) and, for v2Pro(Plus), their sv embedding(s)
        ``[B, sv_dim]`` (a list as long as ``refer``) -> waveform ``[B, 1, T * hop]``.

        ``T = 2 * T25`` at speed 1, else ``int(2 * T25 / speed) + 1``. The waveform is float32 whatever the precision.
        """
        ge = self.style(refer, sv_emb)
        _, m_p, logs_p, y_mask = self.encode_codes(codes, text, ge, speed)
        z_p = m_p + torch.randn_like(m_p) * torch.exp(logs_p) * noise_scale
        return self.decode_latent(z_p, y_mask, ge)

    def style(
        self, refer: torch.Tensor | list[torch.Tensor], sv_emb: torch.Tensor | list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """``ge [B, gin, 1]`` of one reference or the mean over several (official ``decode``; v2Pro: the mean of the
        fused embeddings, i.e. taken after the PReLU)."""
        refs = list(refer) if isinstance(refer, list | tuple) else [refer]
        svs = list(sv_emb) if isinstance(sv_emb, list | tuple) else [sv_emb] * len(refs)
        if sv_emb is not None and len(svs) != len(refs):
            raise ValueError(f"{len(svs)} sv embeddings for {len(refs)} references; pass one per reference")
        dtype = self.ssl_proj.weight.dtype  # model precision (bfloat16 after .to(torch.bfloat16))
        ges = [self.reference_embedding(r.to(dtype), sv_emb=s) for r, s in zip(refs, svs, strict=True)]
        return torch.stack(ges, 0).mean(0)

    @torch.no_grad()
    def decode_latent(self, z_p: torch.Tensor, y_mask: torch.Tensor, ge: torch.Tensor) -> torch.Tensor:
        """Prior sample ``z_p [B, inter, T]`` -> reversed flow -> HiFi-GAN waveform ``[B, 1, T * hop]`` (float32)."""
        z = self.flow(z_p, y_mask, g=ge, reverse=True)
        return self.dec(z * y_mask, g=ge).float()
