"""Model artifact folders (weights, config, labels, encoders, manifest hash, metrics) and the emotion_models registry."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from catalog.fingerprint import sha256_file
from catalog.manifest import label_names
from emotion.data import LABELS, SongSample, Standardizer
from emotion.models import SongModel, build_model
from emotion.models import spec as model_spec

if TYPE_CHECKING:
    from emotion.inputs import InputSpec

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
LABEL_MAP = "labels.json"
METRICS = "metrics.json"
HISTORY = "history.json"
CURVES = "curves.png"
CONFUSION = "confusion.png"


class ArtifactError(RuntimeError):
    """An artifact folder that is missing files or does not match this code."""


@dataclass
class Artifact:
    """A loaded model with everything needed to turn files into predictions."""

    path: Path
    model: SongModel
    config: dict[str, Any]
    standardizer: Standardizer
    dims: dict[str, int]

    @property
    def name(self) -> str:
        return self.config["model"]

    @property
    def version(self) -> str:
        return self.config.get("version", "")

    @property
    def label_set(self) -> str:
        """The named label set the model predicts (artifacts from before label sets: quadrants)."""
        return str(self.config.get("label_set", "quadrants"))

    @property
    def labels(self) -> tuple[str, ...]:
        from catalog.manifest import label_names

        return label_names(self.label_set)

    @property
    def modalities(self) -> list[str]:
        """The modalities the model was trained with (others are not extracted at prediction time)."""
        return list(self.config.get("modalities", ["audio", "lyrics"]))

    def input_spec(self) -> InputSpec:
        from emotion.inputs import InputSpec

        enc = self.config.get("encoders", {})
        return InputSpec(
            audio_encoder=enc.get("audio", {}).get("name", "") if "audio" in self.modalities else "",
            lyrics_encoder=enc.get("lyrics", {}).get("name", "") if "lyrics" in self.modalities else "",
            needs=self.model.needs,
            segment_s=float(self.config.get("segment_s", 0.0)),
            # artifacts written before 2026-12-08 have none: their lyrics were cut like the audio
            lyrics_segment_s=None if self.config.get("lyrics_segment_s") is None else float(self.config["lyrics_segment_s"]),
            lyrics_cnn=str(self.path / enc["lyrics"]["cnn_state"]) if enc.get("lyrics", {}).get("cnn_state") else "",
        )

    def predict(self, samples: list[SongSample], device: str = "cpu", batch_size: int = 32) -> np.ndarray:
        from emotion.train import predict

        for sample in samples:
            for key in ("audio", "lyrics"):
                x = getattr(sample, key)
                if x is not None and key in self.modalities and x.shape[1] != self.dims[key]:
                    raise ArtifactError(f"{sample.id}: {key} vectors are {x.shape[1]}-d, the model expects {self.dims[key]}-d (different encoder?)")
        self.model.to(device)
        return predict(self.model, [self.standardizer.apply(s) for s in samples], self.dims, device, batch_size)


def save(
    path: Path,
    model: SongModel,
    config: dict[str, Any],
    standardizer: Standardizer,
    dims: dict[str, int],
    metrics: dict[str, Any],
    history: list[dict[str, Any]] | None = None,
) -> Path:
    """Write the artifact folder; the version is derived from the weights' hash."""
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path / WEIGHTS))
    full = {
        **config,
        "dims": dims,
        "standardizer": standardizer.to_json(),
        "version": config.get("version") or f"{datetime.now(UTC):%Y%m%d%H%M%S}-{sha256_file(path / WEIGHTS)[:8]}",
        "created_at": datetime.now(UTC).isoformat(),
    }
    _write(path / CONFIG, full)
    _write(path / LABEL_MAP, {name: i for i, name in enumerate(config.get("labels") or LABELS)})
    _write(path / METRICS, metrics)
    if history is not None:
        _write(path / HISTORY, history)
    return path


def _write(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def load(path: str | Path, device: str = "cpu") -> Artifact:
    """Rebuild the model of an artifact folder."""
    path = Path(path)
    for name in (WEIGHTS, CONFIG, LABEL_MAP):
        if not (path / name).is_file():
            raise ArtifactError(f"{path}: not a model artifact ({name} missing)")
    config = json.loads((path / CONFIG).read_text(encoding="utf-8"))
    labels = json.loads((path / LABEL_MAP).read_text(encoding="utf-8"))
    expected = label_names(str(config.get("label_set", "quadrants")))
    if list(labels) != list(expected):
        raise ArtifactError(f"{path}: label map {list(labels)} differs from its label set {list(expected)}")
    dims = {k: int(v) for k, v in config["dims"].items()}
    params = {**model_spec(config["model"]).cls.legacy_params, **(config.get("model_params") or {})}
    model = build_model(config["model"], dims, params)
    missing, unexpected = model.load_state_dict(load_file(str(path / WEIGHTS)), strict=False)
    if missing or unexpected:
        raise ArtifactError(f"{path}: weights do not fit {config['model']} (missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.to(device).eval()
    return Artifact(path, model, config, Standardizer.from_json(config.get("standardizer", {})), dims)


def register(path: str | Path, url: str | None = None, activate: bool = False) -> int:
    """Insert (or update) the artifact's row in emotion_models; return its id."""
    from sqlalchemy import select, update

    from catalog.db import session_scope
    from catalog.models import EmotionModel

    path = Path(path).resolve()
    config = json.loads((path / CONFIG).read_text(encoding="utf-8"))
    metrics = json.loads((path / METRICS).read_text(encoding="utf-8")) if (path / METRICS).is_file() else {}
    if activate:
        _check_catalog_labels(config.get("label_set", "quadrants"), str(path))
    with session_scope(url) as s:
        row = s.scalar(select(EmotionModel).where(EmotionModel.name == config["model"], EmotionModel.version == config["version"]))
        if row is None:
            row = EmotionModel(name=config["model"], version=config["version"], kind="song")
            s.add(row)
        row.encoder_ids = config.get("encoders", {})
        row.metrics = metrics
        row.artifact_path = str(path)
        if activate:
            s.execute(update(EmotionModel).where(EmotionModel.kind == "song").values(active=False))
            row.active = True
        s.flush()
        return row.id


def activate(model_id: int, url: str | None = None) -> None:
    """Make `model_id` the one active song model."""
    from sqlalchemy import update

    from catalog.db import session_scope
    from catalog.models import EmotionModel

    with session_scope(url) as s:
        row = s.get(EmotionModel, model_id)
        if row is None or row.kind != "song":
            raise ArtifactError(f"no song emotion model with id {model_id}")
        config_path = Path(row.artifact_path or "") / CONFIG
        config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
        _check_catalog_labels(config.get("label_set", "quadrants"), f"model {model_id} ({row.name} {row.version})")
        s.execute(update(EmotionModel).where(EmotionModel.kind == "song").values(active=False))
        row.active = True


def _check_catalog_labels(label_set: str, what: str) -> None:
    """Only a quadrant model may label the catalog (playlists are per quadrant emotion)."""
    if label_set != "quadrants":
        raise ArtifactError(
            f"{what} predicts the {label_set} label set ({', '.join(label_names(label_set))}); only a quadrants model "
            f"({', '.join(LABELS)}) can be activated to label the catalog - train one on a quadrant manifest"
        )


def active_model(url: str | None = None) -> tuple[int, str] | None:
    """(id, artifact path) of the active song model, or None."""
    from sqlalchemy import select

    from catalog.db import session_scope
    from catalog.models import EmotionModel

    with session_scope(url) as s:
        row = s.scalar(select(EmotionModel).where(EmotionModel.kind == "song", EmotionModel.active.is_(True)))
        return (row.id, row.artifact_path) if row else None


def weights_equal(a: Path, b: Path) -> bool:
    """True when two artifacts hold identical weights (determinism checks)."""
    sa, sb = load_file(str(Path(a) / WEIGHTS)), load_file(str(Path(b) / WEIGHTS))
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
