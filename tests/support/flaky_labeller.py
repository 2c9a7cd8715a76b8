"""A test labeller whose first calls fail like a GPU out of memory (transient) or a missing checkpoint
(configuration); installed in-process with `workers.stages.use_labeller(factory)`."""

from __future__ import annotations

import os

from catalog.models import EMOTIONS
from workers.stages import Prediction

FAILS_ENV = "FLAKY_LABELLER_FAILS"  # how many predict() calls fail
KIND_ENV = "FLAKY_LABELLER_KIND"  # "oom" or "checkpoint"
MODEL_ENV = "FLAKY_LABELLER_MODEL_ID"
calls = {"n": 0}


class FlakyLabeller:
    def __init__(self) -> None:
        self.model_id = int(os.environ[MODEL_ENV])

    def predict(self, song_ids: list[int]) -> dict[int, Prediction | str]:
        calls["n"] += 1
        if calls["n"] <= int(os.environ.get(FAILS_ENV, "0")):
            if os.environ.get(KIND_ENV) == "checkpoint":
                raise FileNotFoundError("checkpoint /models/ast/pytorch_model.bin not found")
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return {sid: Prediction(EMOTIONS[sid % 4], 0.8, {e: 0.2 for e in EMOTIONS}) for sid in song_ids}


def factory() -> FlakyLabeller:
    return FlakyLabeller()
