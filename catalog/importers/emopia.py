"""EMOPIA: `Q<k>_<songid>_<clip>.mid` rendered to audio with FluidSynth, cached, grouped by song id."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from catalog.audio import AudioError, load
from catalog.importers import ImportReport
from catalog.manifest import relative_to_manifest

QUADRANTS = {"1": "happy", "2": "angry", "3": "sad", "4": "relaxed"}
NAME = re.compile(r"^Q([1-4])_(.+)_(\d+)$")
SOUNDFONTS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/soundfonts/default.sf2",
)
RENDER_SR = 22050


class RenderError(RuntimeError):
    """FluidSynth or the soundfont is missing, or a render failed."""


def find_soundfont(explicit: str | Path | None = None) -> Path:
    if explicit:
        p = Path(explicit)
        if not p.is_file():
            raise RenderError(f"{p}: soundfont not found")
        return p
    for candidate in SOUNDFONTS:
        if Path(candidate).is_file():
            return Path(candidate)
    raise RenderError("no General MIDI soundfont found; install one (apt-get install fluid-soundfont-gm) or pass --soundfont")


def render_midi(midi: Path, dest: Path, soundfont: Path, sr: int = RENDER_SR) -> Path:
    """Render one MIDI file to mono FLAC at `sr` (atomic; an existing valid render is kept)."""
    if dest.is_file() and dest.stat().st_size > 0:
        return dest
    fluidsynth = shutil.which("fluidsynth")
    if not fluidsynth:
        raise RenderError("fluidsynth is not installed (apt-get install fluidsynth)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        wav = Path(tmp) / "render.wav"
        cmd = [fluidsynth, "-ni", "-q", "-g", "0.8", "-r", str(sr), "-F", str(wav), str(soundfont), str(midi)]
        proc = subprocess.run(cmd, capture_output=True, timeout=600, check=False)
        if proc.returncode != 0 or not wav.is_file():
            raise RenderError(f"{midi}: fluidsynth failed: {proc.stderr.decode(errors='replace').strip()[:300]}")
        y = load(wav, sr=sr)
        peak = float(np.max(np.abs(y)))
        y = (y / peak * 0.9).astype(np.float32) if peak > 0 else y
        tmp_flac = Path(tmp) / "out.flac"
        sf.write(str(tmp_flac), y, sr, format="FLAC")
        shutil.move(str(tmp_flac), dest)
    return dest


def import_emopia(
    root: str | Path, out: str | Path, soundfont: str | Path | None = None, audio_dir: str | Path | None = None, workers: int = 2
) -> ImportReport:
    """Render every clip (cached under `audio_dir`, default `<out folder>/emopia_audio`) and write the manifest."""
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    sf2 = find_soundfont(soundfont)
    audio_root = Path(audio_dir) if audio_dir else out.resolve().parent / "emopia_audio"
    report = ImportReport(manifest=out)
    excluded: Counter[str] = Counter()
    jobs: list[tuple[Path, Path, str, str]] = []
    for f in sorted(root.rglob("*.mid")):
        m = NAME.match(f.stem)
        if not m:
            excluded["unexpected file name"] += 1
            report.problems.append(f"{f}: name is not Q<k>_<songid>_<clip>.mid; excluded")
            continue
        jobs.append((f, audio_root / f"{f.stem}.flac", QUADRANTS[m.group(1)], m.group(2)))

    def _render(job: tuple[Path, Path, str, str]) -> tuple[tuple[Path, Path, str, str], str | None]:
        try:
            render_midi(job[0], job[1], sf2)
            return job, None
        except (RenderError, AudioError, subprocess.TimeoutExpired) as exc:
            return job, str(exc)

    rows: list[dict[str, str]] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for (midi, flac, label, song), error in tqdm(pool.map(_render, jobs), total=len(jobs), desc="render EMOPIA", unit="clip"):
            if error:
                excluded["render failed"] += 1
                report.problems.append(error)
                continue
            rows.append(
                {
                    "id": f"emopia-{midi.stem}",
                    "label": label,
                    "audio": relative_to_manifest(out, flac),
                    "lyrics": "",
                    "group": f"emopia-{song}",
                    "split": "",
                }
            )
    return report.finish(rows, excluded)
