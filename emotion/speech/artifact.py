"""Speech model artifacts: save/load a trained model directory, register it, and recognise emotion in clips."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emotion.speech import features as F
from emotion.speech.data import FEATURE_VERSION, LABELS, Normaliser, collate, no_handcrafted, whisper_frames
from emotion.speech.model import STACKS, SpeechModelConfig, build
from emotion.speech.preprocess import SAMPLE_RATE, Limits, prepare

log = logging.getLogger(__name__)
WEIGHTS = "model.pt"
META = "meta.json"
NORM = "normaliser.npz"


class ModelNotFoundError(FileNotFoundError):
    """No usable speech model artifact."""


def whisper_meta(encoder: object) -> dict:
    """What an artifact records of the Whisper encoder it was trained on (model, layer, version, dim; the
    (model, layer) pairs of a `WhisperStack`)."""
    out = {"model": encoder.model, "layer": encoder.layer, "version": encoder.version, "dim": encoder.d_model}  # type: ignore[attr-defined]
    if hasattr(encoder, "specs"):
        out["encoders"] = [list(s) for s in encoder.specs]
    return out


def load_whisper(meta: dict, int8: bool = False):  # type: ignore[no-untyped-def]
    """The Whisper encoder(s) an artifact was trained with (same models and layers), with `int8` dynamically
    int8-quantized for serving (`settings.speech_int8`); a different version is logged."""
    from emotion.features.whisper import WhisperEncoderFeatures
    from emotion.speech.probe import WhisperStack

    info = meta.get("whisper") or {}
    model = str(info.get("model", ""))
    enc: Any
    if info.get("encoders") or meta["config"]["name"] in STACKS:
        specs = info.get("encoders") or STACKS[meta["config"]["name"]]
        enc = WhisperStack(tuple((str(m), int(layer)) for m, layer in specs), int8=int8)
    else:
        enc = WhisperEncoderFeatures(None if model.startswith("local:") else (model or None), int(info.get("layer", 2)), int8=int8)
    if info.get("version") and enc.version.replace(".int8", "") != info["version"]:
        log.warning("speech model was trained on Whisper %s, running %s", info["version"], enc.version)
    return enc


def save(out: Path, model: torch.nn.Module, normaliser: Normaliser, meta: dict) -> Path:
    """Write weights, normaliser and meta.json (config, labels, feature version, metrics...) to `out`."""
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / WEIGHTS)
    np.savez(out / NORM, **normaliser.to_arrays())  # type: ignore[arg-type]  # numpy's stub matches **kwds against allow_pickle: bool
    cfg: SpeechModelConfig = model.cfg  # type: ignore[assignment]  # both speech networks carry their config
    full = {"config": cfg.to_dict(), "labels": list(LABELS), "feature_version": FEATURE_VERSION, "sample_rate": SAMPLE_RATE, **meta}
    (out / META).write_text(json.dumps(full, indent=2, default=str))
    return out


def read_meta(path: Path) -> dict:
    meta = path / META
    if not meta.is_file():
        raise ModelNotFoundError(f"{path}: not a speech model directory (no {META})")
    return json.loads(meta.read_text())


@dataclass
class Prediction:
    emotion: str
    probabilities: dict[str, float]
    duration_s: float


class SpeechRecognizer:
    """A loaded speech model: clip -> emotion and probabilities. Thread-safe for inference."""

    def __init__(self, path: str | Path, int8: bool | None = None) -> None:
        """Load the artifact at `path`; `int8` (default `settings.speech_int8`): run its Whisper encoders int8-quantized."""
        from catalog.settings import get_settings

        self.path = Path(path)
        self.meta = read_meta(self.path)
        cfg = SpeechModelConfig.from_dict(self.meta["config"])
        self.model = build(cfg)
        self.model.load_state_dict(torch.load(self.path / WEIGHTS, map_location="cpu", weights_only=True))
        self.model.eval()
        with np.load(self.path / NORM) as z:
            self.normaliser = Normaliser.from_arrays(z)
        self.labels: list[str] = list(self.meta["labels"])
        self._lock = threading.Lock()
        self.int8 = get_settings().speech_int8 if int8 is None else int8
        self.whisper = load_whisper(self.meta, self.int8) if cfg.use_whisper else None
        self.handcrafted = cfg.use_handcrafted  # the Whisper-only probes never compute the spectrogram and HSF

    @property
    def name(self) -> str:
        return str(self.meta["config"]["name"])

    def warm_up(self) -> None:
        """Run one synthetic clip through the whole path (compiles librosa's numba kernels once)."""
        t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
        self.predict_array((0.1 * np.sin(2 * np.pi * 180 * t)).astype(np.float32))

    def predict_array(self, y: np.ndarray) -> Prediction:
        """Emotion of preprocessed speech at 16 kHz."""
        raw = F.extract(y) if self.handcrafted else no_handcrafted()
        if self.whisper is not None:
            raw.whisper = whisper_frames(y, self.whisper)
        feats = self.normaliser.apply(raw)
        with self._lock, torch.inference_mode():
            probs = torch.softmax(collate([feats]).run(self.model), dim=1)[0].numpy()
        best = int(np.argmax(probs))
        return Prediction(self.labels[best], {k: round(float(v), 6) for k, v in zip(self.labels, probs, strict=True)}, len(y) / SAMPLE_RATE)

    def predict_file(self, path: str | Path, limits: Limits = Limits()) -> Prediction:
        """Emotion of a voice clip file (raises SpeechClipError/AudioError for unusable clips)."""
        return self.predict_array(prepare(path, SAMPLE_RATE, limits))


def register(path: Path, metrics: dict, activate: bool = True, url: str | None = None) -> int:
    """Record the artifact as an EmotionModel row of kind "speech" (optionally the active one); returns its id."""
    from sqlalchemy import select, update

    from catalog.db import session_scope
    from catalog.models import EmotionModel

    meta = read_meta(path)
    version = meta.get("version") or datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    with session_scope(url) as s:
        row = s.scalar(select(EmotionModel).where(EmotionModel.name == f"speech-{meta['config']['name']}", EmotionModel.version == version))
        if row is None:
            row = EmotionModel(name=f"speech-{meta['config']['name']}", version=version, kind="speech", artifact_path=str(path.resolve()))
            s.add(row)
        row.metrics = metrics
        row.encoder_ids = {"features": meta["feature_version"], **({"whisper": meta["whisper"]["version"]} if meta.get("whisper") else {})}
        if activate:
            s.execute(update(EmotionModel).where(EmotionModel.kind == "speech").values(active=False))
            row.active = True
        s.flush()
        return int(row.id)


def active_model_path(url: str | None = None) -> Path:
    """Artifact folder of the active speech EmotionModel (else the newest speech model)."""
    from sqlalchemy import select

    from catalog.db import session_scope
    from catalog.models import EmotionModel

    with session_scope(url) as s:
        row = s.scalar(
            select(EmotionModel)
            .where(EmotionModel.kind == "speech")
            .order_by(EmotionModel.active.desc(), EmotionModel.created_at.desc(), EmotionModel.id.desc())
            .limit(1)
        )
        if row is None:
            raise ModelNotFoundError("no speech model registered: run `musicrec train speech` first or set MUSICREC_SPEECH_MODEL")
        return Path(row.artifact_path)
