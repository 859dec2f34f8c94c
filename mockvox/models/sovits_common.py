"""What SoVITS v2 and v4 share: GPT-SoVITS builds it in both ``SynthesizerTrn`` and ``SynthesizerTrnV3``.

The semantic side of both generators is the same: HuBERT features -> ``ssl_proj`` -> RVQ ``quantizer`` -> codes,
codes -> ``enc_p`` (MRTE text encoder, conditioned on ``ge``), and a reference spectrogram -> ``ref_enc`` -> ``ge``.
:class:`SoVITSBase` builds these parts under their official names, holds the shared constructor sizes (with the
official defaults) and runs the frozen parts in eval mode without gradients. Subclasses add their acoustic side; v2's
decoder is registered between ``enc_p`` and ``ref_enc``, where the official state dict (and its seeded init) has it.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mockvox.modules.commons import eval_mode, sequence_mask
from mockvox.modules.quantize import ResidualVectorQuantizer
from mockvox.modules.style import MelStyleEncoder
from mockvox.modules.text_encoder import V2_SYMBOLS, TextEncoder

# Encoder sizes of the CPU test presets (``TINY`` of v2 and v4): small, but every block is built.
TINY_ENCODER: dict = dict(
    spec_channels=65,
    inter_channels=16,
    hidden_channels=16,
    filter_channels=32,
    n_heads=2,
    n_layers=2,
    gin_channels=24,
    ssl_dim=32,
    codebook_size=16,
    ref_bins=48,
    mrte_hidden=24,
    style_hidden=16,
)


class SoVITSBase(nn.Module):
    """Reference encoder, SSL projection, quantizer and text encoder of a SoVITS generator (official defaults).

    Args:
        ref_bins: how many low spectrogram bins ``ref_enc`` reads (official: 704 of 1025).
        mrte_projection: the subclass projects ``ge`` to ``mrte_hidden`` (:meth:`mrte_condition`), so the two widths
            may differ (v2Pro: ``ge_to512``); otherwise MRTE adds ``ge`` itself.
        freeze_quantizer: ``frozen_parts`` then run in eval mode and without gradients in the training forward.
        decoder: builds the modules registered right after ``enc_p`` (v2: ``dec``, ``enc_q``, ``flow``), by name.
    """

    frozen_parts: tuple[str, ...] = ("ssl_proj", "quantizer")

    def __init__(
        self,
        spec_channels: int = 1025,
        inter_channels: int = 192,
        hidden_channels: int = 192,
        filter_channels: int = 768,
        n_heads: int = 2,
        n_layers: int = 6,
        kernel_size: int = 3,
        p_dropout: float = 0.1,
        gin_channels: int = 512,
        n_symbols: int = V2_SYMBOLS,
        ssl_dim: int = 768,
        codebook_size: int = 1024,
        ref_bins: int = 704,
        mrte_hidden: int = 512,
        mrte_heads: int = 4,
        style_hidden: int = 128,
        freeze_quantizer: bool = True,
        mrte_projection: bool = False,
        decoder: Callable[[], dict[str, nn.Module]] | None = None,
    ):
        super().__init__()
        if mrte_hidden != gin_channels and not mrte_projection:
            raise ValueError(f"mrte_hidden ({mrte_hidden}) must equal gin_channels ({gin_channels}): MRTE adds ge")
        if ref_bins > spec_channels:
            raise ValueError(f"ref_bins ({ref_bins}) exceeds spec_channels ({spec_channels})")
        self.spec_channels, self.inter_channels, self.hidden_channels = spec_channels, inter_channels, hidden_channels
        self.gin_channels, self.mrte_hidden = gin_channels, mrte_hidden
        self.ref_bins = ref_bins
        self.freeze_quantizer = freeze_quantizer
        self.enc_p = TextEncoder(
            inter_channels, hidden_channels, filter_channels, n_heads, n_layers, kernel_size, p_dropout,
            ssl_dim=ssl_dim, n_symbols=n_symbols, mrte_hidden=mrte_hidden, mrte_heads=mrte_heads,
        )  # fmt: skip
        for name, module in (decoder() if decoder is not None else {}).items():
            self.add_module(name, module)
        self.ref_enc = MelStyleEncoder(ref_bins, style_hidden=style_hidden, style_vector_dim=gin_channels)
        self.ssl_proj = nn.Conv1d(ssl_dim, ssl_dim, 2, stride=2)
        self.quantizer = ResidualVectorQuantizer(dimension=ssl_dim, n_q=1, bins=codebook_size)

    @classmethod
    def config_keys(cls) -> set[str]:
        """Every keyword the constructor takes: the subclass's own and the shared sizes (not ``decoder``)."""
        keys = set()
        for klass in cls.__mro__[: cls.__mro__.index(SoVITSBase) + 1]:
            params = inspect.signature(klass.__init__).parameters.values()
            keys |= {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        return keys - {"self", "decoder", "mrte_projection"}

    def reference_embedding(self, refer: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Linear spectrogram ``[B, spec_channels, T]`` -> ``ge [B, gin, 1]`` from its first ``ref_bins`` bins."""
        if lengths is None:
            lengths = torch.full((refer.size(0),), refer.size(2), dtype=torch.long, device=refer.device)
        mask = sequence_mask(lengths, refer.size(2)).unsqueeze(1).to(refer.dtype)
        return self.ref_enc(refer[:, : self.ref_bins] * mask, mask)

    def mrte_condition(self, ge: Tensor) -> Tensor:
        """The style MRTE adds, ``[B, mrte_hidden, 1]``, from ``ge [B, gin, 1]``: ``ge`` itself here."""
        return ge

    def extract_latent(self, ssl: Tensor) -> Tensor:
        """HuBERT features ``[B, ssl_dim, T50]`` -> semantic codes ``[B, 1, T50 // 2]`` (25 Hz)."""
        return self.quantizer.encode(self.ssl_proj(ssl)).transpose(0, 1)

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """With ``freeze_quantizer``: no gradients, and ``frozen_parts`` in eval mode (upstream: no EMA, loss 0)."""
        parts = [getattr(self, name) for name in self.frozen_parts] if self.freeze_quantizer else []
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_quantizer), eval_mode(*parts):
            yield

    def quantize(self, ssl: Tensor) -> tuple[Tensor, Tensor]:
        """Training path: ``ssl [B, ssl_dim, T]`` -> (quantized ``[B, ssl_dim, T]`` at 50 Hz, commitment loss)."""
        quantized, _, commit_loss = self.quantizer(self.ssl_proj(ssl))
        return F.interpolate(quantized, size=quantized.shape[-1] * 2, mode="nearest"), commit_loss

    def encode_codes(
        self, codes: Tensor, text: Tensor, ge: Tensor, speed: float = 1.0, fixed_grid: bool = False
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Synthesis path: codes ``[n_q, B, T25]`` + phones ``[B, N]`` -> ``enc_p`` outputs (x, m_p, logs_p, mask)
        over ``2 T25`` frames at speed 1, else ``int(2 T25 / speed) + 1`` (``fixed_grid``: see ``TextEncoder``)."""
        b = text.size(0)
        y_lengths = torch.full((b,), codes.size(2) * 2, dtype=torch.long, device=codes.device)
        text_lengths = torch.full((b,), text.size(-1), dtype=torch.long, device=text.device)
        quantized = self.quantizer.decode(codes).to(ge.dtype)  # [B, ssl_dim, T25]
        quantized = F.interpolate(quantized, size=quantized.shape[-1] * 2, mode="nearest")
        return self.enc_p(quantized, y_lengths, text, text_lengths, self.mrte_condition(ge), speed, fixed_grid)
