"""Content-addressed file store for audio, feature arrays and model artifacts."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from catalog.fingerprint import sha256_bytes, sha256_file
from catalog.settings import get_settings

TEMP_PREFIX = ".tmp-"  # a write goes to such a file beside its target, then is renamed over it


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
        """Store `data`; return its sha256 and path (an intact existing copy is reused, a damaged one replaced)."""
        digest = sha256_bytes(data)
        dest = self.path_for(kind, digest, suffix)
        if not _intact(dest, digest):
            fd, tmp = self._temp(dest)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, dest)
        return digest, dest

    def put_file(self, kind: str, source: str | Path, suffix: str | None = None) -> tuple[str, Path]:
        """Copy a file into the store by content; return its sha256 and path (an intact copy is reused)."""
        source = Path(source)
        digest = sha256_file(source)
        dest = self.path_for(kind, digest, source.suffix if suffix is None else suffix)
        if not _intact(dest, digest):
            fd, tmp = self._temp(dest)
            os.close(fd)
            shutil.copyfile(source, tmp)
            os.replace(tmp, dest)
        return digest, dest

    @staticmethod
    def _temp(dest: Path) -> tuple[int, str]:
        """A temporary file beside `dest` (then renamed over it: writes are atomic)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(dir=dest.parent, prefix=TEMP_PREFIX)


def _intact(path: Path, digest: str) -> bool:
    """Whether the stored copy at `path` exists and still has the content its name says. Writes are atomic, so a
    damaged copy comes from outside (disk, a user): storing the same content again replaces it instead of reusing
    it forever. Costs one read of the existing copy, only when the same content is stored again."""
    return path.is_file() and sha256_file(path) == digest

