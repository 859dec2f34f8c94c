"""GPT (text-to-semantic) training: GPT-SoVITS ``AR/models/t2s_lightning_module.py`` as a LightningModule.

Manual optimisation with gradient accumulation like upstream, fixed: the optimiser steps after every ``accumulate``
batches and on the last batch of each epoch (upstream steps when ``batch_idx > 0 and batch_idx % 4 == 0``, so a
dataset of at most four batches never trains). The scheduler steps with the optimiser. ScaledAdam clips gradients
itself, so the Trainer's gradient clipping stays off.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from mockvox.models.t2s import T2SOutputs, Text2Semantic
from mockvox.models.t2s_decode import SamplingConfig, generate
from mockvox.modules.ar_transformer import PackedSelfAttention

SAMPLE_SLACK_TOKENS = 25  # decoding may run this many tokens past the true length (1 s at 25 Hz)


class GPTModule(L.LightningModule):
    """Trains :class:`Text2Semantic` on batches of ``phones, phone_lengths, bert, semantic, semantic_lengths``."""

    def __init__(
        self,
        model: Text2Semantic,
        optimizer: Callable[[Iterable[nn.Parameter]], Optimizer],
        scheduler: Callable[[Optimizer], LRScheduler] | None = None,
        dpo: bool = False,
        dpo_beta: float = 0.2,
        accumulate: int = 4,
    ):
        super().__init__()
        if accumulate < 1:
            raise ValueError(f"accumulate must be >= 1, got {accumulate}")
        self.save_hyperparameters(ignore=["model", "optimizer", "scheduler"])
        self.model = model
        self._make_optimizer = optimizer
        self._make_scheduler = scheduler
        self.dpo = dpo
        self.dpo_beta = dpo_beta
        self.accumulate = accumulate
        self.automatic_optimization = False

    def configure_optimizers(self):
        opt = self._make_optimizer(self.model.parameters())
        if self._make_scheduler is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": self._make_scheduler(opt), "interval": "step"}}

    def on_fit_start(self) -> None:
        self.train()  # Lightning keeps the modes it was given; a loaded model may arrive in eval mode

    def _outputs(self, batch: dict) -> tuple[T2SOutputs, torch.Tensor | None]:
        """Model outputs and, with DPO, the DPO term alone (``out.loss`` then holds CE + DPO)."""
        args = (batch["phones"], batch["phone_lengths"], batch["semantic"], batch["semantic_lengths"], batch["bert"])
        if not self.dpo:
            return self.model.training_step_outputs(*args), None
        out = self.model.dpo_step_outputs(*args, beta=self.dpo_beta)
        ce = F.cross_entropy(out.logits.detach().float().transpose(1, 2), out.targets, reduction="sum")
        return out, out.loss.detach() - ce

    def _is_last_batch(self, batch_idx: int) -> bool:
        n = self.trainer.num_training_batches
        return bool(self.trainer.is_last_batch) or (not math.isinf(n) and batch_idx + 1 >= n)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        opt = self.optimizers()
        out, loss_dpo = self._outputs(batch)
        self.manual_backward(out.loss / self.accumulate)
        if (batch_idx + 1) % self.accumulate == 0 or self._is_last_batch(batch_idx):
            opt.step()
            opt.zero_grad()
            scheduler = self.lr_schedulers()
            if scheduler is not None:
                scheduler.step()
        b = batch["phones"].shape[0]
        ce = out.loss.detach() if loss_dpo is None else out.loss.detach() - loss_dpo
        self.log("train/loss", ce, on_step=True, on_epoch=True, prog_bar=True, batch_size=b)
        self.log("train/acc", out.acc.float(), on_step=True, on_epoch=True, prog_bar=True, batch_size=b)
        self.log("train/lr", float(opt.param_groups[0]["lr"]), on_step=True, on_epoch=False, batch_size=b)
        if loss_dpo is not None:
            self.log("train/loss_dpo", loss_dpo, on_step=True, on_epoch=True, batch_size=b)
        return out.loss.detach()

    @torch.no_grad()
    def sample(self, batch: dict) -> dict:
        """Decode the first item from the first third of its semantic tokens (top-1 sampling, no repetition
        penalty) and compare with the truth; also the teacher-forced attention map of the last layer.

        Returns numpy values: ``tokens`` (generated), ``truth`` (the true continuation), ``correct`` (per truth
        position), ``accuracy``, ``prompt_len``, ``text_len`` and ``attention`` ``[N + M, N + M]`` (head mean).
        """
        was_training = self.model.training
        self.model.eval()
        try:
            return self._sample_first_item(batch)
        finally:
            self.model.train(was_training)

    def _sample_first_item(self, batch: dict) -> dict:
        n, width = int(batch["phone_lengths"][0]), batch["phones"].shape[1]
        phones, bert = batch["phones"][0, width - n :], batch["bert"][0, :, width - n :]  # left-padded text
        m = int(batch["semantic_lengths"][0])
        semantic = batch["semantic"][0, :m].long()
        p = max(1, m // 3)
        cfg = SamplingConfig(top_k=1, repetition_penalty=1.0, max_steps=m - p + SAMPLE_SLACK_TOKENS)
        tokens = generate(self.model, [phones], [bert], semantic[None, :p], cfg)[0].tokens.cpu()
        truth = semantic[p:].cpu()
        k = min(len(tokens), len(truth))
        correct = torch.zeros(len(truth), dtype=torch.bool)
        correct[:k] = tokens[:k] == truth[:k]
        attention = self._last_layer_attention(phones, bert, semantic)
        return {
            "tokens": tokens.numpy(),
            "truth": truth.numpy(),
            "correct": correct.numpy(),
            "accuracy": np.float64(correct.float().mean()) if len(truth) else np.float64(0.0),
            "prompt_len": p,
            "text_len": n,
            "attention": attention.float().cpu().numpy(),
        }

    def _last_layer_attention(self, phones: torch.Tensor, bert: torch.Tensor, semantic: torch.Tensor) -> torch.Tensor:
        """Teacher-forced attention probabilities of the last layer, averaged over heads: ``[N + M, N + M]``."""
        attn = self.model.h.layers[-1].self_attn
        captured: dict = {}
        handle = attn.register_forward_pre_hook(lambda module, args: captured.update(x=args[0], mask=args[1]))
        try:
            lengths = (torch.tensor([len(phones)]), torch.tensor([len(semantic)]))
            self.model.teacher_forced_logits(phones[None], lengths[0], semantic[None], lengths[1], bert[None])
        finally:
            handle.remove()
        return attention_probs(attn, captured["x"], captured["mask"])[0].mean(0)


def attention_probs(attn: PackedSelfAttention, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Softmax attention weights ``[B, H, T, T]`` of a packed self-attention on ``x [B, T, C]`` (additive or
    boolean SDPA-style ``mask``)."""
    q, k, _ = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    q, k = attn._heads(q), attn._heads(k)  # [B, H, T, D]
    scores = q @ k.transpose(-1, -2) / math.sqrt(attn.head_dim)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    return scores.float().softmax(-1)
