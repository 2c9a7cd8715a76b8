"""The content-addressed store: an intact copy is reused, a damaged one is replaced when the content comes again."""

from __future__ import annotations

from pathlib import Path

from catalog.fingerprint import sha256_bytes
from catalog.store import FileStore


def test_put_bytes_reuses_an_intact_copy_and_replaces_a_damaged_one(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    data = b"frames" * 1000
    digest, path = store.put_bytes("features", data, ".npy")
    assert digest == sha256_bytes(data) and path.read_bytes() == data
    assert path == store.path_for("features", digest, ".npy") and store.resolve(store.relative(path)) == path
    inode = path.stat().st_ino
    assert store.put_bytes("features", data, ".npy") == (digest, path)
    assert path.stat().st_ino == inode  # intact: not written again
    path.write_bytes(data[:-1] + b"X")  # same size, other content (a flipped byte)
    assert store.put_bytes("features", data, ".npy") == (digest, path)
    assert path.read_bytes() == data
    path.write_bytes(b"")  # truncated
    store.put_bytes("features", data, ".npy")
    assert path.read_bytes() == data
    assert not list(path.parent.glob(".tmp-*"))  # atomic writes leave no temporary files


def test_put_file_replaces_a_damaged_copy(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    source = tmp_path / "clip.ogg"
    source.write_bytes(b"OggS" + bytes(range(256)) * 40)
    digest, path = store.put_file("audio", source)
    assert path.suffix == ".ogg" and path.read_bytes() == source.read_bytes()
    path.write_bytes(b"OggS")
    assert store.put_file("audio", source) == (digest, path)
    assert path.read_bytes() == source.read_bytes()
