"""Peak server memory under the hostile-upload set, against the old decode path (whole file, every channel, float32).

Starts a real uvicorn server on 127.0.0.1 (speech model: --model, else a tiny hsf-crnn trained on 8 EmoDB clips),
reads its peak RSS (VmHWM) after a normal request, then sends the hostile set `--parallel` at a time and reads it
again. Hostile set: 8 channels at 384 kHz (FLAC, the issue's 394 MB case), 8 channels at 96 kHz for 10 s (over the
decode budget), a 10-minute WebM Opus without a duration in its header (decode capped), a WAV whose header claims
hours, a 30 MB chunked upload without Content-Length. Baseline: peak allocations (tracemalloc) of `soundfile.read` of the
same files (what the old `catalog.audio.load` did before mixing to mono). The last stdout line is one JSON object.

    python bench/hostile_uploads.py [--model DIR] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("MUSICREC_SHARED_DATA", REPO.parent / "shared" / "data"))


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def hostile_set(out: Path, quick: bool) -> dict[str, Path]:
    import soundfile as sf

    files: dict[str, Path] = {}
    seconds = 8 if quick else 32
    wide = np.zeros((384000 * seconds, 8), np.int16)
    wide[::997] = 3  # sparse clicks: compresses to a few MB like the file
    files["flac_8ch_384k"] = out / "wide.flac"
    sf.write(files["flac_8ch_384k"], wide, 384000, subtype="PCM_16", format="FLAC")
    del wide
    files["flac_8ch_96k_10s"] = out / "many.flac"
    sf.write(files["flac_8ch_96k_10s"], np.zeros((96000 * 10, 8), np.int16), 96000, subtype="PCM_16", format="FLAC")
    files["webm_10min_no_duration"] = out / "long.webm"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=220:sample_rate=48000", "-t", "120" if quick else "600",
                    "-c:a", "libopus", "-b:a", "6k", "-f", "webm", "-live", "1", str(files["webm_10min_no_duration"])], check=True, timeout=300)
    lying = out / "lying.wav"  # header: 8 ch, 192 kHz, data chunk of 4 GB; body: 1 s
    body = (np.random.default_rng(0).standard_normal(192000 * 8) * 3000).astype("<i2").tobytes()
    header = b"RIFF" + struct.pack("<I", 0xFFFFFFF0) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 8, 192000, 192000 * 16, 16, 16)
    lying.write_bytes(header + b"data" + struct.pack("<I", 0xFFFFFFE0) + body)
    files["wav_header_claims_hours"] = lying
    return files


def traced_peak_mb(fn: Callable[[], object]) -> float:
    """Peak of Python/numpy allocations (tracemalloc) while `fn` runs; errors are part of the measurement."""
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
    except Exception:  # noqa: BLE001 - a refusal is the point; the peak up to it is what we measure
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return round(peak / 2**20, 1)


def baseline_peak_mb(path: Path) -> float:
    """The old decode: soundfile.read of every channel at the file's rate as float32 (before mixing to mono)."""
    import soundfile as sf

    return traced_peak_mb(lambda: sf.read(str(path), dtype="float32", always_2d=True))


def ours_peak_mb(path: Path) -> float:
    """The bounded path of the API (probe, budget check, capped block-wise decode)."""
    from emotion.speech.preprocess import prepare
    from recommender.api.config import ApiConfig

    return traced_peak_mb(lambda: prepare(path, limits=ApiConfig.from_settings().limits))


def chunked_body(boundary: str, megabytes: int) -> Iterator[bytes]:
    yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"listener\"\r\n\r\nbench\r\n"
           f"--{boundary}\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"big.wav\"\r\n\r\n").encode()
    for _ in range(megabytes):
        yield bytes(1024 * 1024)
    yield f"\r\n--{boundary}--\r\n".encode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=os.environ.get("MUSICREC_SPEECH_MODEL", ""))
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--quick", action="store_true", help="shorter hostile files (under a minute)")
    args = ap.parse_args()
    import httpx

    from catalog import migrate
    from tests.support.recommender_support import Server, emodb_clips, make_catalog, train_tiny_model

    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
        work = Path(tmp)
        model = Path(args.model) if args.model else train_tiny_model(SHARED, work / "model")
        url = f"sqlite:///{work / 'catalog.db'}"
        os.environ["MUSICREC_DATABASE_URL"] = url
        migrate.upgrade("head", url)
        make_catalog(url)
        files = hostile_set(work, args.quick)
        baseline = {name: baseline_peak_mb(p) for name, p in files.items()}
        ours = {name: ours_peak_mb(p) for name, p in files.items()}
        env = {"MUSICREC_DATABASE_URL": url, "MUSICREC_VAR_DIR": str(work / "var"), "MUSICREC_SPEECH_MODEL": str(model)}
        server = Server(env).start()
        assert server.proc is not None
        try:
            clip = emodb_clips(SHARED, per_label=1)[0][0]
            ok = httpx.post(server.url + "/v1/recommendations", files={"audio": (clip.name, clip.read_bytes())}, data={"listener": "warm"}, timeout=120)
            assert ok.status_code == 200, ok.text
            before = vm_hwm_mb(server.proc.pid)

            def send(item: tuple[str, Path | None]) -> tuple[str, int, float]:
                name, path = item
                t0 = time.monotonic()
                try:
                    if path is None:
                        r = httpx.post(server.url + "/v1/recommendations", content=chunked_body("B0undary", 30),
                                       headers={"Content-Type": "multipart/form-data; boundary=B0undary"}, timeout=300)
                    else:
                        r = httpx.post(server.url + "/v1/recommendations", files={"audio": (path.name, path.read_bytes())},
                                       data={"listener": f"bench-{name}"}, timeout=300)
                    status = r.status_code
                except httpx.HTTPError:
                    status = 413  # the server hung up on the over-limit body
                return name, status, round(time.monotonic() - t0, 2)

            jobs: list[tuple[str, Path | None]] = [*files.items(), ("chunked_30mb", None)]
            with ThreadPoolExecutor(args.parallel) as pool:
                answers = list(pool.map(send, jobs * args.parallel))
            after = vm_hwm_mb(server.proc.pid)
        finally:
            server.stop()
    statuses = {name: sorted({s for n, s, _ in answers if n == name}) for name, _ in jobs}
    print(json.dumps(statuses), file=sys.stderr)
    print(json.dumps({
        "server_peak_rss_mb_warm": round(before, 1),
        "server_peak_rss_mb_after_hostile": round(after, 1),
        "server_peak_growth_mb": round(after - before, 1),
        "parallel": args.parallel,
        "answers": statuses,
        "slowest_answer_s": max(t for _, _, t in answers),
        "baseline_decode_peak_alloc_mb": baseline,
        "ours_decode_peak_alloc_mb": ours,
        "quick": args.quick,
    }))


if __name__ == "__main__":
    main()
