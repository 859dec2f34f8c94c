"""The MLflow pyfunc flavour of a voice: ``predict`` synthesises speech with the same pipeline as the CLI and API.

A voice is logged as models from code (:mod:`mockvox.train.voice_model`), nothing pickled; its input example
synthesises the reference clip bundled in the voice folder, so MLflow's serving check runs a real request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

# Columns of a prediction request (one row per utterance); without ref_audio the voice's default reference speaks.
REQUIRED = ("text",)
OPTIONAL = ("text_lang", "ref_audio", "prompt_text", "prompt_lang")


class VoicePyfunc(mlflow.pyfunc.PythonModel):
    """``predict(DataFrame | dict | list[dict], params)`` -> DataFrame with ``sample_rate`` and ``audio`` (float32).

    Row fields: ``text``, ``text_lang`` (default: the reference's language, else ``zh``), and optionally
    ``ref_audio`` (path of a 3-10 s recording; a relative path that names no file names one of the voice folder,
    e.g. its bundled ``reference.wav``; absent: the voice's default reference), ``prompt_text``, ``prompt_lang``.
    ``params`` are :class:`mockvox.infer.pipeline.SynthesisParams` fields.
    """

    def load_context(self, context) -> None:
        from mockvox.infer.pipeline import Synthesizer
        from mockvox.infer.voices import PARTS
        from mockvox.paths import pretrained_dir
        from mockvox.voice import load_voice

        self.voice_dir = Path(context.artifacts["voice"])  # loaded as the CLI and the resident cache load voices
        self.synth = Synthesizer(load_voice(self.voice_dir, pretrained_dir=pretrained_dir(), parts=PARTS))

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        from mockvox.infer.pipeline import SynthesisParams

        rows = _rows(model_input)
        given = dict(params or {})
        if given.get("seed") is not None and int(given["seed"]) < 0:
            given["seed"] = None  # -1: a fresh random seed
        settings = SynthesisParams(**given)
        out = []
        for row in rows:
            missing = [k for k in REQUIRED if not row.get(k)]
            if missing:
                raise ValueError(f"prediction row lacks {missing}; required fields: {list(REQUIRED)}")
            sr, audio = self.synth.synthesize(*self._request(row), settings)
            out.append({"sample_rate": sr, "audio": audio})
        return pd.DataFrame(out)

    def _request(self, row: dict) -> tuple:
        """``(ref_audio, prompt_text, prompt_lang, text, text_lang)`` of a row; no ``ref_audio``: the default one."""
        if not row.get("ref_audio"):
            default = self.synth.voice.reference
            lang = row.get("text_lang") or (default.language if default is not None else "zh")
            return None, row.get("prompt_text"), row.get("prompt_lang"), row["text"], lang
        if not row.get("prompt_text"):
            raise ValueError("prediction row gives ref_audio without prompt_text (the reference's transcript)")
        ref = self._reference(row["ref_audio"])
        return ref, row["prompt_text"], row.get("prompt_lang") or "zh", row["text"], row.get("text_lang") or "zh"

    def _reference(self, ref_audio):
        path = Path(ref_audio) if isinstance(ref_audio, str) else None
        if path is not None and not path.is_absolute() and not path.exists() and (self.voice_dir / path).is_file():
            return self.voice_dir / path
        return ref_audio


def _rows(model_input) -> list[dict]:
    if hasattr(model_input, "to_dict"):
        return model_input.to_dict(orient="records")
    if isinstance(model_input, dict):
        return [model_input]
    return list(model_input)


def input_example(voice_dir: Path) -> tuple[pd.DataFrame, dict] | None:
    """A request that reads the bundled reference's own text in its voice; None for a voice without a reference."""
    from mockvox.voice import voice_reference

    ref = voice_reference(voice_dir)
    if ref is None:
        return None
    row = {"text": ref.text, "ref_audio": ref.audio.name, "prompt_text": ref.text, "prompt_lang": ref.language,
           "text_lang": ref.language}  # fmt: skip
    return pd.DataFrame([row]), {"seed": 0, "max_tokens": 250}  # bounded: a barely trained voice may never stop


def signature():
    """Input columns and the synthesis parameters (with their defaults) MLflow passes through to ``predict``."""
    import dataclasses

    from mlflow.models import infer_signature

    from mockvox.infer.pipeline import SynthesisParams

    example = pd.DataFrame([{"text": "你好。", "ref_audio": "ref.wav", "prompt_text": "参考文本。", "prompt_lang": "zh",
                             "text_lang": "zh"}])  # fmt: skip
    params = {f.name: f.default for f in dataclasses.fields(SynthesisParams)}
    params["seed"] = -1
    return infer_signature(example, None, params=params)
