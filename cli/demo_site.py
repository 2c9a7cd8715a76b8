"""The demo music site: static listing and song pages over real audio clips (q4 Ogg Opus, or stand-in FLAC), served on 127.0.0.1."""

from __future__ import annotations

import html
import mimetypes
import shutil
import threading
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PAGE_SIZE = 20


@dataclass(frozen=True)
class DemoSong:
    slug: str
    title: str
    artist: str
    album: str
    duration_s: float
    audio: Path
    lyrics: list[str]


def _page(title: str, body: str) -> str:
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>{body}</body></html>"


def _song_page(song: DemoSong, audio_href: str) -> str:
    minutes, seconds = divmod(int(round(song.duration_s)), 60)
    lyrics = "".join(f"<p>{html.escape(line)}</p>" for line in song.lyrics)
    return _page(
        song.title,
        f"<h1 class='title'>{html.escape(song.title)}</h1><p class='artist'>{html.escape(song.artist)}</p>"
        f"<p class='album'>{html.escape(song.album)}</p><span class='duration'>{minutes}:{seconds:02d}</span>"
        f"<audio controls><source src='{audio_href}' type='{mimetypes.guess_type(audio_href)[0] or 'audio/ogg'}'></audio>"
        + (f"<div class='lyrics'>{lyrics}</div>" if lyrics else "")
        + "<p><a href='/'>home</a></p>",
    )


def write_site(songs: list[DemoSong], root: Path) -> Path:
    """Write index, listing pages, song pages and audio files under `root` (replacing what was there)."""
    if root.exists():
        shutil.rmtree(root)
    (root / "song").mkdir(parents=True)
    (root / "list").mkdir()
    (root / "audio").mkdir()
    (root / "robots.txt").write_text("User-agent: *\nAllow: /\n")
    pages = [songs[i : i + PAGE_SIZE] for i in range(0, len(songs), PAGE_SIZE)] or [[]]
    links = "".join(f"<li><a href='/list/{n + 1}.html'>page {n + 1}</a></li>" for n in range(len(pages)))
    (root / "index.html").write_text(_page("musicrec demo site", f"<h1>Demo music site</h1><ul class='pages'>{links}</ul>"))
    for n, chunk in enumerate(pages, start=1):
        items = "".join(f"<li><a href='/song/{s.slug}.html'>{html.escape(s.title)}</a></li>" for s in chunk)
        (root / "list" / f"{n}.html").write_text(_page(f"page {n}", f"<ul class='songs'>{items}</ul><p><a href='/'>home</a></p>"))
        for song in chunk:
            audio_name = f"{song.slug}{song.audio.suffix}"
            shutil.copyfile(song.audio, root / "audio" / audio_name)
            (root / "song" / f"{song.slug}.html").write_text(_song_page(song, f"/audio/{audio_name}"))
    return root


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


class DemoSite:
    """A ThreadingHTTPServer over a folder on 127.0.0.1 (free port); stop() shuts it down."""

    def __init__(self, root: Path) -> None:
        handler = partial(_QuietHandler, directory=str(root))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __enter__(self) -> DemoSite:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
