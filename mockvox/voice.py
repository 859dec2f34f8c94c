"""The trained-voice format: model folders written atomically by training, loaded for synthesis and resuming.

This module is the only one that reads or writes a voice folder. A folder holds ``mockvox.yaml`` and official-format
exports GPT-SoVITS loads too: ``gpt.ckpt`` (fp16, ``model.`` keys), ``sovits.pth`` (v2 family: fp16 generator without
``enc_q``, header ``05``/``06`` for v2Pro/v2ProPlus; v4: the LoRA export, header ``04``, merged into the base at load
time), plus ``sovits_base.pth`` / ``vocoder.pth`` / ``hubert/`` / ``sv.ckpt`` (the v2Pro speaker-verification network)
when not the official pretrained files, which are referenced as ``{pretrained: <path under pretrained_dir>}``
(GPT-SoVITS's ``pretrained_models`` layout). A voice also carries a default reference, ``reference.wav`` (a 3-10 s slice
of its dataset) with its transcript and language under ``reference:``, so that it can speak a text alone.

Loading alone gives self-contained networks (a v4 LoRA merged into its own copy of the base, as upstream). Loading
through :class:`SharedParts` (resident voices) gives every voice the same HuBERT / BERT / vocoder / SV network and, for
v4, the same base generator in memory, each voice adding only its GPT, its adapters and its fully trained modules.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from mockvox.atomic import atomic_dir
from mockvox.audio.spectrogram import OFFICIAL, Spectrogram
from mockvox.checkpoints import (
    load_gpt_checkpoint,
    load_sovits_checkpoint,
    read_checkpoint,
    save_sovits_checkpoint,
    write_checkpoint,
)
from mockvox.models.eres2net import SpeakerEncoder
from mockvox.models.hubert import HubertSSL
from mockvox.models.lora import has_lora, load_lora, overlay_lora, save_lora
from mockvox.models.sovits_v2 import PRO_VERSIONS, SynthesizerTrn
from mockvox.models.sovits_v2 import VERSIONS as V2_FAMILY
from mockvox.models.sovits_v4 import SynthesizerTrnV3
from mockvox.models.t2s import T2SConfig, Text2Semantic
from mockvox.models.vocoder_v4 import V4_VOCODER, build_vocoder, load_vocoder
from mockvox.precision import capabilities, describe_plan, plan
from mockvox.pretrained import OFFICIAL_FILES, PretrainedMissing, default_dir
from mockvox.text.bert import Bert, load_bert

CONFIG_NAME = "mockvox.yaml"
VERSIONS = (*V2_FAMILY, "v4")  # the v2 family: v2, v2Pro, v2ProPlus (32 kHz, one SoVITS file)
PRETRAINED = {  # official files, relative to pretrained_dir (mockvox.pretrained.OFFICIAL_FILES)
    "sovits_base": OFFICIAL_FILES["v4"]["sovits"],
    "vocoder": OFFICIAL_FILES["v4"]["vocoder"],
    "hubert": OFFICIAL_FILES["hubert"],
    "bert": OFFICIAL_FILES["bert"],
    "sv": OFFICIAL_FILES["v2Pro"]["sv"],
}
MEL_FRAME_RATE = 100  # v4 mel frames per second (32 kHz / hop 320); the vocoder upsamples each frame
log = logging.getLogger(__name__)
REFERENCE_NAME = "reference.wav"
HOLDOUT_DIR = "holdout"  # the held-out slices' audio in a voice folder
_RESERVED = ("version", "sample_rate", "spectrogram", "gpt", "sovits", "sovits_base", "vocoder", "hubert", "bert", "sv",
             "reference", "holdout")  # fmt: skip


@dataclass(frozen=True)
class Reference:
    """A reference recording (3-10 s) with its transcript and language."""

    audio: Path
    text: str
    language: str


def voice_reference(model_dir: str | os.PathLike, config: Mapping | None = None) -> Reference | None:
    """The default reference bundled in a voice folder, or None for a voice without one."""
    entry = (config if config is not None else read_voice_config(model_dir)).get("reference")
    if not entry:
        return None
    return Reference(Path(model_dir) / entry["audio"], entry["text"], entry["language"])


def voice_holdout(model_dir: str | os.PathLike, config: Mapping | None = None) -> tuple[Reference, ...]:
    """The slices of the voice's dataset that its training left out (the evaluation's ground truth), if any."""
    entries = (config if config is not None else read_voice_config(model_dir)).get("holdout") or []
    return tuple(Reference(Path(model_dir) / e["audio"], e["text"], e["language"]) for e in entries)


@dataclass
class LoadedVoice:
    """Everything synthesis needs, in eval mode on one device."""

    version: str  # "v2" | "v2Pro" | "v2ProPlus" | "v4"
    sample_rate: int  # output rate: 32000 (v2 family), 48000 (v4)
    gpt: Text2Semantic
    sovits: SynthesizerTrn | SynthesizerTrnV3
    hubert: HubertSSL
    bert: Bert | None  # None: BERT features are zeros
    vocoder: nn.Module | None  # v4 only
    config: dict  # the parsed mockvox.yaml
    device: torch.device = torch.device("cpu")
    dtype: torch.dtype = torch.float32  # the SoVITS generator's (its inputs are cast to it)
    precision: dict[str, torch.dtype] = field(default_factory=dict)  # per network: gpt, sovits, vocoder, hubert
    reference: Reference | None = None  # the voice's default reference
    holdout: tuple[Reference, ...] = ()  # slices its training left out (real audio for the evaluation)
    spectrogram: Spectrogram = OFFICIAL  # of the reference spectrogram (what the SoVITS was trained on)
    sv: SpeakerEncoder | None = None  # v2Pro / v2ProPlus: the speaker-verification network (fp32)


# --- loading ----------------------------------------------------------------------------------------------------------
def read_voice_config(model_dir: str | os.PathLike) -> dict:
    """Parse and check ``mockvox.yaml`` of a model folder."""
    path = Path(model_dir) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{model_dir}: not a MockVox model folder (no {CONFIG_NAME})")
    config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if config.get("version") not in VERSIONS:
        raise ValueError(f"{path}: version {config.get('version')!r} is not supported; accepted: {', '.join(VERSIONS)}")
    extra = {"v4": ["sovits_base", "vocoder"], **dict.fromkeys(PRO_VERSIONS, ["sv"])}.get(config["version"], [])
    required = ["gpt", "sovits", "hubert", *extra]
    missing = [k for k in required if not isinstance(config.get(k), dict)]
    if missing:
        raise ValueError(f"{path}: missing or malformed entries {missing}")
    return config


class _Resolver:
    """Turns ``{file: ...}`` / ``{dir: ...}`` / ``{pretrained: ...}`` entries into existing paths."""

    def __init__(self, model_dir: Path, pretrained_dir: Path):
        self.model_dir, self.pretrained_dir = model_dir, pretrained_dir

    def __call__(self, name: str, entry: Mapping, marker: str | None = None) -> Path:
        for key in ("file", "dir"):
            if key in entry:
                path = self.model_dir / entry[key]
                if not path.exists():
                    raise FileNotFoundError(f"{self.model_dir}: the {name} {key} {entry[key]!r} is missing")
                return path
        if "pretrained" not in entry:
            raise ValueError(f"{self.model_dir}/{CONFIG_NAME}: {name} needs 'file', 'dir' or 'pretrained'")
        path = self.pretrained_dir / entry["pretrained"]
        if not (path / marker if marker else path).exists():
            raise PretrainedMissing(
                f"pretrained {name} file {path / marker if marker else path} is missing (needed by "
                f"{self.model_dir}); run `mockvox pretrained download` or pass the folder holding it as pretrained_dir"
            )
        return path


def choose_precision(precision: str | Mapping[str, str], device: torch.device) -> dict[str, torch.dtype]:
    """Per-network dtypes for ``precision`` on ``device`` (see :mod:`mockvox.precision`), said in one log line."""
    caps = capabilities(device)
    chosen = plan(precision, caps)
    if precision != "fp32":
        log.info("%s", describe_plan(precision, chosen, caps))
    return chosen


def _load_gpt(path: Path, entry: Mapping) -> Text2Semantic:
    ckpt = load_gpt_checkpoint(path)
    config = T2SConfig(**entry["config"]) if entry.get("config") else T2SConfig.from_official(ckpt.config)
    model = Text2Semantic(config)
    model.load_official_state_dict(ckpt.weight)
    return model


def _load_sovits_v2(path: Path, kwargs: Mapping, version: str) -> SynthesizerTrn:
    model = SynthesizerTrn(**{**kwargs, "version": version, "use_enc_q": False})
    weight = {k: v for k, v in load_sovits_checkpoint(path).weight.items() if not k.startswith("enc_q.")}
    model.load_state_dict(weight)
    return model


def _v4_base(kwargs: Mapping, base_entry: Mapping, resolve: _Resolver) -> SynthesizerTrnV3:
    model = SynthesizerTrnV3(**kwargs)
    base_path = resolve("sovits_base", base_entry)
    base = read_checkpoint(base_path) if "file" in base_entry else {"weight": load_sovits_checkpoint(base_path).weight}
    try:
        model.load_state_dict(base["weight"])
    except RuntimeError as err:
        raise ValueError(f"{base_path}: base generator does not fit the configured SoVITS v4 ({err})") from err
    return model


def _fingerprint(path: Path, entry: Mapping) -> tuple:
    """What identifies a part's weights: an installed pretrained file by place and stamp, a bundled one by content."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    if "pretrained" in entry:
        return (str(path.resolve()), *((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files))
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else "").encode())
        with open(file, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    return ("sha256", digest.hexdigest())


class SharedParts:
    """Networks that voices loaded through this object hold in common, each loaded once per device and precision.

    A part lives as long as one voice holds it (weak references): evicting the last voice using a base frees it.
    Thread-safe; two threads asking for the same part wait for one load.
    """

    def __init__(self) -> None:
        self._parts: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self._lock = threading.Lock()
        self._gates: dict[tuple, threading.Lock] = {}

    def __len__(self) -> int:
        return len(self._parts)

    def get(self, key: tuple, build: Callable[[], Any]) -> Any:
        with self._lock:
            part = self._parts.get(key)
            if part is not None:
                return part
            gate = self._gates.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                part = self._parts.get(key)
            if part is None:
                part = build()
                with self._lock:
                    self._parts[key] = part
        return part


def load_voice(
    model_dir: str | os.PathLike,
    pretrained_dir: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    precision: str | Mapping[str, str] = "fp32",
    parts: SharedParts | None = None,
) -> LoadedVoice:
    """Load a model folder written by :func:`write_voice` (``{pretrained: X}`` parts come from ``pretrained_dir``).

    With ``parts``, HuBERT, BERT, the vocoder, the SV network and the v4 base generator are taken from (or put into)
    it and a v4 LoRA stays unmerged over the shared base (:func:`mockvox.models.lora.overlay_lora`); without, every
    network is the voice's own and the LoRA is merged.

    ``precision`` ``bf16`` / ``fp16`` gives each network the reduced precision where this hardware runs it fast
    (:func:`mockvox.precision.plan`); a mapping ``{"gpt": "bf16", "sovits": "fp32", ...}`` is taken as given.

    Raises:
        FileNotFoundError: the folder or one of its files is missing (``PretrainedMissing`` for pretrained parts).
        ValueError: a malformed ``mockvox.yaml``, weights that do not fit, or an unknown precision.
    """
    model_dir = Path(model_dir)
    config = read_voice_config(model_dir)
    device = torch.device(device)
    dtypes = choose_precision(precision, device)
    resolve = _Resolver(model_dir, Path(pretrained_dir) if pretrained_dir is not None else default_dir())
    version = config["version"]
    own = parts is None

    def part(kind: str, entry: Mapping, build: Callable[[Path], Any], marker: str | None = None, shape=None) -> Any:
        path = resolve(kind, entry, marker)
        if own:
            return build(path)
        key = (kind, _fingerprint(path, entry), repr(shape or entry.get("kwargs")), str(device), str(dtypes.get(kind)))
        return parts.get(key, lambda: build(path))

    int8 = dtypes["gpt"] == torch.int8  # int8 weight-only matmuls, fp32 activations
    gpt_dtype = torch.float32 if int8 else dtypes["gpt"]
    gpt = _load_gpt(resolve("GPT", config["gpt"]), config["gpt"]).to(device).prepare_inference(gpt_dtype, int8)
    sovits_path, sovits_kwargs = resolve("SoVITS", config["sovits"]), config["sovits"].get("kwargs") or {}
    vocoder = sv = None
    if version in PRO_VERSIONS:
        sizes = config["sv"].get("kwargs") or {}
        sv = part("sv", config["sv"], lambda p: SpeakerEncoder.from_checkpoint(p, **sizes).to(device).eval())
    if version in V2_FAMILY:
        sovits = _load_sovits_v2(sovits_path, sovits_kwargs, version).to(device, dtypes["sovits"]).eval()
    else:
        if own:
            sovits = load_lora(_v4_base(sovits_kwargs, config["sovits_base"], resolve), sovits_path, merge=True)
            sovits = sovits.to(device, dtypes["sovits"]).eval()
        else:
            base = part("sovits_base", config["sovits_base"], lambda _: _v4_base(
                sovits_kwargs, config["sovits_base"], resolve).to(device, dtypes["sovits"]).eval(),
                shape=(sovits_kwargs, dtypes["sovits"]))  # fmt: skip
            sovits = overlay_lora(base, read_checkpoint(sovits_path))
        vocoder_kwargs = config["vocoder"].get("kwargs") or {}
        vocoder = part("vocoder", config["vocoder"],
                       lambda p: load_vocoder(p, **vocoder_kwargs).to(device, dtypes["vocoder"]).eval())  # fmt: skip
    hubert = part("hubert", config["hubert"], lambda p: HubertSSL.from_pretrained(p, dtype=dtypes["hubert"]).to(device)
                  .eval(), "config.json")  # fmt: skip
    bert = None
    if config.get("bert"):
        bert = part("bert", config["bert"], lambda p: load_bert(p, str(device), local_files_only=True), "config.json")
    return LoadedVoice(
        version=version,
        sample_rate=int(config.get("sample_rate") or _sample_rate(version, config.get("vocoder"))),
        gpt=gpt,
        sovits=sovits,
        hubert=hubert,
        bert=bert,
        vocoder=vocoder,
        config=config,
        device=device,
        dtype=dtypes["sovits"],
        precision=dtypes,
        reference=voice_reference(model_dir, config),
        holdout=voice_holdout(model_dir, config),
        spectrogram=Spectrogram.from_mapping(config.get("spectrogram")),
        sv=sv,
    )


# --- writing ----------------------------------------------------------------------------------------------------------
def _plain_yaml(obj: Any) -> Any:
    """Tuples to lists, paths to strings, recursively (``yaml.safe_dump`` takes plain types only)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain_yaml(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain_yaml(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _sample_rate(version: str, vocoder_entry: Mapping | None, spectrogram: Spectrogram = OFFICIAL) -> int:
    if version in V2_FAMILY:  # the generator decodes at its input rate
        return spectrogram.sampling_rate
    rates = {**V4_VOCODER, **((vocoder_entry or {}).get("kwargs") or {})}["upsample_rates"]
    return MEL_FRAME_RATE * math.prod(rates)


def _official_s2_config(version: str, sovits_kwargs: Mapping, spectrogram: Spectrogram = OFFICIAL) -> dict:
    """The ``config`` stored in SoVITS exports (``s2.json`` layout; GPT-SoVITS reads it as attributes)."""
    return {"data": spectrogram.as_s2_data(), "model": {**_plain_yaml(sovits_kwargs), "version": version}}


def base_state_dict(model: nn.Module | Mapping) -> dict[str, torch.Tensor]:
    """SoVITS v4 base weights: a state dict, a plain model, or a LoRA-wrapped model's weights without the adapters."""
    if isinstance(model, Mapping):
        return dict(model)
    if not has_lora(model):
        return model.state_dict()
    out = {}
    for key, value in model.state_dict().items():
        if "lora_" not in key:  # peft names: cfm.base_model.model.<path>[.base_layer].weight
            out[key.replace("cfm.base_model.model.", "cfm.", 1).replace(".base_layer.", ".")] = value
    return out


def _write_module_parts(staging: Path, version: str, sovits_base, vocoder, vocoder_kwargs) -> dict:
    """Write ``sovits_base.pth`` / ``vocoder.pth`` (v4) and return their config entries."""
    if version in V2_FAMILY:
        if sovits_base is not None or vocoder is not None:
            raise ValueError(f"sovits_base and vocoder belong to v4 model folders; pass None for {version}")
        return {}
    for name, value in (("sovits_base", sovits_base), ("vocoder", vocoder)):
        if isinstance(value, str) and value != "pretrained":
            raise ValueError(f"{name} must be a module, 'pretrained' or None, got {value!r}")
    entries: dict[str, Any] = {}
    if sovits_base is None or isinstance(sovits_base, str):
        entries["sovits_base"] = {"pretrained": PRETRAINED["sovits_base"]}
    else:
        weight = {k: v.detach().cpu().contiguous() for k, v in base_state_dict(sovits_base).items()}
        write_checkpoint({"weight": weight, "config": None}, staging / "sovits_base.pth")
        entries["sovits_base"] = {"file": "sovits_base.pth"}
    if vocoder is None or isinstance(vocoder, str):
        entries["vocoder"] = {"pretrained": PRETRAINED["vocoder"]}
    else:
        state = {k: v.detach().float().cpu().contiguous() for k, v in vocoder.state_dict().items()}
        try:  # the folder must rebuild this vocoder from vocoder_kwargs
            build_vocoder(**(vocoder_kwargs or {})).load_state_dict(state)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"the vocoder does not match vocoder_kwargs={vocoder_kwargs!r}: {err}") from err
        write_checkpoint(state, staging / "vocoder.pth")
        entries["vocoder"] = {"file": "vocoder.pth", "kwargs": dict(vocoder_kwargs or {})}
    return entries


def _write_sovits(
    staging: Path, version: str, sovits: nn.Module, sovits_kwargs: Mapping, info: str, spectrogram: Spectrogram
) -> dict:
    path, config = staging / "sovits.pth", _official_s2_config(version, sovits_kwargs, spectrogram)
    if version in V2_FAMILY:
        if not isinstance(sovits, SynthesizerTrn) or sovits.version != version:
            got = f"{type(sovits).__name__} {getattr(sovits, 'version', '')}"
            raise ValueError(f"a {version} voice needs a SynthesizerTrn(version={version!r}), got a {got}")
        save_sovits_checkpoint(path, sovits.state_dict(), config, info, version=version, export=True)
    else:
        if not isinstance(sovits, SynthesizerTrnV3) or not has_lora(sovits):
            raise ValueError("a v4 voice needs a SynthesizerTrnV3 whose cfm carries LoRA adapters (lora.add_lora)")
        save_lora(sovits, path, config, info)
    return {"file": "sovits.pth", "kwargs": dict(sovits_kwargs)}


def _write_sv(staging: Path, version: str, sv: SpeakerEncoder | str | None, sizes: Mapping | None) -> dict:
    """The v2Pro SV network: bundled as ``sv.ckpt`` (a bare state dict, like the official file) or the pretrained."""
    if version not in PRO_VERSIONS:
        if sv is not None:
            raise ValueError(f"sv belongs to {' and '.join(PRO_VERSIONS)} model folders; pass None for {version}")
        return {}
    if not isinstance(sv, SpeakerEncoder) and sv not in (None, "pretrained"):
        raise ValueError(f"sv must be a SpeakerEncoder, 'pretrained' or None, got {sv!r}")
    entry = {"file": "sv.ckpt"} if isinstance(sv, SpeakerEncoder) else {"pretrained": PRETRAINED["sv"]}
    if isinstance(sv, SpeakerEncoder):
        torch.save({k: v.detach().cpu().contiguous() for k, v in sv.net.state_dict().items()}, staging / "sv.ckpt")
    return {"sv": {**entry, "kwargs": dict(sizes)} if sizes else entry}


def _write_hubert(staging: Path, hubert) -> dict:
    if isinstance(hubert, str) and hubert != "pretrained":
        raise ValueError(f"hubert must be a HubertSSL, 'pretrained' or None, got {hubert!r}")
    if hubert is None or isinstance(hubert, str):
        return {"pretrained": PRETRAINED["hubert"]}
    model = hubert.model if isinstance(hubert, HubertSSL) else hubert
    model.save_pretrained(staging / "hubert")
    return {"dir": "hubert"}


def _check_write_args(version: str, bert: str | None, extra: Mapping | None) -> None:
    if version not in VERSIONS:
        raise ValueError(f"unknown version {version!r}; accepted: {', '.join(VERSIONS)}")
    if bert not in (None, "pretrained"):
        raise ValueError(f"bert must be 'pretrained' or None, got {bert!r}")
    clash = sorted(set(extra or {}) & set(_RESERVED))
    if clash:
        raise ValueError(f"extra entries {clash} would overwrite model entries; reserved: {', '.join(_RESERVED)}")


def write_voice(
    model_dir: str | os.PathLike,
    *,
    version: str,
    gpt: Text2Semantic,
    sovits: nn.Module,
    sovits_kwargs: Mapping,
    hubert: HubertSSL | str | None = None,
    bert: str | None = "pretrained",
    vocoder: nn.Module | str | None = None,
    vocoder_kwargs: Mapping | None = None,
    sovits_base: nn.Module | Mapping | str | None = None,
    sv: SpeakerEncoder | str | None = None,
    sv_kwargs: Mapping | None = None,
    extra: Mapping | None = None,
    reference: Reference | None = None,
    holdout: Sequence[Reference] = (),
    info: str = "mockvox",
    spectrogram: Spectrogram | Mapping | None = None,
) -> Path:
    """Write a model folder atomically (built in a staging folder beside it, then renamed into place).

    Args:
        sovits: v2 ``SynthesizerTrn``; v4 ``SynthesizerTrnV3`` with LoRA adapters (written as the official export).
        sovits_kwargs: the constructor arguments that rebuild ``sovits``.
        hubert: a ``HubertSSL`` to bundle, or None / ``"pretrained"`` for chinese-hubert-base.
        bert: ``"pretrained"`` (chinese-roberta-wwm-ext-large) or None (zero BERT features).
        vocoder: v4 only: a vocoder module built with ``vocoder_kwargs`` (overrides of the official sizes), or
            None / ``"pretrained"``.
        sovits_base: v4 only: the generator weights the LoRA applies to (a model, a LoRA-wrapped model or a state
            dict), or None / ``"pretrained"`` for ``s2Gv4.pth``.
        sv: v2Pro / v2ProPlus only: a ``SpeakerEncoder`` whose ``ERes2NetV2`` has the sizes ``sv_kwargs`` (overrides of
            the official ones), or None / ``"pretrained"`` for ``sv/pretrained_eres2netv2w24s4ep4.ckpt``.
        extra: further top-level ``mockvox.yaml`` entries (training information).
        reference: the default reference; its audio file is copied into the folder as ``reference.wav``.
        holdout: slices the training left out, copied into ``holdout/`` (the evaluation's real audio).
        spectrogram: the settings ``sovits`` was trained with (``cfg.model.spectrogram``; None: the official ones),
            recorded as ``spectrogram:`` and in the SoVITS export's ``data``.
    """
    _check_write_args(version, bert, extra)
    spectrogram = Spectrogram.from_mapping(spectrogram)
    target = Path(model_dir)
    with atomic_dir(target) as staging:
        gpt.save_official_checkpoint(staging / "gpt.ckpt", info=info)
        config: dict[str, Any] = {"version": version, "sample_rate": 0, "spectrogram": spectrogram.as_s2_data()}
        config["gpt"] = {"file": "gpt.ckpt", "config": asdict(gpt.config)}
        config["sovits"] = _write_sovits(staging, version, sovits, sovits_kwargs, info, spectrogram)
        config.update(_write_module_parts(staging, version, sovits_base, vocoder, vocoder_kwargs))
        config.update(_write_sv(staging, version, sv, sv_kwargs))
        config["hubert"] = _write_hubert(staging, hubert)
        config["bert"] = {"pretrained": PRETRAINED["bert"]} if bert else None
        config["sample_rate"] = _sample_rate(version, config.get("vocoder"), spectrogram)
        config.update(extra or {})
        if reference is not None:
            shutil.copyfile(reference.audio, staging / REFERENCE_NAME)
            config["reference"] = {"audio": REFERENCE_NAME, "text": reference.text, "language": reference.language}
        if holdout:
            (staging / HOLDOUT_DIR).mkdir()
            config["holdout"] = []
            for index, clip in enumerate(holdout):
                name = f"{HOLDOUT_DIR}/{index:03d}-{Path(clip.audio).name}"
                shutil.copyfile(clip.audio, staging / name)
                config["holdout"].append({"audio": name, "text": clip.text, "language": clip.language})
        text = yaml.safe_dump(_plain_yaml(config), sort_keys=False, allow_unicode=True)
        (staging / CONFIG_NAME).write_text(text, encoding="utf-8")
    return target
