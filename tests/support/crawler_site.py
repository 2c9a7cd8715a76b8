"""A real test web site on 127.0.0.1 for the crawler: pages, audio, autoindex, feed, Jamendo-format JSON; and
`run_crawl`, one crawl in a fresh process with fast settings (FAST)."""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[2]
FAST = ["-s", "AUTOTHROTTLE_ENABLED=0", "-s", "DOWNLOAD_TIMEOUT=2", "-s", "RETRY_TIMES=1", "-s", "AUDIO_MAX_BYTES=150000",
        "-s", "MUSICREC_FLUSH_INTERVAL=0.2", "-s", "LOG_LEVEL=INFO"]
CTYPES = {".wav": "audio/x-wav", ".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".flac": "audio/flac", ".lrc": "text/plain; charset=utf-8"}


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    ctype: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    declared_length: int | None = None  # lie about Content-Length (a cut-off transfer)


Handler = Callable[[dict[str, list[str]]], Route]


class LocalSite:
    """Routes by path; `serve()` starts a ThreadingHTTPServer in a daemon thread on a free port."""

    def __init__(self) -> None:
        self.routes: dict[str, Route | Handler] = {}
        self.hits: dict[str, int] = {}
        self.server: ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, path: str, route: Route | Handler) -> None:
        self.routes[path] = route

    def page(self, path: str, body: str, **kw: Any) -> None:
        self.add(path, Route(body=body.encode("utf-8"), **kw))

    def file(self, path: str, data: bytes, ctype: str | None = None, **kw: Any) -> None:
        self.add(path, Route(body=data, ctype=ctype or CTYPES.get(Path(path).suffix, "application/octet-stream"), **kw))

    def serve(self) -> LocalSite:
        site = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                parsed = urlparse(self.path)
                site.hits[parsed.path] = site.hits.get(parsed.path, 0) + 1
                route = site.routes.get(parsed.path)
                if callable(route):
                    route = route(parse_qs(parsed.query))
                if route is None:
                    route = Route(status=404, body=b"<html><body>not found</body></html>")
                if route.delay:
                    time.sleep(route.delay)
                try:
                    self.send_response(route.status)
                    self.send_header("Content-Type", route.ctype)
                    self.send_header("Content-Length", str(route.declared_length or len(route.body)))
                    for key, value in route.headers.items():
                        self.send_header(key, value)
                    if route.declared_length:
                        self.send_header("Connection", "close")
                        self.close_connection = True
                    self.end_headers()
                    self.wfile.write(route.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        class _Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # clients that hang up (timeouts, size limits) are part of the tests

        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


# ---- audio -------------------------------------------------------------------------------------


def tone(path: Path, freq: float, seconds: float = 1.0, sr: int = 16000) -> Path:
    """A short sine tone with a little noise (so every file is distinct and not silent)."""
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(int(freq * 100))
    y = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)
    sf.write(str(path), y.astype(np.float32), sr, subtype="PCM_16")
    return path


def convert(src: Path, dest: Path) -> Path:
    """Re-encode with ffmpeg (format from the suffix)."""
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg, "ffmpeg is needed to build the test site"
    extra = ["-c:a", "libvorbis"] if dest.suffix == ".ogg" else []
    subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(src), *extra, str(dest)], check=True)
    return dest


def song_page(title: str | None, artist: str | None, album: str | None, duration: str | None, audio: str | None,
              lyrics: str | None = None, lyrics_url: str | None = None) -> str:
    parts = ["<!DOCTYPE html><html><head><title>song</title></head><body><div class='song'>"]
    if title is not None:
        parts.append(f"<h1 class='title'>{html.escape(title)}</h1>")
    if artist is not None:
        parts.append(f"<p>by <span class='artist'>{html.escape(artist)}</span></p>")
    if album is not None:
        parts.append(f"<p class='album'>Album: {html.escape(album)}</p>")
    if duration is not None:
        parts.append(f"<span class='duration'>{duration}</span>")
    if audio is not None:
        parts.append(f"<audio controls><source src='{audio}' type='audio/wav'></audio>")
    if lyrics is not None:
        parts.append(f"<pre class='lyrics'>{html.escape(lyrics)}</pre>")
    if lyrics_url is not None:
        parts.append(f"<a class='lrc' href='{lyrics_url}'>lyrics</a>")
    parts.append("<a href='/list/1'>home</a></div></body></html>")
    return "".join(parts)


def listing(links: list[str], next_page: str | None = None) -> str:
    items = "".join(f"<li><a href='{u}'>{u}</a></li>" for u in links)
    nxt = f"<a class='next' href='{next_page}'>next</a>" if next_page else ""
    return f"<html><body><ul>{items}</ul>{nxt}</body></html>"


def site_rules(base: str, name: str = "testsite", order: str = "depth") -> str:
    """A rule file for the pages made by `song_page`/`listing`."""
    return f"""
name = "{name}"
start_urls = ["{base}/list/1"]
order = "{order}"

[links.listing]
allow = ['/list/\\d+$']

[links.song]
allow = ['/song/', '/private/']

[fields]
title = {{ css = "h1.title::text" }}
artist = {{ css = ".artist::text" }}
album = {{ css = ".album::text", re = "Album:\\\\s*(.+)" }}
duration = {{ css = ".duration::text" }}
lyrics = {{ css = "pre.lyrics::text" }}
lyrics_url = {{ css = "a.lrc::attr(href)" }}
audio_url = {{ xpath = "//audio/source/@src" }}
source_id = {{ url_re = "/song/([\\\\w-]+)" }}
"""


def jamendo_track(track_id: int, name: str | None, artist: str, album: str, duration: int, audio: str | None,
                  tags: list[str], lyrics: str | None = None) -> dict[str, object]:
    """One result in the real Jamendo v3.0 /tracks format."""
    track: dict[str, object] = {
        "id": str(track_id),
        "name": name,
        "duration": duration,
        "artist_id": "7",
        "artist_name": artist,
        "artist_idstr": artist.lower().replace(" ", "_"),
        "album_name": album,
        "album_id": "42",
        "license_ccurl": "http://creativecommons.org/licenses/by-sa/3.0/",
        "position": 1,
        "releasedate": "2012-01-01",
        "album_image": "https://usercontent.jamendo.com?type=album&id=42&width=300",
        "audio": audio,
        "audiodownload": audio,
        "prourl": "",
        "shorturl": f"https://jamen.do/t/{track_id}",
        "shareurl": f"https://www.jamendo.com/track/{track_id}",
        "waveform": "{}",
        "image": "",
        "audiodownload_allowed": True,
        "musicinfo": {"vocalinstrumental": "vocal", "lang": "en", "gender": "male", "acousticelectric": "acoustic",
                      "speed": "medium", "tags": {"genres": tags, "instruments": ["piano"], "vartags": []}},
    }
    if lyrics is not None:
        track["lyrics"] = lyrics
    return track


def jamendo_handler(tracks: list[dict[str, object]], base: Callable[[], str]) -> Handler:
    """Serve /v3.0/tracks/ pages with offset/limit like the real API (headers.next included)."""

    def handle(query: dict[str, list[str]]) -> Route:
        if query.get("client_id", [""])[0] != "testclient":
            body = {"headers": {"status": "failed", "code": 5, "error_message": "Your credential is not authorized.",
                                "warnings": "", "results_count": 0}, "results": []}
            return Route(body=json.dumps(body).encode(), ctype="application/json")
        offset = int(query.get("offset", ["0"])[0])
        limit = int(query.get("limit", ["10"])[0])
        page = tracks[offset : offset + limit]
        nxt = ""
        if offset + limit < len(tracks):
            nxt = f"{base()}/v3.0/tracks/?client_id=testclient&format=json&limit={limit}&offset={offset + limit}&include=musicinfo+lyrics"
        body = {"headers": {"status": "success", "code": 0, "error_message": "", "warnings": "",
                            "results_count": len(page), "next": nxt}, "results": page}
        return Route(body=json.dumps(body).encode(), ctype="application/json")

    return handle


def autoindex(path: str, names: list[str]) -> str:
    """An nginx-style autoindex page."""
    rows = "".join(f'<a href="{n}">{n}</a>                                   21-Nov-2026 05:00     1234\n' for n in names)
    return (
        f"<html>\n<head><title>Index of {path}</title></head>\n<body>\n"
        f"<h1>Index of {path}</h1><hr><pre><a href=\"../\">../</a>\n{rows}</pre><hr></body>\n</html>\n"
    )


def run_crawl(*args: str, env_extra: dict[str, str] | None = None, timeout: int = 120, cli: bool = False) -> subprocess.CompletedProcess[str]:
    """`python -m crawler.run ...` (or `musicrec crawl ...` with cli=True) in a fresh process with this test's settings."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env_extra or {})}
    cmd = [sys.executable, "-m", *(("cli.main", "crawl") if cli else ("crawler.run",)), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=str(REPO))
