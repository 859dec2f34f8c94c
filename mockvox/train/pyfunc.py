"""The MLflow pyfunc flavour of a voice: ``predict`` synthesises speech with the same pipeline as the CLI and API."""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc

# Columns of a prediction request (one row per utterance); the others are optional synthesis parameters.
REQUIRED = ("text", "ref_audio", "prompt_text")
OPTIONAL = ("text_lang", "prompt_lang")


class VoicePyfunc(mlflow.pyfunc.PythonModel):
    """``predict(DataFrame | dict | list[dict], params)`` -> DataFrame with ``sample_rate`` and ``audio`` (float32).

    Row fields: ``text``, ``ref_audio`` (path of a 3-10 s recording), ``prompt_text``, and ``text_lang`` /
    ``prompt_lang`` (default ``zh``). ``params`` are :class:`mockvox.infer.pipeline.SynthesisParams` fields.
    """

    def load_context(self, context) -> None:
        import os

        from mockvox.infer.loading import load_voice
        from mockvox.infer.pipeline import Synthesizer

        pretrained = os.environ.get("MOCKVOX_PRETRAINED", "pretrained")
        self.synth = Synthesizer(load_voice(context.artifacts["voice"], pretrained_dir=pretrained))

    def predict(self, context, model_input, params: dict[str, Any] | None = None):
        import pandas as pd

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
            sr, audio = self.synth.synthesize(
                row["ref_audio"], row["prompt_text"], row.get("prompt_lang") or "zh",
                row["text"], row.get("text_lang") or "zh", settings,
            )  # fmt: skip
            out.append({"sample_rate": sr, "audio": audio})
        return pd.DataFrame(out)


def _rows(model_input) -> list[dict]:
    if hasattr(model_input, "to_dict"):
        return model_input.to_dict(orient="records")
    if isinstance(model_input, dict):
        return [model_input]
    return list(model_input)


def signature():
    """Input columns and the synthesis parameters (with their defaults) MLflow passes through to ``predict``."""
    import dataclasses

    import pandas as pd
    from mlflow.models import infer_signature

    from mockvox.infer.pipeline import SynthesisParams

    example = pd.DataFrame([{"text": "你好。", "ref_audio": "ref.wav", "prompt_text": "参考文本。", "prompt_lang": "zh",
                             "text_lang": "zh"}])  # fmt: skip
    params = {f.name: f.default for f in dataclasses.fields(SynthesisParams)}
    params["seed"] = -1
    return infer_signature(example, None, params=params)
