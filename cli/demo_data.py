"""Self-generated stand-in data for the demo when ../shared/data is absent, in the shared sets' own layouts.

Music: short piano pieces (MIDI rendered with FluidSynth to FLAC, in the q4 set's `Q1..Q4/` layout with its metadata
CSV, one stand-in artist per piece) whose mode, tempo and loudness follow the quadrant (happy: major, fast, loud;
angry: minor, fast, loud, dissonant; sad: minor, slow, soft; relaxed: major, slow, soft). Voices: espeak-ng speech
whose pitch, rate and amplitude follow the emotion. The labels hold by construction, so the models learn the
construction, not real emotion: only for showing the system work, never for claims about accuracy.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

QUADRANT_STYLE = {  # quadrant: (major?, tempo bpm, velocity, add a tritone)
    1: (True, 150, 100, False),
    2: (False, 160, 115, True),
    3: (False, 62, 50, False),
    4: (True, 70, 55, False),
}
VOICE_STYLE = {"W": (70, 210, 190), "F": (85, 190, 160), "T": (25, 110, 90), "N": (45, 150, 120)}  # pitch, speed, amplitude
SENTENCES = ("Der Lappen liegt auf dem Eisschrank.", "Das will sie am Mittwoch abgeben.", "Heute abend könnte ich es ihm sagen.")
LYRICS = {
    "Happy": "[00:01.00]Sunshine on the open road\n[00:05.00]Dancing all the way back home",
    "Angry": "[00:01.00]I will break these chains tonight\n[00:05.00]Burn it down and start the fight",
    "Sad": "[00:01.00]Empty rooms and fading light\n[00:05.00]I miss you every single night",
    "Relaxed": "[00:01.00]Lazy waves upon the shore\n[00:05.00]Nothing left to hurry for",
}


def write_piece(path: Path, quadrant: int, seed: int, seconds: float = 24.0) -> None:
    import pretty_midi

    major, bpm, velocity, tritone = QUADRANT_STYLE[quadrant]
    rng = random.Random(seed)
    root = 48 + rng.randrange(0, 12)
    third = 4 if major else 3
    beat = 60.0 / (bpm * rng.uniform(0.9, 1.1))
    midi = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    t = 0.0
    scale = [0, 2, third, 5, 7, 9 if major else 8, 11 if major else 10]
    while t < seconds:
        for interval in (0, third, 7) + ((6,) if tritone else ()):
            piano.notes.append(pretty_midi.Note(velocity=velocity, pitch=root + interval, start=t, end=t + 2 * beat))
        for k in range(2):
            pitch = root + 12 + rng.choice(scale)
            piano.notes.append(pretty_midi.Note(velocity=min(127, velocity + 10), pitch=pitch, start=t + k * beat, end=t + (k + 1) * beat))
        t += 2 * beat
    midi.instruments.append(piano)
    midi.write(str(path))


def write_voice(path: Path, letter: str, sentence: str, speaker_shift: int) -> None:
    espeak = shutil.which("espeak-ng")
    if not espeak:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng); it voices the demo's stand-in clips")
    pitch, speed, amplitude = VOICE_STYLE[letter]
    cmd = [espeak, "-v", "de", "-p", str(min(99, pitch + speaker_shift)), "-s", str(speed), "-a", str(amplitude), "-w", str(path), sentence]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


def generate(dest: Path, songs_per_quadrant: int = 12, speakers: int = 4) -> Path:
    """Write nju-musicmood-train/, q4-audio-dev/ and emodb-dev/wav/ under `dest` (replacing what was there)."""
    import tempfile

    from catalog.importers.emopia import find_soundfont, render_midi

    if dest.exists():
        shutil.rmtree(dest)
    for mood, text in LYRICS.items():
        folder = dest / "nju-musicmood-train" / mood
        folder.mkdir(parents=True)
        records = []
        for n in range(1, 4):
            (folder / f"{mood.lower()}_{n}.txt").write_text(text)
            records.append(f"{n}:{mood} song {n}:Demo band:30")
        (folder / "info.txt").write_bytes("\r".join(records).encode("latin-1"))
    q4 = dest / "q4-audio-dev"
    soundfont = find_soundfont()
    meta = ['"Song","Artist","Title","Quadrant"']
    with tempfile.TemporaryDirectory() as tmp:
        for q in QUADRANT_STYLE:
            for s in range(songs_per_quadrant):
                for clip in range(2):
                    song = f"DEMO{q}{s:02d}{clip}"
                    midi = Path(tmp) / f"{song}.mid"
                    write_piece(midi, q, seed=q * 1000 + s * 10 + clip)
                    render_midi(midi, q4 / f"Q{q}" / f"{song}.flac", soundfont)
                    meta.append(f'"{song}","Demo band {q}-{s:02d}","Stand-in piece {q}-{s:02d}, part {clip + 1}","Q{q}"')
    (q4 / "panda_dataset_taffc_metadata.csv").write_text("\n".join(meta) + "\n", encoding="latin-1")
    wavs = dest / "emodb-dev" / "wav"
    wavs.mkdir(parents=True)
    for spk in range(speakers):
        speaker = f"{spk + 3:02d}"
        for letter in VOICE_STYLE:
            for i, sentence in enumerate(SENTENCES):
                write_voice(wavs / f"{speaker}a0{i}{letter}a.wav", letter, sentence, speaker_shift=spk * 4 - 6)
    return dest
