"""Training step time per stage (GPT, SoVITS v2 GAN, SoVITS v4 LoRA) in tiny and full size, and samples/s.

Random batches shaped like real ones (4 s clips at 32 kHz, 60 phones, 100 semantic tokens) go through the real
LightningModules under a Lightning Trainer; the first steps are warm-up and not counted.

    python benchmarks/bench_train.py [--sizes tiny official] [--stages gpt sovits_v2 sovits_v4] [--steps 3] [--batch 2]
"""

from __future__ import annotations

import argparse
import os
import time

import lightning as L
import torch
from torch.utils.data import DataLoader

from mockvox.train.config import compose_train


class StepTimer(L.Callback):
    def __init__(self, warmup: int):
        self.warmup, self.times, self._t = warmup, [], 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx >= self.warmup:
            self.times.append(time.perf_counter() - self._t)


def gpt_batch(b: int, phones: int = 60, tokens: int = 100) -> dict:
    return dict(phones=torch.randint(0, 732, (b, phones)), phone_lengths=torch.full((b,), phones),
                bert=torch.randn(b, 1024, phones), semantic=torch.randint(0, 1024, (b, tokens)),
                semantic_lengths=torch.full((b,), tokens))  # fmt: skip


def sovits_batch(b: int, ssl_dim: int, v4: bool, seconds: float = 4.0, phones: int = 60) -> dict:
    frames = int(seconds * 50)
    batch = dict(ssl=torch.randn(b, ssl_dim, frames), ssl_lengths=torch.full((b,), frames),
                 spec=torch.rand(b, 1025, frames), spec_lengths=torch.full((b,), frames),
                 wav=torch.randn(b, 1, frames * 640) * 0.1, wav_lengths=torch.full((b,), frames * 640),
                 phones=torch.randint(1, 732, (b, phones)), phone_lengths=torch.full((b,), phones))  # fmt: skip
    if v4:
        batch.update(mel=torch.randn(b, 100, 2 * frames) * 0.5, mel_lengths=torch.full((b,), 2 * frames))
    return batch


def build(stage: str, size: str):
    from mockvox.train import stages
    from mockvox.train.build import build_networks

    version = "v4" if stage == "sovits_v4" else "v2"
    cfg = compose_train([f"model={version}", f"model/size={size}", "pretrained=none", "data.file_id=x"])
    nets = build_networks(cfg, with_bert=False)
    if stage == "gpt":
        module = stages.gpt_module(cfg, nets)
        return module, lambda b: gpt_batch(b)
    module = stages.sovits_module(cfg, nets)
    ssl_dim = nets.hubert.hidden_size
    return module, lambda b: sovits_batch(b, ssl_dim, stage == "sovits_v4")


def bench(stage: str, size: str, steps: int, batch: int, warmup: int = 1) -> tuple[float, float]:
    module, make = build(stage, size)
    data = [make(batch)] * (steps + warmup)
    timer = StepTimer(warmup)
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[timer])  # fmt: skip
    trainer.fit(module, DataLoader(data, batch_size=None))
    step = sum(timer.times) / len(timer.times)
    return step, batch / step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["tiny", "official"])
    ap.add_argument("--stages", nargs="+", default=["gpt", "sovits_v2", "sovits_v4"])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"CPU threads {args.threads}, batch {args.batch}, {args.steps} timed steps, load {os.getloadavg()[0]:.2f}")
    for size in args.sizes:
        for stage in args.stages:
            step, rate = bench(stage, size, args.steps, args.batch)
            print(f"{size:9} {stage:10} step {step:7.3f} s   {rate:7.2f} samples/s", flush=True)


if __name__ == "__main__":
    main()
