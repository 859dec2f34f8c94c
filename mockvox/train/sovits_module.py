"""SoVITS training: GPT-SoVITS ``s2_train.py`` (v2 GAN fine-tune) and ``s2_train_v3_lora.py`` (v4 LoRA) as modules.

v2: manual optimisation of generator and multi-period discriminator, one discriminator step then one generator step
per batch, both learning rates decayed once per epoch; no gradient clipping (upstream only measures the norm).
v4: automatic optimisation of the LoRA adapters plus the fully trained modules on the CFM loss, the shortcut target
drawn with probability 0.3 per batch. Both expose ``sample(batch)`` (numpy, no I/O) for the sample callback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import lightning as L
import numpy as np
import torch
from torch.optim import AdamW, Optimizer
from torch.optim.lr_scheduler import ExponentialLR, LRScheduler

from mockvox.audio.mel_v4 import denorm_spec
from mockvox.audio.spectral import mel_spectrogram_torch, spec_to_mel_torch
from mockvox.audio.spectrogram import OFFICIAL, Spectrogram
from mockvox.losses import discriminator_loss, feature_loss, generator_loss, kl_loss, mel_l1_loss
from mockvox.models.discriminators import MultiPeriodDiscriminator
from mockvox.models.lora import FULLY_TRAINED, has_lora
from mockvox.models.sovits_v2 import SynthesizerTrn
from mockvox.models.sovits_v4 import SynthesizerTrnV3
from mockvox.modules.commons import slice_segments
from mockvox.train.optim import text_low_lr_optimizer


def mel_settings(spectrogram: Spectrogram = OFFICIAL, num_mels: int = 128) -> dict:
    """The mel of the v2 reconstruction loss over ``spectrogram`` (s2.json: 128 bins, fmin 0, fmax Nyquist)."""
    s = spectrogram
    return dict(n_fft=s.filter_length, num_mels=num_mels, sampling_rate=s.sampling_rate, hop_size=s.hop_length,
                win_size=s.win_length, fmin=0.0, fmax=None)  # fmt: skip


OFFICIAL_MEL: dict = mel_settings()  # official s2.json (32 kHz audio, 50 frames/s)


OptimizerFactory = Callable[[Iterable], Optimizer]  # a class or partial taking the parameters (groups)
SchedulerFactory = Callable[[Optimizer], LRScheduler]
# Official s2.json / s2_train_v3_lora.py: AdamW, lr decayed once per epoch (conf/model/v2.yaml, v4.yaml).
OFFICIAL_OPTIMIZER: OptimizerFactory = functools.partial(AdamW, lr=1e-4, betas=(0.8, 0.99), eps=1e-9)
OFFICIAL_SCHEDULER: SchedulerFactory = functools.partial(ExponentialLR, gamma=0.999875)


def _numpy(tensors: dict) -> dict:
    return {k: v.detach().float().cpu().numpy() if torch.is_tensor(v) else v for k, v in tensors.items()}


class SovitsV2Module(L.LightningModule):
    """GAN fine-tuning of :class:`SynthesizerTrn` against :class:`MultiPeriodDiscriminator`."""

    def __init__(
        self,
        generator: SynthesizerTrn,
        discriminator: MultiPeriodDiscriminator,
        optimizer: OptimizerFactory = OFFICIAL_OPTIMIZER,
        scheduler: SchedulerFactory | None = OFFICIAL_SCHEDULER,
        text_low_lr_rate: float = 0.4,
        c_mel: float = 45.0,
        c_kl: float = 1.0,
        mel: dict | None = None,
    ):
        super().__init__()
        unknown = set(mel or {}) - set(OFFICIAL_MEL)
        if unknown:
            raise ValueError(f"unknown mel settings {sorted(unknown)}; accepted: {sorted(OFFICIAL_MEL)}")
        self.mel = {**OFFICIAL_MEL, **(mel or {})}
        if generator.hop_length != self.mel["hop_size"]:
            raise ValueError(
                f"the generator upsamples by {generator.hop_length} samples per frame but the mel hop_size is "
                f"{self.mel['hop_size']}: they must be equal"
            )
        self.save_hyperparameters(ignore=["generator", "discriminator", "optimizer", "scheduler"])
        self.generator = generator
        self.discriminator = discriminator
        self._make_optimizer = optimizer
        self._make_scheduler = scheduler
        self.automatic_optimization = False

    def configure_optimizers(self):
        """One optimiser each for generator (text modules at ``text_low_lr_rate`` x lr) and discriminator."""
        opt_g = text_low_lr_optimizer(self._make_optimizer, self.generator, self.hparams.text_low_lr_rate)
        opt_d = self._make_optimizer(self.discriminator.parameters())
        if self._make_scheduler is None:
            return [opt_g, opt_d]
        return [opt_g, opt_d], [self._make_scheduler(opt_g), self._make_scheduler(opt_d)]

    def on_fit_start(self) -> None:
        self.train()  # Lightning keeps the modes it is given: a loaded network may arrive in eval mode

    def _mel_of_wave(self, wav: torch.Tensor) -> torch.Tensor:
        """``[B, S]`` -> log-mel ``[B, num_mels, F]``."""
        return mel_spectrogram_torch(wav.float(), **self.mel)

    def _mel_of_spec(self, spec: torch.Tensor) -> torch.Tensor:
        m = self.mel
        return spec_to_mel_torch(spec.float(), m["n_fft"], m["num_mels"], m["sampling_rate"], m["fmin"], m["fmax"])

    def training_step(self, batch: dict, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        out = self.generator(
            batch["ssl"], batch["spec"], batch["spec_lengths"], batch["phones"], batch["phone_lengths"]
        )
        hop, seg = self.mel["hop_size"], self.generator.segment_size
        y = slice_segments(batch["wav"], out.ids_slice * hop, seg * hop)  # [B, 1, seg * hop]
        y_mel = slice_segments(self._mel_of_spec(batch["spec"]), out.ids_slice, seg)  # [B, num_mels, seg]
        y_hat_mel = self._mel_of_wave(out.y_hat.squeeze(1))

        real, fake, _, _ = self.discriminator(y, out.y_hat.detach())
        loss_d, _, _ = discriminator_loss(real, fake)
        opt_d.zero_grad()
        self.manual_backward(loss_d)
        opt_d.step()

        with self.toggled_optimizer(opt_g):  # no discriminator weight gradients in the generator step
            _, fake, fmap_r, fmap_g = self.discriminator(y, out.y_hat)
            losses = {
                "loss_gen": generator_loss(fake)[0],
                "loss_fm": feature_loss(fmap_r, fmap_g),
                "loss_mel": self.hparams.c_mel * mel_l1_loss(y_mel, y_hat_mel),
                "loss_commit": out.commit_loss.sum(),  # weight 1; zero with the frozen quantizer
                "loss_kl": self.hparams.c_kl * kl_loss(out.z_p, out.logs_q, out.m_p, out.logs_p, out.z_mask),
            }
            loss_g = sum(losses.values())
            opt_g.zero_grad()
            self.manual_backward(loss_g)
            opt_g.step()

        b = batch["ssl"].shape[0]
        metrics = {"train/loss_d": loss_d, "train/loss_g": loss_g, **{f"train/{k}": v for k, v in losses.items()}}
        for on_bar in (True, False):  # the generator's total and mel losses on the progress bar
            shown = {k: v.detach() for k, v in metrics.items() if (k in ("train/loss_g", "train/loss_mel")) == on_bar}
            self.log_dict(shown, on_step=True, on_epoch=True, prog_bar=on_bar, batch_size=b)
        self.log("train/lr_g", float(opt_g.param_groups[0]["lr"]), on_step=True, on_epoch=False, batch_size=b)

    def on_train_epoch_end(self) -> None:
        schedulers = self.lr_schedulers() or []
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            scheduler.step()

    @torch.no_grad()
    def sample(self, batch: dict) -> dict:
        """First item resynthesised from its own semantic codes with its own spectrogram as reference.

        Returns numpy ``wav_real``/``wav_gen`` ``[S]`` and their log-mels ``mel_real``/``mel_gen`` ``[num_mels, F]``.
        """
        g = self.generator
        was_training = g.training
        g.eval()
        try:
            t, n = int(batch["spec_lengths"][0]), int(batch["phone_lengths"][0])
            codes = g.extract_latent(batch["ssl"][:1, :, :t]).transpose(0, 1)  # [1, 1, T25]
            wav_gen = g.decode(codes, batch["phones"][:1, :n], batch["spec"][:1, :, :t])[0, 0]
            wav_real = batch["wav"][0, 0, : int(batch["wav_lengths"][0])].float()
            mel_real, mel_gen = self._mel_of_wave(wav_real[None])[0], self._mel_of_wave(wav_gen[None])[0]
        finally:
            g.train(was_training)
        return _numpy({"wav_real": wav_real, "wav_gen": wav_gen, "mel_real": mel_real, "mel_gen": mel_gen})


def check_lora_trainable_set(model: SynthesizerTrnV3) -> None:
    """Raise unless ``model.cfm`` carries LoRA and only LoRA weights and the fully trained modules are trainable."""
    if not has_lora(model):
        raise ValueError("model.cfm has no LoRA adapters: call mockvox.models.lora.add_lora(model, rank) first")
    prefixes = tuple(f"{m}." for m in FULLY_TRAINED)
    wrong = [
        n for n, p in model.named_parameters() if p.requires_grad and "lora_" not in n and not n.startswith(prefixes)
    ]
    if wrong:
        raise ValueError(
            f"{len(wrong)} parameters outside the LoRA adapters and {FULLY_TRAINED} are trainable, e.g. {wrong[:3]}; "
            "ssl_proj, quantizer, enc_p and the base DiT weights must be frozen"
        )


class SovitsV4Module(L.LightningModule):
    """LoRA fine-tuning of :class:`SynthesizerTrnV3` on the conditional flow-matching loss."""

    def __init__(
        self,
        model: SynthesizerTrnV3,
        optimizer: OptimizerFactory = OFFICIAL_OPTIMIZER,
        scheduler: SchedulerFactory | None = OFFICIAL_SCHEDULER,
        shortcut_prob: float = 0.3,
        sample_steps: int = 8,
    ):
        super().__init__()
        check_lora_trainable_set(model)
        self.save_hyperparameters(ignore=["model", "optimizer", "scheduler"])
        self.model = model
        self._make_optimizer = optimizer
        self._make_scheduler = scheduler

    def configure_optimizers(self):
        """The LoRA adapters and the fully trained modules (the trainable parameters); scheduler once per epoch."""
        opt = self._make_optimizer([p for p in self.model.parameters() if p.requires_grad])
        if self._make_scheduler is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": self._make_scheduler(opt), "interval": "epoch"}}

    def on_fit_start(self) -> None:
        self.train()  # Lightning keeps the modes it is given; frozen parts run in eval mode inside forward

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        shortcut = bool(torch.rand(()) < self.hparams.shortcut_prob)
        loss = self.model(
            batch["ssl"], batch["spec"], batch["mel"], batch["spec_lengths"], batch["phones"],
            batch["phone_lengths"], batch["mel_lengths"], shortcut=shortcut,
        )  # fmt: skip
        b = batch["ssl"].shape[0]
        self.log("train/loss_cfm", loss.detach(), on_step=True, on_epoch=True, prog_bar=True, batch_size=b)
        lr = self.trainer.optimizers[0].param_groups[0]["lr"]
        self.log("train/lr", float(lr), on_step=True, on_epoch=False, batch_size=b)
        return loss

    @torch.no_grad()
    def sample(self, batch: dict) -> dict:
        """First item's mel regenerated by the CFM (``sample_steps`` Euler steps) from its features, with the first
        third of its real mel as prompt. Returns numpy log-mels ``mel_real``/``mel_gen`` ``[100, T]`` (the prompt
        frames of ``mel_gen`` are the real ones) and ``prompt_frames``."""
        m = self.model
        was_training = m.training
        m.eval()
        try:
            t, n = int(batch["spec_lengths"][0]), int(batch["phone_lengths"][0])
            codes = m.quantizer.encode(m.ssl_proj(batch["ssl"][:1, :, :t]))  # [1, 1, T25]
            fea, _ = m.decode_encp(codes, batch["phones"][:1, :n], batch["spec"][:1, :, :t])  # [1, cond, 4 T25]
            k = min(fea.shape[2], int(batch["mel_lengths"][0]))
            mel_real = batch["mel"][:1, :, :k].float()  # normalised [1, 100, k]
            p = max(1, k // 3)
            lens = torch.tensor([k], device=fea.device)
            gen = m.cfm.inference(fea[:, :, :k].transpose(1, 2), lens, mel_real[:, :, :p], self.hparams.sample_steps)
            mel_gen = torch.cat([mel_real[:, :, :p], gen[:, :, p:].float()], dim=2)
        finally:
            m.train(was_training)
        out = _numpy({"mel_real": denorm_spec(mel_real[0]), "mel_gen": denorm_spec(mel_gen[0])})
        return {**out, "prompt_frames": np.int64(p)}
