"""Topic model artifacts: codebook + gensim LDA + metadata packed in one tar in the content-addressed store."""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from catalog.store import FileStore
from topics.codebook import Codebook
from topics.errors import TopicsError

KIND = "topics"


@dataclass
class TopicArtifact:
    codebook: Codebook
    lda: Any  # gensim.models.LdaModel
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_topics(self) -> int:
        return int(self.lda.num_topics)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def save(artifact: TopicArtifact, store: FileStore | None = None) -> str:
    """Write the artifact into the store; return its store-relative path."""
    store = store or FileStore()
    buf = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(fileobj=buf, mode="w") as tar:
        artifact.lda.save(str(Path(tmp) / "lda.model"))
        for f in sorted(Path(tmp).iterdir()):
            _add(tar, f"lda/{f.name}", f.read_bytes())
        _add(tar, "codebook.npz", artifact.codebook.to_bytes())
        _add(tar, "meta.json", json.dumps(artifact.meta, sort_keys=True).encode())
    _, path = store.put_bytes(KIND, buf.getvalue(), ".tar")
    return store.relative(path)


def load(relative: str, store: FileStore | None = None) -> TopicArtifact:
    """Read an artifact back (cached per process by path and store root)."""
    store = store or FileStore()
    return _load(str(store.resolve(relative)))


@lru_cache(maxsize=16)
def _load(path: str) -> TopicArtifact:
    from gensim.models import LdaModel

    p = Path(path)
    if not p.is_file():
        raise TopicsError(f"topic model artifact missing: {p}")
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(p) as tar:
        tar.extractall(tmp, filter="data")
        lda = LdaModel.load(str(Path(tmp) / "lda" / "lda.model"))
        codebook = Codebook.from_bytes((Path(tmp) / "codebook.npz").read_bytes())
        meta = json.loads((Path(tmp) / "meta.json").read_text())
    return TopicArtifact(codebook=codebook, lda=lda, meta=meta)
