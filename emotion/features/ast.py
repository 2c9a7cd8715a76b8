"""`ast` audio encoder: the Audio Spectrogram Transformer (transformers ASTFeatureExtractor + ASTModel).

Each segment (16 kHz mono) becomes a 128-band log-Mel input of the checkpoint's `max_length` frames
(1024 frames = 10.24 s for the AudioSet checkpoints: a 10 s segment fits whole, shorter ones are
padded) and the model's pooled output (mean of the [CLS] and distillation tokens) is the segment
vector: 768 values for the usual `MIT/ast-finetuned-audioset-10-10-0.4593`.

The checkpoint is `settings.ast_checkpoint` (MUSICREC_AST_CHECKPOINT or `ast_checkpoint` in
musicrec.toml): a local directory, or a hub id already in the local Hugging Face cache. Loading uses
`local_files_only=True` and never downloads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from emotion.features.base import EncoderError

USUAL_CHECKPOINT = "MIT/ast-finetuned-audioset-10-10-0.4593"
HOW_TO = (
    "point musicrec at a local copy: on a machine with network run "
    f"`huggingface-cli download {USUAL_CHECKPOINT} --local-dir /path/to/ast` (or save_pretrained), copy the folder here, "
    "and set MUSICREC_AST_CHECKPOINT=/path/to/ast (or ast_checkpoint = \"/path/to/ast\" in musicrec.toml); "
    "musicrec never downloads models. Use --audio-encoder lld or musicnn meanwhile."
)


def load_ast(checkpoint: str | Path) -> tuple[Any, Any]:
    """(feature extractor, model) from a local checkpoint; EncoderError with instructions otherwise."""
    from transformers import ASTFeatureExtractor, ASTModel

    if not str(checkpoint):
        raise EncoderError("no AST checkpoint configured; " + HOW_TO)
    try:
        extractor = ASTFeatureExtractor.from_pretrained(str(checkpoint), local_files_only=True)
        model = ASTModel.from_pretrained(str(checkpoint), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise EncoderError(f"cannot load the AST checkpoint {checkpoint!r} from local files ({exc}); " + HOW_TO) from exc
    return extractor, model


class ASTEncoder:
    """AudioEncoder "ast": pooled AST output per segment (768-d for the AudioSet checkpoints)."""

    name = "ast"
    sample_rate = 16000

    def __init__(self, checkpoint: str | Path | None = None, *, device: str | None = None, batch_size: int = 8) -> None:
        from catalog.settings import get_settings

        settings = get_settings()
        self.checkpoint = str(checkpoint or settings.ast_checkpoint)
        self.extractor, self.model = load_ast(self.checkpoint)
        if int(self.extractor.sampling_rate) != self.sample_rate:
            raise EncoderError(f"AST checkpoint {self.checkpoint} expects {self.extractor.sampling_rate} Hz, not 16 kHz")
        self.device = device or settings.torch_device()
        self.model.to(self.device).eval()
        self.batch_size = batch_size
        self.dim = int(self.model.config.hidden_size)
        from emotion.features.cache import weights_fingerprint

        # the checkpoint's contents (weights and config), not its folder name: swapped weights never reuse features
        self.version = f"2-{weights_fingerprint(self.checkpoint)}"

    @torch.inference_mode()
    def encode(self, segments: list[np.ndarray]) -> np.ndarray:
        """float32 [len(segments), dim]."""
        out = np.zeros((len(segments), self.dim), dtype=np.float32)
        for i in range(0, len(segments), self.batch_size):
            batch = [np.asarray(s, dtype=np.float32) for s in segments[i : i + self.batch_size]]
            inputs = self.extractor(batch, sampling_rate=self.sample_rate, return_tensors="pt")
            values = inputs["input_values"].to(self.device)
            out[i : i + len(batch)] = self.model(input_values=values).pooler_output.float().cpu().numpy()
        return out
