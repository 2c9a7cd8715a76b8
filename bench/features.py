"""Benchmark: real-time factor of each audio encoder (lld, musicnn, ast) on CPU with one thread, side by side.

Real-time factor = seconds of audio / seconds of compute for `encoder.encode(segments)` on 10 s segments
(decoding and resampling excluded). Compute is measured as CPU time of this process (time.process_time)
with torch, OpenMP and BLAS limited to one thread, so other jobs on a shared machine inflate it less than
wall time; wall-clock factors are reported too. Audio: the EMOPIA clips of a manifest (default
/work/devdata/emopia.csv when present), else a few clips rendered from ../shared/data/emopia-dev MIDI.

musicnn is measured apart (`musicnn_q4`), the way the song models use it: real q4 recordings
(MUSICREC_SHARED_DATA/q4-audio-dev, 30 s Ogg Opus clips), cut into the default recipe's 3 s segments (one
patch each). Per core: `realtime_factor` = audio seconds / CPU seconds of `encode` (log-Mel + network, what
the goal of 50x counts); `extraction_factor` adds decoding and resampling (the whole per-file step of
emotion.features.extract). The baseline in the same run is the same port in musicnn's own order (conv ->
ReLU -> batch norm -> max over frequency on the whole map, batches of 64 patches); `max_abs_diff` compares
the two outputs. `breakdown_cpu_s` splits ours into decode, log-Mel and network.

`ast` uses settings.ast_checkpoint when it loads; otherwise a randomly initialised ASTModel with the default
ASTConfig - the same architecture and size as MIT/ast-finetuned-audioset-10-10-0.4593, so the timing is
representative even though its outputs are meaningless (stated in the JSON).

Also compared: the LLD formant step, batched (ours: one Levinson-Durbin over all frames + batched companion
eigenvalues) vs a per-frame loop (baseline: librosa.lpc + numpy.roots per frame), with their max difference.
Last line of stdout: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import numpy as np  # noqa: E402 - BLAS reads the thread counts above when numpy loads

if TYPE_CHECKING:
    from emotion.features.base import AudioEncoder

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REPO = Path(__file__).resolve().parent.parent
DEV_MANIFEST = Path("/work/devdata/emopia.csv")
SHARED = Path(os.environ.get("MUSICREC_SHARED_DATA", REPO.parent / "shared" / "data"))
MIDI_DIR = SHARED / "emopia-dev" / "midis"


def clip_paths(manifest: Path | None, n: int) -> tuple[list[Path], str]:
    """Up to n audio files: from the manifest, else rendered from EMOPIA MIDI into a temporary folder."""
    if manifest is None and DEV_MANIFEST.is_file():
        manifest = DEV_MANIFEST
    if manifest is not None:
        from catalog.manifest import read

        items = [it for it in read(manifest).items if it.audio and it.audio.is_file()]
        step = max(1, len(items) // n)
        return [it.audio for it in items[::step][:n]], str(manifest)
    from catalog.importers.emopia import find_soundfont, render_midi

    sf2 = find_soundfont()
    out = Path(tempfile.mkdtemp(prefix="bench-features-"))
    midis = sorted(MIDI_DIR.glob("*.mid"))[:n]
    return [render_midi(m, out / f"{m.stem}.flac", sf2) for m in midis], f"rendered from {MIDI_DIR}"


def segments_for(paths: list[Path], sr: int, max_segments: int | None) -> tuple[list[np.ndarray], float]:
    from catalog.audio import load
    from emotion.features.segments import audio_segments

    segs: list[np.ndarray] = []
    for p in paths:
        segs += audio_segments(load(p, sr), sr)[0]
    segs = segs[:max_segments] if max_segments else segs
    return segs, sum(len(s) for s in segs) / sr


def time_encoder(encoder: AudioEncoder, segs: list[np.ndarray], audio_s: float) -> dict[str, object]:
    encoder.encode(segs[:1])  # warm-up (allocations, lazy init)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    out = encoder.encode(segs)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {
        "realtime_factor": round(audio_s / cpu, 2),
        "realtime_factor_wall": round(audio_s / wall, 2),
        "audio_s": round(audio_s, 1),
        "segments": len(segs),
        "dim": int(out.shape[1]),
        "cpu_s": round(cpu, 3),
        "wall_s": round(wall, 3),
        "finite": bool(np.isfinite(out).all()),
    }


def ast_encoder(small: bool = False) -> tuple[AudioEncoder, str]:
    """The configured AST checkpoint, else a random AST in a temporary folder (default size, or tiny when `small`)."""
    from emotion.features.ast import ASTEncoder
    from emotion.features.base import EncoderError

    try:
        return ASTEncoder(device="cpu"), "configured checkpoint"
    except EncoderError:
        import torch
        from transformers import ASTConfig, ASTFeatureExtractor, ASTModel

        tmp = Path(tempfile.mkdtemp(prefix="bench-ast-"))
        torch.manual_seed(0)
        cfg = ASTConfig(hidden_size=192, num_hidden_layers=4, num_attention_heads=3, intermediate_size=768) if small else ASTConfig()
        ASTModel(cfg).save_pretrained(tmp)
        ASTFeatureExtractor().save_pretrained(tmp)
        note = ("random weights, SMALL ASTConfig (hidden 192, 4 layers): not representative of the real checkpoint's speed"
                if small else "random weights, default ASTConfig (same size as the AudioSet checkpoint)")
        return ASTEncoder(tmp, device="cpu"), note


def formant_loop(y: np.ndarray, sr: int) -> np.ndarray:
    """Baseline: the same LPC formants with librosa.lpc and numpy.roots frame by frame."""
    from math import gcd

    import librosa
    from scipy.signal import lfilter, resample_poly

    from emotion.features import lld

    g = gcd(sr, lld.LPC_SR)
    x = lfilter([1.0, -0.63], [1.0], resample_poly(y, lld.LPC_SR // g, sr // g))
    frames = librosa.util.frame(np.ascontiguousarray(x), frame_length=lld.LPC_FRAME, hop_length=lld.LPC_HOP, axis=0)
    out = np.full((len(frames), 3), np.nan)
    for i, fr in enumerate(frames * np.hamming(lld.LPC_FRAME)):
        if np.sum(fr**2) <= 1e-10:
            continue
        roots = np.roots(librosa.lpc(fr, order=lld.LPC_ORDER))
        roots = roots[roots.imag > 0]
        freq = np.angle(roots) * lld.LPC_SR / (2 * np.pi)
        bw = -np.log(np.abs(roots)) * lld.LPC_SR / np.pi
        keep = np.sort(freq[(freq > lld.FORMANT_MIN_HZ) & (freq < lld.LPC_SR / 2 - 50) & (bw < lld.FORMANT_MAX_BW)])[:3]
        out[i, : len(keep)] = keep
    return out


def formant_compare(y: np.ndarray, sr: int) -> dict[str, object]:
    from emotion.features.lld import _lpc_formants

    _lpc_formants(y[: sr], sr), formant_loop(y[: sr], sr)  # warm-up (librosa.lpc is numba-compiled on first use)
    t0 = time.process_time()
    ours, _, _ = _lpc_formants(y, sr)
    t_ours = time.process_time() - t0
    t0 = time.process_time()
    base = formant_loop(y, sr)
    t_base = time.process_time() - t0
    both = np.isfinite(ours) & np.isfinite(base)
    return {
        "batched_cpu_s": round(t_ours, 4),
        "per_frame_loop_cpu_s": round(t_base, 4),
        "speedup": round(t_base / max(t_ours, 1e-9), 1),
        "median_abs_diff_hz": round(float(np.median(np.abs(ours[both] - base[both]))), 3) if both.any() else None,
        "agree_share": round(float(np.mean(np.abs(ours[both] - base[both]) < 1.0)), 4) if both.any() else None,
    }


def q4_clips(n: int) -> list[Path]:
    """n of the q4 dev clips, spread over the quadrants (sorted paths, every k-th)."""
    root = SHARED / "q4-audio-dev"
    paths = sorted(root.rglob("*.opus"))
    if not paths:
        raise SystemExit(f"no q4 clips under {root} (set MUSICREC_SHARED_DATA)")
    return paths[:: max(1, len(paths) // n)][:n]


def musicnn_q4(n_clips: int, passes: int = 2) -> dict[str, object]:
    """musicnn on real q4 recordings in 3 s segments: ours (blocked front-end) vs musicnn's plain order, process CPU time."""
    from catalog.audio import load
    from emotion.features.musicnn import SR, MusicnnEncoder, log_mel, patches
    from emotion.features.segments import SegmentSpec, audio_segments
    from emotion.models import DEFAULT_RECIPE

    spec = SegmentSpec(length_s=float(DEFAULT_RECIPE["segment_s"]))
    paths = q4_clips(n_clips)
    ours = MusicnnEncoder(device="cpu")
    plain = MusicnnEncoder(device="cpu", batch_size=64)
    plain.model.blocked = False
    warm = [np.zeros(SR * 3, dtype=np.float32)]
    ours.encode(warm), plain.encode(warm)
    t0 = time.process_time()
    clips = [load(p, SR) for p in paths]
    decode = time.process_time() - t0
    segs = [s for y in clips for s in audio_segments(y, SR, spec)[0]]
    audio_s = sum(len(s) for s in segs) / SR
    t0 = time.process_time()
    mel = np.concatenate([patches(log_mel(s)) for s in segs])
    t_mel = time.process_time() - t0
    t0 = time.process_time()
    ours.run_patches(mel)
    t_net = time.process_time() - t0
    rows: dict[str, dict[str, float]] = {}
    outs = {}
    for _ in range(passes):  # alternate ours and the baseline; the faster pass of each counts (a shared machine)
        for name, enc in (("ours", ours), ("plain", plain)):
            cpu0, wall0 = time.process_time(), time.perf_counter()
            outs[name] = enc.encode(segs)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            best = rows.get(name)
            if best is None or cpu < best["cpu_s"]:
                rows[name] = {"cpu_s": round(cpu, 3), "wall_s": round(wall, 3), "realtime_factor": round(audio_s / cpu, 1),
                              "realtime_factor_wall": round(audio_s / wall, 1)}
    rows["ours"]["extraction_factor"] = round(audio_s / (decode + rows["ours"]["cpu_s"]), 1)
    rows["plain"]["extraction_factor"] = round(audio_s / (decode + rows["plain"]["cpu_s"]), 1)
    return {
        "audio": f"{len(paths)} q4 dev clips (Ogg Opus), {len(segs)} segments of {spec.length_s:g} s",
        "audio_s": round(audio_s, 1),
        "ours": {**rows["ours"], "what": "blocked eval front-end, batches of 4 patches"},
        "baseline_plain_order": {**rows["plain"], "what": "musicnn's conv -> ReLU -> BN -> max order, batches of 64"},
        "speedup": round(rows["plain"]["cpu_s"] / rows["ours"]["cpu_s"], 2),
        "max_abs_diff": float(np.abs(outs["ours"] - outs["plain"]).max()),
        "breakdown_cpu_s": {"decode_resample": round(decode, 3), "log_mel": round(t_mel, 3), "network": round(t_net, 3)},
        "goal_50x_met": rows["ours"]["realtime_factor"] >= 50,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=None, help="Manifest with audio (default: EMOPIA dev manifest, else render).")
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--encoders", default="lld,musicnn,ast")
    parser.add_argument("--quick", action="store_true", help="2 clips (musicnn: 3 q4 clips), small random AST on 1 segment: under a minute.")
    parser.add_argument("--q4-clips", type=int, default=12, help="q4 clips for the musicnn measurement (--quick: 3).")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from catalog.settings import get_settings

    get_settings.cache_clear()
    n_clips = 2 if args.quick else args.clips
    names = args.encoders.split(",")
    paths, source = clip_paths(args.manifest, n_clips) if set(names) - {"musicnn"} else ([], "")
    result: dict[str, object] = {}
    for name in names:
        if name == "lld":
            from emotion.features.lld import LLDEncoder

            enc, note = LLDEncoder(), "handcrafted 62-d LLD, HSF per segment"
        elif name == "musicnn":
            result["musicnn_q4"] = row_q4 = musicnn_q4(3 if args.quick else args.q4_clips, 1 if args.quick else 2)
            print(f"musicnn on q4: {row_q4}", file=sys.stderr)
            continue
        elif name == "ast":
            enc, note = ast_encoder(small=args.quick)
        else:
            raise SystemExit(f"unknown encoder {name}")
        limits = {"ast": 1} if args.quick else {"ast": 6}
        max_segments = limits.get(name)
        segs, audio_s = segments_for(paths, enc.sample_rate, max_segments)
        row = time_encoder(enc, segs, audio_s)
        row["weights"] = note
        result[name] = row
        print(f"{name}: {row}", file=sys.stderr)
    if "lld" in result:
        from catalog.audio import load

        result["lld_formants_batched_vs_loop"] = formant_compare(load(paths[0], 16000), 16000)
    result["setup"] = {
        "audio": source or "q4 only",
        "clips": len(paths),
        "threads": 1,
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "torch": torch.__version__,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
