"""Lightning modules of the GPT, SoVITS v2 (GAN) and SoVITS v4 (LoRA) stages on tiny models, CPU."""

from __future__ import annotations

import copy
import dataclasses
import functools
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mockvox.audio.io import load_audio
from mockvox.audio.mel_v4 import mel_v4, norm_spec
from mockvox.audio.spectral import hann_window, mel_filterbank, mel_spectrogram_torch, spectrogram_torch
from mockvox.models.discriminators import MultiPeriodDiscriminator
from mockvox.models.lora import add_lora
from mockvox.models.sovits_v2 import SynthesizerTrn
from mockvox.models.sovits_v4 import SynthesizerTrnV3
from mockvox.models.t2s import T2SConfig, Text2Semantic
from mockvox.train.gpt_module import GPTModule
from mockvox.train.optim import ScaledAdam, constant
from mockvox.train.sovits_module import SovitsV2Module, SovitsV4Module

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
HOP = 640


def _loader(batches: list[dict]) -> DataLoader:
    return DataLoader(batches, batch_size=None, shuffle=False)


def _trainer(**kw) -> L.Trainer:
    opts = dict(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                enable_model_summary=False)  # fmt: skip
    return L.Trainer(**{**opts, **kw})


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


# ------------------------------------------------------------------------------------------------------ GPT


def gpt_batch(seed: int = 0, phone_lens=(9, 6), sem_lens=(14, 10)) -> dict:
    gen = torch.Generator().manual_seed(seed)
    b, n, m = len(phone_lens), max(phone_lens), max(sem_lens)
    phones = torch.zeros(b, n, dtype=torch.long)
    bert = torch.zeros(b, 1024, n)
    semantic = torch.full((b, m), 1024, dtype=torch.long)
    for i, (pl, sl) in enumerate(zip(phone_lens, sem_lens, strict=True)):
        phones[i, n - pl :] = torch.randint(0, 732, (pl,), generator=gen)  # left-padded
        bert[i, :, n - pl :] = torch.randn(1024, pl, generator=gen)
        semantic[i, :sl] = torch.randint(0, 1024, (sl,), generator=gen)  # right-padded with EOS
    return dict(phones=phones, phone_lengths=torch.tensor(phone_lens), bert=bert, semantic=semantic,
                semantic_lengths=torch.tensor(sem_lens))  # fmt: skip


def gpt_module(lr: float = 0.01, **kw) -> GPTModule:
    torch.manual_seed(0)
    return GPTModule(Text2Semantic.tiny(), functools.partial(ScaledAdam, lr=lr), constant, **kw)


@pytest.mark.parametrize("dpo", [False, True])
def test_gpt_fast_dev_run_steps_on_the_only_batch(dpo: bool) -> None:
    module = gpt_module(dpo=dpo)
    module.model.eval()  # e.g. fresh from an official checkpoint
    before = _snapshot(module.model)
    trainer = _trainer(fast_dev_run=True)
    trainer.fit(module, _loader([gpt_batch()]))
    assert module.model.training
    assert trainer.global_step == 1  # upstream would never step on a one-batch epoch
    assert any(not torch.equal(before[k], v) for k, v in module.model.named_parameters())
    metrics = trainer.callback_metrics
    assert {"train/loss", "train/acc", "train/lr"} <= set(metrics)
    assert ("train/loss_dpo" in metrics) == dpo
    assert float(metrics["train/loss"]) > 0
    if dpo:
        assert float(metrics["train/loss_dpo"]) > 0


def test_gpt_steps_every_accumulate_batches_and_at_epoch_end() -> None:
    module = gpt_module(accumulate=4)
    trainer = _trainer(max_epochs=2)
    trainer.fit(module, _loader([gpt_batch(i) for i in range(6)]))
    assert trainer.global_step == 4  # batches 4 and 6 of each epoch
    assert module.lr_schedulers().last_epoch == 4


@pytest.mark.parametrize("dpo", [False, True])
def test_gpt_logs_the_summed_cross_entropy(dpo: bool) -> None:
    """Without dropout and at lr 0 the logged loss is exactly the model's summed CE (DPO logged apart)."""
    torch.manual_seed(0)
    model = Text2Semantic(dataclasses.replace(T2SConfig.tiny(), layer_dropout=0.0))
    reference = copy.deepcopy(model).eval()
    module = GPTModule(model, functools.partial(ScaledAdam, lr=0.0), dpo=dpo)
    batch = gpt_batch()
    trainer = _trainer(fast_dev_run=True)
    trainer.fit(module, _loader([batch]))
    out = reference.training_step_outputs(batch["phones"], batch["phone_lengths"], batch["semantic"],
                                          batch["semantic_lengths"], batch["bert"])  # fmt: skip
    assert float(trainer.callback_metrics["train/loss_epoch"]) == pytest.approx(float(out.loss.detach()), rel=1e-5)
    assert float(trainer.callback_metrics["train/acc_epoch"]) == pytest.approx(float(out.acc.detach()), rel=1e-5)


def _gpt_eval_loss(model: Text2Semantic, batch: dict) -> float:
    model.eval()
    with torch.no_grad():
        out = model.training_step_outputs(batch["phones"], batch["phone_lengths"], batch["semantic"],
                                          batch["semantic_lengths"], batch["bert"])  # fmt: skip
    model.train()
    return float(out.loss)


def test_gpt_training_reduces_the_loss_on_a_fixed_batch() -> None:
    module = gpt_module(lr=0.02, accumulate=1)
    batch = gpt_batch()
    start = _gpt_eval_loss(module.model, batch)
    _trainer(max_epochs=1).fit(module, _loader([batch] * 25))
    assert _gpt_eval_loss(module.model, batch) < 0.7 * start


def test_gpt_sample_decodes_the_continuation_and_attention() -> None:
    module = gpt_module()
    batch = gpt_batch(phone_lens=(6, 9), sem_lens=(15, 12))
    module.model.train()
    out = module.sample(batch)
    assert module.model.training  # mode restored
    assert out["prompt_len"] == 5 and out["text_len"] == 6
    assert out["truth"].tolist() == batch["semantic"][0, 5:15].tolist()
    assert len(out["correct"]) == 10 and len(out["tokens"]) <= 10 + 25
    k = min(len(out["tokens"]), 10)
    assert out["correct"][:k].tolist() == (out["tokens"][:k] == out["truth"][:k]).tolist()
    assert out["accuracy"] == pytest.approx(out["correct"].mean())
    att = out["attention"]
    assert att.shape == (6 + 15, 6 + 15)
    np.testing.assert_allclose(att.sum(-1), 1.0, rtol=1e-5)
    assert np.abs(att[:6, 6:]).max() == 0  # text rows never see audio
    assert np.abs(np.triu(att[6:, 6:], 1)).max() == 0  # audio rows are causal
    # top-1 decoding is deterministic
    again = module.sample(batch)
    assert again["tokens"].tolist() == out["tokens"].tolist()


# ------------------------------------------------------------------------------------------------------ SoVITS v2


@functools.lru_cache(maxsize=1)
def _voice() -> torch.Tensor:
    audio, _ = load_audio(SAMPLES / "voice_en.ogg", 32000)
    return torch.from_numpy(audio)


def sovits_batch(seed: int = 0, frames=(40, 34), phone_lens=(7, 5), spec_bins: int = 1025, ssl_dim: int = 32,
                 v4: bool = False) -> dict:  # fmt: skip
    """Real speech slices (wav + linear spectrogram), random SSL features and phones."""
    gen = torch.Generator().manual_seed(seed)
    b, t, n = len(frames), max(frames), max(phone_lens)
    wav = torch.zeros(b, 1, t * HOP)
    spec = torch.zeros(b, spec_bins, t)
    voice = _voice()
    for i, f in enumerate(frames):
        start = int(torch.randint(0, len(voice) - f * HOP, (1,), generator=gen))
        piece = voice[start : start + f * HOP]
        wav[i, 0, : f * HOP] = piece
        spec[i, :, :f] = spectrogram_torch(piece[None], 2048, 32000, HOP, 2048)[0, :spec_bins, :f]
    phones = torch.zeros(b, n, dtype=torch.long)
    for i, pl in enumerate(phone_lens):
        phones[i, :pl] = torch.randint(1, 732, (pl,), generator=gen)
    batch = dict(ssl=torch.randn(b, ssl_dim, t, generator=gen), ssl_lengths=torch.tensor(frames), spec=spec,
                 spec_lengths=torch.tensor(frames), wav=wav, wav_lengths=torch.tensor(frames) * HOP, phones=phones,
                 phone_lengths=torch.tensor(phone_lens))  # fmt: skip
    if v4:  # normalised v4 mel of the same speech, 100 frames/s
        batch["mel"] = torch.full((b, 100, 2 * t), -1.0)
        for i, f in enumerate(frames):
            batch["mel"][i, :, : 2 * f] = norm_spec(mel_v4(wav[i, :, : f * HOP]))[0, :, : 2 * f]
        batch["mel_lengths"] = torch.tensor(frames) * 2
    return batch


def v2_module(seed: int = 0, **kw) -> SovitsV2Module:
    torch.manual_seed(seed)
    generator = SynthesizerTrn.tiny(
        spec_channels=1025, ssl_dim=32, upsample_rates=(10, 8, 8), upsample_kernel_sizes=(20, 16, 16),
        resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3, 5),),
    )  # fmt: skip
    return SovitsV2Module(generator, MultiPeriodDiscriminator(periods=(2, 3)), **kw)


def test_v2_generator_matches_the_official_hop() -> None:
    module = v2_module()
    assert module.generator.hop_length == HOP
    with pytest.raises(ValueError, match="hop_size"):
        SovitsV2Module(SynthesizerTrn.tiny(), MultiPeriodDiscriminator(periods=(2,)))
    with pytest.raises(ValueError, match="unknown mel"):
        v2_module(mel={"hop": 640})


def test_v2_fast_dev_run_steps_both_networks_and_decays_per_epoch() -> None:
    module = v2_module()
    g_before, d_before = _snapshot(module.generator), _snapshot(module.discriminator)
    trainer = _trainer(fast_dev_run=True)
    trainer.fit(module, _loader([sovits_batch()]))
    g_after = dict(module.generator.named_parameters())
    assert any(not torch.equal(v, g_after[k]) for k, v in g_before.items())
    assert all(not torch.equal(v, dict(module.discriminator.named_parameters())[k]) for k, v in d_before.items()
               if k.endswith("weight_v"))  # fmt: skip
    # frozen like upstream: no gradient reaches ssl_proj, codebook buffers untouched
    assert torch.equal(g_before["ssl_proj.weight"], g_after["ssl_proj.weight"])
    keys = {"loss_d", "loss_g", "loss_gen", "loss_fm", "loss_mel", "loss_kl", "loss_commit", "lr_g"}
    assert {f"train/{k}" for k in keys} <= set(trainer.callback_metrics)
    m = trainer.callback_metrics
    parts = sum(float(m[f"train/{k}"]) for k in ("loss_gen", "loss_fm", "loss_mel", "loss_kl", "loss_commit"))
    assert float(m["train/loss_g"]) == pytest.approx(parts, rel=1e-5)
    opt_g, opt_d = trainer.optimizers
    assert [g["lr"] for g in opt_g.param_groups] == pytest.approx([1e-4 * 0.999875, 0.4e-4 * 0.999875])
    assert opt_d.param_groups[0]["lr"] == pytest.approx(1e-4 * 0.999875)


def test_v2_sample_resynthesises_the_first_item() -> None:
    module = v2_module()
    batch = sovits_batch(frames=(34, 40))
    out = module.sample(batch)
    assert out["wav_real"].shape == (34 * HOP,)
    assert out["wav_gen"].shape == (34 * HOP,)  # 17 codes -> 34 frames
    np.testing.assert_array_equal(out["wav_real"], batch["wav"][0, 0, : 34 * HOP].numpy())
    assert out["mel_real"].shape == out["mel_gen"].shape == (128, 34)
    assert np.isfinite(out["wav_gen"]).all() and np.abs(out["wav_gen"]).max() <= 1.0


# ------------------------------------------------------------------------------------------------------ resume


class _CaptureAtStart(L.Callback):
    def on_train_start(self, trainer, pl_module):
        self.epoch = trainer.current_epoch
        self.global_step = trainer.global_step
        self.optimizers = [copy.deepcopy(o.state_dict()) for o in trainer.optimizers]
        self.lrs = [[g["lr"] for g in o.param_groups] for o in trainer.optimizers]


def _assert_same_state(a, b) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_same_state(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same_state(x, y)
    elif torch.is_tensor(a):
        assert torch.equal(a, b)
    else:
        assert a == b


@pytest.mark.parametrize("stage", ["gpt", "v2"])
def test_checkpoint_resume_restores_optimizers_schedulers_and_epochs(stage: str, tmp_path) -> None:
    make, batches = {"gpt": (gpt_module, [gpt_batch(i) for i in range(3)]),
                     "v2": (v2_module, [sovits_batch(i) for i in range(2)])}[stage]  # fmt: skip
    first = _trainer(max_epochs=1, default_root_dir=tmp_path)
    first.fit(make(), _loader(batches))
    first.save_checkpoint(tmp_path / "last.ckpt")
    saved_states = [copy.deepcopy(o.state_dict()) for o in first.optimizers]
    saved_lrs = [[g["lr"] for g in o.param_groups] for o in first.optimizers]
    assert all(s["state"] for s in saved_states)  # something to restore

    capture = _CaptureAtStart()
    second = _trainer(max_epochs=2, default_root_dir=tmp_path, callbacks=[capture])
    second.fit(make(seed=1) if stage == "v2" else make(), _loader(batches), ckpt_path=tmp_path / "last.ckpt")
    assert capture.epoch == 1 and capture.global_step == first.global_step
    assert len(capture.optimizers) == (2 if stage == "v2" else 1)
    _assert_same_state(capture.optimizers, saved_states)
    assert capture.lrs == saved_lrs
    assert second.current_epoch == 2 and second.global_step == 2 * first.global_step


# ------------------------------------------------------------------------------------------------------ SoVITS v4


def v4_model(rank: int = 4, seed: int = 0) -> SynthesizerTrnV3:
    torch.manual_seed(seed)
    return add_lora(SynthesizerTrnV3.tiny(), rank=rank)


def v4_batch(seed: int = 0) -> dict:
    return sovits_batch(seed, frames=(30, 24), spec_bins=65, v4=True)


def test_v4_requires_lora_and_frozen_base() -> None:
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="add_lora"):
        SovitsV4Module(SynthesizerTrnV3.tiny())
    model = v4_model()
    model.enc_p.requires_grad_(True)
    with pytest.raises(ValueError, match="enc_p"):
        SovitsV4Module(model)


def test_v4_fast_dev_run_trains_only_lora_and_full_modules() -> None:
    module = SovitsV4Module(v4_model())
    before = _snapshot(module.model)
    trainer = _trainer(fast_dev_run=True)
    trainer.fit(module, _loader([v4_batch()]))
    after = dict(module.model.named_parameters())
    changed = {k for k, v in before.items() if not torch.equal(v, after[k])}
    frozen = {k for k, p in after.items() if not p.requires_grad}
    assert frozen and not changed & frozen
    assert any(k.startswith(("ssl_proj.", "quantizer.", "enc_p.")) for k in frozen)
    assert any("base_layer" in k for k in frozen)  # the DiT weights under the adapters
    assert any("lora_B" in k for k in changed) and any(k.startswith("wns1.") for k in changed)
    assert {"train/loss_cfm", "train/lr"} <= set(trainer.callback_metrics)
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-4 * 0.999875)


def _v4_eval_loss(model: SynthesizerTrnV3, batch: dict) -> float:
    model.eval()
    losses = []
    with torch.no_grad():
        for seed in range(6):
            gen = torch.Generator().manual_seed(seed)
            prompt = batch["mel_lengths"] // 3
            losses.append(float(model(batch["ssl"], batch["spec"], batch["mel"], batch["spec_lengths"],
                                      batch["phones"], batch["phone_lengths"], batch["mel_lengths"], prompt,
                                      generator=gen)))  # fmt: skip
    model.train()
    return sum(losses) / len(losses)


def test_v4_training_reduces_the_loss_on_a_fixed_batch() -> None:
    module = SovitsV4Module(v4_model(), functools.partial(torch.optim.AdamW, lr=3e-3, betas=(0.8, 0.99), eps=1e-9))
    batch = v4_batch()
    start = _v4_eval_loss(module.model, batch)
    torch.manual_seed(0)
    _trainer(max_epochs=1).fit(module, _loader([batch] * 60))
    assert _v4_eval_loss(module.model, batch) < 0.8 * start


def test_v4_sample_regenerates_the_mel_after_a_prompt() -> None:
    module = SovitsV4Module(v4_model(), sample_steps=2)
    batch = v4_batch()
    module.train()
    out = module.sample(batch)
    assert all(m.training for m in module.model.modules())  # modes restored
    assert out["mel_real"].shape == out["mel_gen"].shape == (100, 60)  # 4 x 15 codes
    p = int(out["prompt_frames"])
    assert p == 20
    np.testing.assert_array_equal(out["mel_gen"][:, :p], out["mel_real"][:, :p])
    assert not np.allclose(out["mel_gen"][:, p:], out["mel_real"][:, p:])
    assert out["mel_real"].min() >= -12.0 - 1e-4 and out["mel_real"].max() <= 2.0 + 1e-4  # de-normalised log-mel


def test_v2_trains_after_synthesis_built_the_spectral_caches() -> None:
    """A worker that synthesises (inference mode) and then trains in one process: the caches must not poison it."""
    from mockvox.train.sovits_module import OFFICIAL_MEL

    hann_window.cache_clear()
    mel_filterbank.cache_clear()
    with torch.inference_mode():  # what Synthesizer does first in such a worker
        mel_spectrogram_torch(_voice()[None, : 20 * HOP], **OFFICIAL_MEL)
        spectrogram_torch(_voice()[None, : 20 * HOP], 2048, 32000, HOP, 2048)
    module = v2_module()
    trainer = _trainer(fast_dev_run=True)
    trainer.fit(module, _loader([sovits_batch()]))
    assert float(trainer.callback_metrics["train/loss_mel"]) > 0


# ------------------------------------------------------------------------------------------ built from the config


@functools.lru_cache(maxsize=2)
def _config_and_networks(experiment: str):
    from mockvox.train.build import build_networks
    from mockvox.train.config import compose_train

    cfg = compose_train([f"experiment={experiment}", "data.file_id=x"])
    return cfg, build_networks(cfg, with_bert=False)


def test_v2_optimisers_from_the_config_keep_the_text_encoder_at_0_4x() -> None:
    from mockvox.train.build import sovits_module

    cfg, nets = _config_and_networks("demo")
    module = sovits_module(cfg, nets)
    (opt_g, opt_d), (sched_g, sched_d) = module.configure_optimizers()
    assert type(opt_g) is type(opt_d) is torch.optim.AdamW
    assert [g["name"] for g in opt_g.param_groups] == ["base", "text_low_lr"]
    assert [g["lr"] for g in opt_g.param_groups] == pytest.approx([1e-4, 0.4e-4])
    enc_p = nets.sovits.enc_p
    low = {id(p) for m in (enc_p.text_embedding, enc_p.encoder_text, enc_p.mrte) for p in m.parameters()}
    assert {id(p) for p in opt_g.param_groups[1]["params"]} == low
    assert {id(p) for g in opt_g.param_groups for p in g["params"]} == {id(p) for p in nets.sovits.parameters()
                                                                        if p.requires_grad}  # fmt: skip
    assert [g["lr"] for g in opt_d.param_groups] == pytest.approx([1e-4])
    for opt in (opt_g, opt_d):
        assert all(tuple(g["betas"]) == (0.8, 0.99) and g["eps"] == 1e-9 for g in opt.param_groups)
    assert all(
        isinstance(s, torch.optim.lr_scheduler.ExponentialLR) and s.gamma == 0.999875 for s in (sched_g, sched_d)
    )


def test_v4_optimiser_from_the_config_trains_the_lora_set() -> None:
    from mockvox.train.build import sovits_module

    cfg, nets = _config_and_networks("tiny_v4")
    module = sovits_module(cfg, nets)
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]
    assert isinstance(opt, torch.optim.AdamW) and [g["lr"] for g in opt.param_groups] == pytest.approx([1e-4])
    trainable = {id(p) for p in module.model.parameters() if p.requires_grad}
    assert {id(p) for p in opt.param_groups[0]["params"]} == trainable
    assert any("lora_" in n for n, p in module.model.named_parameters() if p.requires_grad)
    assert sched["interval"] == "epoch" and sched["scheduler"].gamma == 0.999875


class _LrAtEachStep(L.Callback):
    def __init__(self):
        self.lrs: list[float] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.lrs.append(optimizer.param_groups[0]["lr"])


def test_gpt_from_the_config_steps_at_the_official_effective_lr() -> None:
    from mockvox.train.build import gpt_module
    from mockvox.train.optim import ScaledAdam

    cfg, nets = _config_and_networks("demo")
    module = gpt_module(cfg, nets)
    conf = module.configure_optimizers()
    opt = conf["optimizer"]
    assert isinstance(opt, ScaledAdam) and len(opt.param_groups) == 1
    assert opt.param_groups[0]["betas"] == (0.9, 0.95) and opt.param_groups[0]["clipping_scale"] == 2.0
    assert opt.param_groups[0]["clipping_update_period"] == 1000 and conf["lr_scheduler"]["interval"] == "step"
    capture = _LrAtEachStep()
    _trainer(max_epochs=1, callbacks=[capture]).fit(gpt_module(cfg, nets), _loader([gpt_batch(i) for i in range(5)]))
    assert capture.lrs == pytest.approx([0.01, 0.002, 0.002, 0.002, 0.002])  # accumulate=1 in the demo
