"""A reference labeller for pipeline tests and the benchmark: a small UNTRAINED torch model.

Its labels mean nothing: it exists to exercise the orchestration (batches, model loaded once per
process, CPU/GPU device, idempotent storage) with real inference cost while the trained models of the
emotion-models issue are wired through `workers.stages.active_labeller`. Installed with
`workers.stages.use_labeller(reference_labeller)` (in-process, or in worker processes by `tests/support/worker_app.py`);
never for real labels.
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np
import torch
from sqlalchemy import select

from catalog.db import session_scope
from catalog.models import EMOTIONS, EmotionModel
from catalog.settings import get_settings
from catalog.store import FileStore
from workers.stages import Prediction, cached_frames

log = logging.getLogger(__name__)
NAME = "reference-untrained"
VERSION = "1"
DELAY_ENV = "MUSICREC_REFERENCE_DELAY_S"  # seconds per song, to make batches observable in fault tests


def register(url: str | None = None, seed: int = 0) -> int:
    """Create (once) the reference model's weights and emotion_models row, marked active; returns its id."""
    with session_scope(url) as session:
        existing = session.scalar(select(EmotionModel).where(EmotionModel.name == NAME, EmotionModel.version == VERSION))
        if existing is not None:
            return existing.id
        torch.manual_seed(seed)
        head = torch.nn.Linear(248, len(EMOTIONS))
        path = FileStore().root / "models" / f"{NAME}-{VERSION}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(head.state_dict(), path)
        model = EmotionModel(name=NAME, version=VERSION, kind="song", artifact_path=str(path), active=True,
                             encoder_ids={"audio": "lld62-frames/1"}, metrics={"note": "untrained, for pipeline tests"})
        session.add(model)
        session.flush()
        return model.id


class ReferenceLabeller:
    """Linear head over the HSF statistics of a song's cached LLD frames, on the configured device."""

    def __init__(self, model_id: int, artifact: str) -> None:
        self.model_id = model_id
        self.device = get_settings().torch_device()
        self.head = torch.nn.Linear(248, len(EMOTIONS))
        self.head.load_state_dict(torch.load(artifact, map_location="cpu"))
        self.head.to(self.device).eval()
        self.delay_s = float(os.environ.get(DELAY_ENV, "0") or 0)
        log.info("reference labeller: model %s on %s (pid %s)", model_id, self.device, os.getpid())

    def predict(self, song_ids: list[int]) -> dict[int, Prediction | str]:
        from emotion.features.lld import hsf

        out: dict[int, Prediction | str] = {}
        rows, ids = [], []
        for sid in song_ids:
            frames = cached_frames(sid)
            if frames is None:
                out[sid] = "no cached features for this song"
                continue
            stats = hsf(frames)
            rows.append(np.sign(stats) * np.log1p(np.abs(stats)))
            ids.append(sid)
            if self.delay_s:
                time.sleep(self.delay_s)
        if rows:
            with torch.no_grad():
                x = torch.as_tensor(np.stack(rows), dtype=torch.float32, device=self.device)
                probs = torch.softmax(self.head(x), dim=1).cpu().numpy()
            for sid, p in zip(ids, probs, strict=True):
                k = int(np.argmax(p))
                out[sid] = Prediction(EMOTIONS[k], float(p[k]), {e: float(v) for e, v in zip(EMOTIONS, p, strict=True)})
        return out


def reference_labeller() -> ReferenceLabeller:
    """The labeller factory the tests and the benchmark install with `workers.stages.use_labeller`."""
    with session_scope() as session:
        model = session.scalar(select(EmotionModel).where(EmotionModel.name == NAME, EmotionModel.version == VERSION))
        if model is None:
            model_id = None
        else:
            model_id, artifact = model.id, model.artifact_path
    if model_id is None:
        model_id = register()
        with session_scope() as session:
            artifact = session.get(EmotionModel, model_id).artifact_path
    return ReferenceLabeller(model_id, artifact)
