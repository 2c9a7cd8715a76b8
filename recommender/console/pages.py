"""The console's HTML pages: Listen, Topics and Pipeline."""

from __future__ import annotations

import colorsys
from typing import Any

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from catalog.db import session_scope
from catalog.models import EMOTIONS, Song
from recommender import queries
from recommender.api.errors import ApiError
from recommender.console import TEMPLATES

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(TEMPLATES))
PLAYLIST_LEN = 6
MEASURE_NAMES = {
    "tempo_bpm": "Tempo (BPM)",
    "loudness_db": "Loudness (dB)",
    "brightness_db": "Brightness (dB)",
    "pitch_range_hz": "Pitch range (Hz)",
    "energy": "Energy (beat strength)",
}


def topic_colour(index: int) -> str:
    """A distinct, readable colour per topic index (tab10-like hues)."""
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
    return palette[index % len(palette)]


def heat_colour(value: float, vmax: float) -> tuple[str, str]:
    """Background and text colour of a heat map cell: light yellow (0) to dark blue (vmax)."""
    f = 0.0 if vmax <= 0 else max(0.0, min(1.0, value / vmax))
    r, g, b = colorsys.hls_to_rgb(0.16 + 0.47 * f, 0.92 - 0.62 * f, 0.75)
    return f"rgb({int(r * 255)},{int(g * 255)},{int(b * 255)})", ("#fff" if f > 0.5 else "#111")


def _render(request: Request, name: str, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {"emotions": EMOTIONS, **context})


@router.get("/", response_class=HTMLResponse)
def listen(request: Request) -> HTMLResponse:
    return _render(request, "listen.html", page="listen")


@router.get("/topics", response_class=HTMLResponse)
def topics(request: Request, emotion: str = Query(EMOTIONS[0])) -> HTMLResponse:
    from topics.view import build_view

    if emotion not in EMOTIONS:
        raise ApiError(404, "not_found", f"unknown emotion {emotion!r}; expected one of {', '.join(EMOTIONS)}")
    with session_scope() as s:
        view = build_view(s, emotion)
        playlists: dict[int, list[dict[str, Any]]] = {}
        for topic in queries.emotion_topics(s, emotion):
            ranked = queries.topic_songs(s, topic)[:PLAYLIST_LEN]
            playlists[topic.id] = [
                {**queries.song_summary(s, song, topic.id), "weight": r.weight} for r in ranked if (song := s.get(Song, r.song_id)) is not None
            ]
    heat = None
    if view.heatmap is not None:
        vmax = float(np.max(view.heatmap.matrix)) if view.heatmap.matrix.size else 0.0
        heat = {
            "columns": [{"word": w, "sound": snd} for w, snd in zip(view.heatmap.words, view.heatmap.sounds, strict=True)],
            "rows": [[{"p": float(p), "colour": heat_colour(float(p), vmax)} for p in row] for row in view.heatmap.matrix],
        }
    corners = np.array(view.corners) if view.corners else np.zeros((1, 2))
    lo, hi = corners.min(axis=0) - 0.3, corners.max(axis=0) + 0.3  # the SVG's y axis points down: y -> -y
    viewbox = f"{lo[0]:.2f} {-hi[1]:.2f} {hi[0] - lo[0]:.2f} {hi[1] - lo[1]:.2f}"
    return _render(
        request,
        "topics.html",
        viewbox=viewbox,
        page="topics",
        emotion=emotion,
        view=view,
        playlists=playlists,
        heat=heat,
        colour=topic_colour,
        measure_names=MEASURE_NAMES,
    )


@router.get("/admin", response_class=HTMLResponse)
def admin(request: Request) -> HTMLResponse:
    """The Pipeline page: a shell whose data come from /v1/admin/* with the key the person enters (kept in the
    browser); without a valid key those routes answer 401/403 and the page shows the refusal and no data."""
    return _render(request, "admin.html", page="admin")
