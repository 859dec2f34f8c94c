"""Residual vector quantizer: re-implements GPT-SoVITS ``module/quantize.py`` + ``module/core_vq.py`` (SoundStream RVQ).

Same buffers (``vq.layers.{i}._codebook.{inited,cluster_size,embed,embed_avg}``), Euclidean nearest neighbour in the
expanded form ``-(|x|^2 - 2 x.e + |e|^2)``, EMA codebook updates, k-means initialisation and dead-code expiry in
training mode. Differences: no ``torch.distributed`` broadcast; k-means runs on the local batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _sample_vectors(samples: torch.Tensor, num: int) -> torch.Tensor:
    n = samples.size(0)
    idx = torch.randperm(n, device=samples.device)[:num] if n >= num else torch.randint(0, n, (num,))
    return samples[idx.to(samples.device)]


def kmeans(samples: torch.Tensor, num_clusters: int, num_iters: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain k-means on ``samples [N, D]``: (centroids ``[K, D]``, cluster sizes ``[K]``)."""
    means = _sample_vectors(samples, num_clusters)
    bins = torch.zeros(num_clusters, device=samples.device)
    for _ in range(num_iters):
        buckets = torch.cdist(samples, means).argmin(dim=-1)
        bins = torch.bincount(buckets, minlength=num_clusters).to(samples.dtype)
        sums = torch.zeros_like(means).index_add_(0, buckets, samples)
        new_means = sums / bins.clamp(min=1).unsqueeze(1)
        means = torch.where((bins == 0).unsqueeze(1), means, new_means)
    return means, bins


class EuclideanCodebook(nn.Module):
    def __init__(
        self,
        dim: int,
        codebook_size: int,
        kmeans_init: bool = True,
        kmeans_iters: int = 50,
        decay: float = 0.99,
        epsilon: float = 1e-5,
        threshold_ema_dead_code: int = 2,
    ):
        super().__init__()
        self.codebook_size = codebook_size
        self.kmeans_iters = kmeans_iters
        self.decay = decay
        self.epsilon = epsilon
        self.threshold_ema_dead_code = threshold_ema_dead_code
        embed = (
            torch.zeros(codebook_size, dim)
            if kmeans_init
            else nn.init.kaiming_uniform_(torch.empty(codebook_size, dim))
        )
        self.register_buffer("inited", torch.tensor([float(not kmeans_init)]))
        self.register_buffer("cluster_size", torch.zeros(codebook_size))
        self.register_buffer("embed", embed)
        self.register_buffer("embed_avg", embed.clone())

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        # x [N, D] -> nearest code [N]
        embed = self.embed.t()
        dist = -(x.pow(2).sum(1, keepdim=True) - 2 * x @ embed + embed.pow(2).sum(0, keepdim=True))
        return dist.max(dim=-1).indices

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        # x [..., D] -> codes [...]
        return self.quantize(x.reshape(-1, x.size(-1))).view(x.shape[:-1])

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return F.embedding(codes, self.embed)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = x.reshape(-1, x.size(-1))
        if self.training and not bool(self.inited.item()):
            self._init_embed(flat)
        codes = self.quantize(flat)
        quantized = F.embedding(codes, self.embed)
        if self.training:
            self._update(flat, codes)
        return quantized.view(x.shape), codes.view(x.shape[:-1])

    @torch.no_grad()
    def _init_embed(self, flat: torch.Tensor) -> None:
        embed, cluster_size = kmeans(flat.float(), self.codebook_size, self.kmeans_iters)
        self.embed.copy_(embed)
        self.embed_avg.copy_(embed)
        self.cluster_size.copy_(cluster_size)
        self.inited.fill_(1.0)

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        if self.threshold_ema_dead_code > 0:
            expired = self.cluster_size < self.threshold_ema_dead_code
            if expired.any():
                fresh = _sample_vectors(flat, self.codebook_size)
                self.embed.copy_(torch.where(expired.unsqueeze(1), fresh, self.embed))
        onehot = F.one_hot(codes, self.codebook_size).to(flat.dtype)  # [N, K]
        self.cluster_size.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.embed_avg.mul_(self.decay).add_((flat.t() @ onehot).t(), alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.epsilon) / (n + self.codebook_size * self.epsilon) * n
        self.embed.copy_(self.embed_avg / smoothed.unsqueeze(1))


class VectorQuantization(nn.Module):
    """One quantizer stage on channel-first input ``[B, D, T]`` with a commitment loss in training."""

    def __init__(self, dim: int, codebook_size: int, commitment_weight: float = 1.0, **codebook_kwargs):
        super().__init__()
        self.commitment_weight = commitment_weight
        self._codebook = EuclideanCodebook(dim, codebook_size, **codebook_kwargs)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self._codebook.encode(x.transpose(1, 2))  # [B, T]

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self._codebook.decode(codes).transpose(1, 2)  # [B, D, T]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = x.transpose(1, 2)  # [B, T, D]
        quantized, codes = self._codebook(x)
        loss = torch.zeros(1, device=x.device)
        if self.training:
            quantized = x + (quantized - x).detach()
            if self.commitment_weight > 0:
                loss = loss + F.mse_loss(quantized.detach(), x) * self.commitment_weight
        return quantized.transpose(1, 2), codes, loss


class ResidualVectorQuantization(nn.Module):
    def __init__(self, num_quantizers: int, **kwargs):
        super().__init__()
        self.layers = nn.ModuleList([VectorQuantization(**kwargs) for _ in range(num_quantizers)])


class ResidualVectorQuantizer(nn.Module):
    """``n_q`` residual stages of ``bins`` codes over ``dimension``-d frames (official: 768-d, 1 stage, 1024 bins)."""

    def __init__(
        self,
        dimension: int = 256,
        n_q: int = 8,
        bins: int = 1024,
        decay: float = 0.99,
        kmeans_init: bool = True,
        kmeans_iters: int = 50,
        threshold_ema_dead_code: int = 2,
    ):
        super().__init__()
        self.n_q = n_q
        self.vq = ResidualVectorQuantization(
            n_q,
            dim=dimension,
            codebook_size=bins,
            decay=decay,
            kmeans_init=kmeans_init,
            kmeans_iters=kmeans_iters,
            threshold_ema_dead_code=threshold_ema_dead_code,
        )

    def forward(self, x: torch.Tensor, n_q: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x [B, D, T]`` -> (quantized ``[B, D, T]``, codes ``[n_q, B, T]``, mean commitment loss ``[1]``)."""
        quantized_out, residual = torch.zeros_like(x), x
        codes, losses = [], []
        for layer in self.vq.layers[: n_q or self.n_q]:
            quantized, idx, loss = layer(residual)
            residual = residual - quantized
            quantized_out = quantized_out + quantized
            codes.append(idx)
            losses.append(loss)
        return quantized_out, torch.stack(codes), torch.stack(losses).mean(0)

    def encode(self, x: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """``x [B, D, T]`` -> codes ``[n_q, B, T]``."""
        residual, codes = x, []
        for layer in self.vq.layers[: n_q or self.n_q]:
            idx = layer.encode(residual)
            residual = residual - layer.decode(idx)
            codes.append(idx)
        return torch.stack(codes)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes ``[n_q, B, T]`` -> ``[B, D, T]`` (sum of the stages' codebook rows)."""
        out = self.vq.layers[0].decode(codes[0])
        for layer, idx in zip(self.vq.layers[1:], codes[1:], strict=False):
            out = out + layer.decode(idx)
        return out
