"""Re-implements GPT-SoVITS ``AR/models/t2s_model.py::Text2SemanticDecoder`` (the GPT stage): same parameter names.

Design: phones + projected BERT features form a bidirectional text stream, semantic tokens (1024 codes + EOS) a
causal audio stream; both get their own sine positions (restarting at 0) with a learnable ``alpha``; a post-LN
transformer with packed QKV runs over ``[text ; audio]``. Sizes are constructor parameters (official defaults,
``Text2Semantic.tiny()`` for tests). ``training_step_outputs`` is the official ``forward_old`` objective;
decoding with a KV cache lives in ``mockvox.models.t2s_decode``. Official checkpoints carry a ``model.`` prefix,
handled at load/save.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mockvox.modules.ar_transformer import ARTransformer, Linear, SinePositionalEmbedding, TokenEmbedding

OFFICIAL_PREFIX = "model."


@dataclass(frozen=True)
class T2SConfig:
    """Sizes of the GPT; defaults are the official v2 ones (``configs/s1longer-v2.yaml``)."""

    phoneme_vocab_size: int = 732
    vocab_size: int = 1025  # 1024 semantic codes + EOS
    hidden_dim: int = 512  # = embedding_dim (the official requires them equal)
    num_heads: int = 16
    num_layers: int = 24
    bert_dim: int = 1024
    ffn_mult: int = 4  # FFN width = ffn_mult * hidden_dim (hard-wired 4 upstream)
    dropout: float = 0.0  # token-embedding dropout (config ``dropout``)
    layer_dropout: float = 0.1  # transformer layers and positional encodings (hard-wired 0.1 upstream)

    @property
    def eos(self) -> int:
        return self.vocab_size - 1

    @classmethod
    def tiny(cls) -> T2SConfig:
        return cls(hidden_dim=64, num_heads=2, num_layers=2)

    @classmethod
    def from_official(cls, config: dict) -> T2SConfig:
        """From an official GPT checkpoint/YAML config (``config["model"]``)."""
        m = config.get("model", config)
        if m.get("embedding_dim", m["hidden_dim"]) != m["hidden_dim"]:
            raise ValueError("embedding_dim must equal hidden_dim")
        if m.get("EOS", m["vocab_size"] - 1) != m["vocab_size"] - 1:
            raise ValueError("EOS must be vocab_size - 1")
        return cls(
            phoneme_vocab_size=m["phoneme_vocab_size"],
            vocab_size=m["vocab_size"],
            hidden_dim=m["hidden_dim"],
            num_heads=m["head"],
            num_layers=m["n_layer"],
            dropout=m.get("dropout", 0.0),
        )

    def to_official(self) -> dict:
        """The ``model`` section of an official config."""
        return {
            "vocab_size": self.vocab_size,
            "phoneme_vocab_size": self.phoneme_vocab_size,
            "embedding_dim": self.hidden_dim,
            "hidden_dim": self.hidden_dim,
            "head": self.num_heads,
            "linear_units": self.ffn_mult * self.hidden_dim,
            "n_layer": self.num_layers,
            "dropout": self.dropout,
            "EOS": self.eos,
        }


@dataclass
class T2SOutputs:
    logits: torch.Tensor  # [B, Ny+1, V]
    targets: torch.Tensor  # [B, Ny+1]
    loss: torch.Tensor  # [] summed cross-entropy
    acc: torch.Tensor  # [] float64 top-k accuracy over non-EOS targets


def pad_mask_left(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """True on the first ``max_len - len`` positions (the official text mask assumes left padding)."""
    pos = torch.arange(max_len, device=lengths.device).unsqueeze(0)
    return pos < (max_len - lengths).unsqueeze(1)


def pad_mask_right(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """True at positions >= len."""
    return torch.arange(max_len, device=lengths.device).unsqueeze(0) >= lengths.unsqueeze(1)


def blocked_positions(nx: int, ny: int, device: torch.device | None = None) -> torch.Tensor:
    """[Nx+Ny, Nx+Ny] bool, True = blocked: text rows see only text; audio rows see text and audio causally."""
    block = torch.zeros(nx + ny, nx + ny, dtype=torch.bool, device=device)
    block[:nx, nx:] = True
    block[nx:, nx:] = torch.ones(ny, ny, dtype=torch.bool, device=device).triu(1)
    return block


def topk_accuracy(logits: torch.Tensor, targets: torch.Tensor, k: int, ignore_index: int) -> torch.Tensor:
    """Micro top-k accuracy over positions whose target is not ``ignore_index`` (0 when there are none)."""
    valid = targets != ignore_index
    top = logits.topk(min(k, logits.shape[-1]), dim=-1).indices  # [B, T, k]
    hit = (top == targets.unsqueeze(-1)).any(-1) & valid
    n = valid.sum()
    return (hit.sum().double() / n.double()) if n > 0 else torch.zeros((), dtype=torch.float64)


def sequence_logprob(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Summed token log-probabilities per item: [B, T, V], [B, T] -> [B]."""
    return logits.log_softmax(-1).gather(2, targets.unsqueeze(2)).squeeze(2).sum(-1)


def dpo_loss(chosen_logp: torch.Tensor, rejected_logp: torch.Tensor, beta: float = 0.2) -> torch.Tensor:
    """Reference-free DPO: mean(-logsigmoid(beta * (logp_chosen - logp_rejected)))."""
    return -F.logsigmoid(beta * (chosen_logp - rejected_logp)).mean()


def make_rejected(
    y: torch.Tensor, y_lens: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rejected samples for DPO: a random span of each item's real tokens is repeated (official ``repeat_P``).

    Unlike upstream, the span is drawn from the real tokens only (upstream includes the padding of the row).
    """
    rows = []
    for row, n in zip(y, y_lens.tolist(), strict=True):
        real = row[:n]
        a, b = torch.randint(0, max(n, 1), (2,), generator=generator).sort().values.tolist()
        rows.append(torch.cat([real[:a], real[a:b], real[a:b], real[b:]]))
    lens = torch.tensor([len(r) for r in rows], device=y_lens.device)
    out = y.new_zeros(len(rows), int(lens.max()))
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out, lens


class Text2Semantic(nn.Module):
    """Phones + BERT features + prompt semantic tokens -> next semantic token logits."""

    def __init__(self, config: T2SConfig | None = None):
        super().__init__()
        self.config = cfg = config or T2SConfig()
        dim = cfg.hidden_dim
        self.eos = cfg.eos
        self.bert_proj = Linear(cfg.bert_dim, dim)
        self.ar_text_embedding = TokenEmbedding(dim, cfg.phoneme_vocab_size, cfg.dropout)
        self.ar_text_position = SinePositionalEmbedding(dim, cfg.layer_dropout)
        self.ar_audio_embedding = TokenEmbedding(dim, cfg.vocab_size, cfg.dropout)
        self.ar_audio_position = SinePositionalEmbedding(dim, cfg.layer_dropout)
        self.h = ARTransformer(dim, cfg.num_heads, cfg.num_layers, cfg.ffn_mult * dim, cfg.layer_dropout)
        self.ar_predict_layer = Linear(dim, cfg.vocab_size, bias=False)

    @classmethod
    def tiny(cls) -> Text2Semantic:
        return cls(T2SConfig.tiny())

    def prepare_inference(self, dtype: torch.dtype | None = None, int8_weights: bool = False) -> Text2Semantic:
        """Eval mode, optional cast and CPU-friendly weight layouts for decoding. Returns self.

        fp32 weights are stored column-major; bf16 weights are oneDNN-packed; with ``int8_weights`` every matrix is
        quantised per output row for int8 weight-only matmuls (``ar_transformer.int8_kernel``), activations staying
        in ``dtype``. Call again after moving/loading weights.
        """
        self.eval()
        self.release_inference()
        if dtype is not None:
            self.to(dtype)
        self.bert_proj.prepare_inference(int8_weights)
        self.h.prepare_inference(int8_weights)
        self.ar_predict_layer.prepare_inference(False)  # 2 % of the bytes; the logits decide every token
        return self

    def release_inference(self) -> None:
        for m in (self.bert_proj, self.ar_predict_layer, self.h):
            m.release_inference()

    def train(self, mode: bool = True) -> Text2Semantic:
        if mode:
            self.release_inference()  # packed copies would go stale once the weights are trained
        return super().train(mode)

    # --- official state dicts -------------------------------------------------------------------------------------
    def load_official_state_dict(self, state_dict: dict[str, torch.Tensor], strict: bool = True):
        """Load official weights (keys with or without the Lightning ``model.`` prefix), cast to our dtype."""
        sd = {k.removeprefix(OFFICIAL_PREFIX): v for k, v in state_dict.items()}
        return self.load_state_dict(sd, strict=strict)

    def official_state_dict(self) -> dict[str, torch.Tensor]:
        """State dict under the official ``.ckpt["weight"]`` names (``model.`` prefix)."""
        return {OFFICIAL_PREFIX + k: v for k, v in self.state_dict().items()}

    @classmethod
    def from_official_checkpoint(cls, path) -> Text2Semantic:
        """Build from an official GPT ``.ckpt`` (pretrained ``s1bert25hz…``/``s1v3`` or a WebUI export), fp32, eval."""
        from mockvox.checkpoints import load_gpt_checkpoint

        ckpt = load_gpt_checkpoint(path)
        model = cls(T2SConfig.from_official(ckpt.config) if ckpt.config.get("model") else T2SConfig())
        model.load_official_state_dict(ckpt.weight)
        return model.eval()

    def save_official_checkpoint(self, path, info: str = "GPT-e0", half: bool = True):
        """Write a GPT-SoVITS-loadable export (fp16 ``model.``-prefixed weights + official config)."""
        from mockvox.checkpoints import save_gpt_checkpoint

        return save_gpt_checkpoint(path, self.official_state_dict(), self.config.to_official(), info, half=half)

    def official_config(self) -> dict:
        return {"model": self.config.to_official()}

    def config_dict(self) -> dict:
        return asdict(self.config)

    # --- embeddings -----------------------------------------------------------------------------------------------
    def embed_text(self, phones: torch.Tensor, bert: torch.Tensor) -> torch.Tensor:
        """[B, N] ids, [B, 1024, N] BERT -> [B, N, C] with text positions."""
        x = self.ar_text_embedding(phones) + self.bert_proj(bert.transpose(1, 2).to(self.bert_proj.weight.dtype))
        return self.ar_text_position(x)

    def embed_audio(self, tokens: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """[B, M] semantic ids -> [B, M, C] with audio positions starting at ``offset``."""
        return self.ar_audio_position(self.ar_audio_embedding(tokens), offset)

    # --- training objective (official forward_old) ----------------------------------------------------------------
    def teacher_forced_logits(
        self, x: torch.Tensor, x_lens: torch.Tensor, y: torch.Tensor, y_lens: torch.Tensor, bert: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits [B, Ny+1, V] and targets [B, Ny+1] (codes then EOS; padded positions are EOS too)."""
        nx, ny = int(x_lens.max()), int(y_lens.max())
        x, y, bert = x[:, :nx], y[:, :ny], bert[..., :nx]
        y_pad = pad_mask_right(y_lens, ny)
        codes = y.long().masked_fill(y_pad, 0)
        targets = F.pad(codes, (0, 1), value=0) + self.eos * F.pad(y_pad.long(), (0, 1), value=1)
        xy = torch.cat([self.embed_text(x, bert), self.embed_audio(targets[:, :-1])], dim=1)
        key_pad = torch.cat([pad_mask_left(x_lens, nx), y_pad], dim=1)  # [B, T]
        blocked = blocked_positions(nx, ny, x.device).unsqueeze(0) | key_pad.unsqueeze(1)  # [B, T, T]
        bias = torch.zeros(blocked.shape, dtype=xy.dtype, device=xy.device).masked_fill_(blocked, float("-inf"))
        h = self.h(xy, mask=bias.unsqueeze(1))
        return self.ar_predict_layer(h[:, nx - 1 :]), targets

    def training_step_outputs(
        self, x: torch.Tensor, x_lens: torch.Tensor, y: torch.Tensor, y_lens: torch.Tensor, bert: torch.Tensor
    ) -> T2SOutputs:
        """Official objective: summed CE over all Ny+1 positions and top-3 accuracy ignoring EOS targets."""
        logits, targets = self.teacher_forced_logits(x, x_lens, y, y_lens, bert)
        loss = F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="sum")
        acc = topk_accuracy(logits.detach(), targets, 3, self.eos)
        return T2SOutputs(logits, targets, loss, acc)

    def dpo_step_outputs(
        self,
        x: torch.Tensor,
        x_lens: torch.Tensor,
        y: torch.Tensor,
        y_lens: torch.Tensor,
        bert: torch.Tensor,
        beta: float = 0.2,
        generator: torch.Generator | None = None,
    ) -> T2SOutputs:
        """Official DPO objective (``forward``): chosen-sequence CE + reference-free DPO against a rejected one."""
        out = self.training_step_outputs(x, x_lens, y, y_lens, bert)
        rej_y, rej_lens = make_rejected(y, y_lens, generator)
        rej_logits, rej_targets = self.teacher_forced_logits(x, x_lens, rej_y, rej_lens, bert)
        chosen = sequence_logprob(out.logits.float(), out.targets)
        rejected = sequence_logprob(rej_logits.float(), rej_targets)
        out.loss = out.loss + dpo_loss(chosen, rejected, beta)
        return out

    def forward(self, x, x_lens, y, y_lens, bert) -> T2SOutputs:
        return self.training_step_outputs(x, x_lens, y, y_lens, bert)
