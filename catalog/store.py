"""Content-addressed file store for audio, feature arrays and model artifacts."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from catalog.fingerprint import sha256_bytes, sha256_file
from catalog.settings import get_settings


class FileStore:
    """Files kept under `root/<kind>/<aa>/<bb>/<sha256><suffix>`; writes are atomic."""

    def __init__(self, root: str | Path | None = None) -> None:
        store_dir = Path(root) if root else get_settings().store_dir
        assert store_dir is not None  # Settings._fill_defaults sets <var_dir>/store
        self.root: Path = store_dir
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, kind: str, digest: str, suffix: str = "") -> Path:
        return self.root / kind / digest[:2] / digest[2:4] / f"{digest}{suffix}"

    def relative(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def resolve(self, relative: str) -> Path:
        return self.root / relative

    def put_bytes(self, kind: str, data: bytes, suffix: str = "") -> tuple[str, Path]:
        """Store `data`; return its sha256 and path (an existing copy is reused)."""
        digest = sha256_bytes(data)
        dest = self.path_for(kind, digest, suffix)
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, dest)
        return digest, dest

    def put_file(self, kind: str, source: str | Path, suffix: str | None = None) -> tuple[str, Path]:
        """Copy a file into the store by content; return its sha256 and path."""
        source = Path(source)
        digest = sha256_file(source)
        dest = self.path_for(kind, digest, source.suffix if suffix is None else suffix)
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
            os.close(fd)
            shutil.copyfile(source, tmp)
            os.replace(tmp, dest)
        return digest, dest
