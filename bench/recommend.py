"""Latency of POST /v1/recommendations with a 5 s voice clip on CPU, against the bare in-process inference.

Starts a real uvicorn server on 127.0.0.1 over a small labelled SQLite catalog, then measures
  * baseline: the same clip through SpeechRecognizer.predict_file in this process (decode, features, model; no HTTP,
    no database), and the network alone on precomputed features;
  * sequential: one client, one request at a time (a new listener each time: the first-playlist path);
  * concurrent: 8 client threads at once; requests per second over that phase.
The last stdout line is one JSON object: p50_ms, p95_ms, p99_ms, concurrent_p95_ms, rps, baseline_*.

    python bench/recommend.py --model var/speechdev/model-hsf-crnn [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {
        "p50": round(float(np.percentile(a, 50)), 1),
        "p95": round(float(np.percentile(a, 95)), 1),
        "p99": round(float(np.percentile(a, 99)), 1),
        "mean": round(float(a.mean()), 1),
    }


def five_second_clip(shared: Path, out: Path, seconds: float = 5.0) -> Path:
    """Real EmoDB speech of one speaker concatenated to `seconds` (22.05 kHz WAV as recorded)."""
    import soundfile as sf

    wavs = sorted((shared / "emodb-dev").rglob("03a0*.wav"))
    if not wavs:
        raise SystemExit(f"no EmoDB clips under {shared}/emodb-dev; pass --clip")
    parts, sr, total = [], 0, 0
    for w in wavs:
        y, sr = sf.read(str(w), dtype="float32")
        parts.append(y)
        total += len(y)
        if total >= seconds * sr:
            break
    sf.write(str(out), np.concatenate(parts)[: int(seconds * sr)], sr)
    return out


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(1000 * (time.perf_counter() - t))
    return out


def whisper_table(speech: np.ndarray, n: int) -> dict[str, dict[str, float]]:
    """p50/p95 ms of the Whisper encoder alone on the clip, tiny.en and base, at layer 2 (the default) and all layers.

    Accuracy beside it comes from `musicrec benchmark speech` (README: Whisper tiny.en vs base)."""
    from emotion.features.whisper import WhisperEncoderFeatures
    from emotion.features.whisper_weights import WHISPER_MODELS

    out: dict[str, dict[str, float]] = {}
    print(f"{'Whisper encoder, 1 thread':28s}{'p50 ms':>9s}{'p95 ms':>9s}")
    for model in WHISPER_MODELS:
        for layer in (2, WHISPER_MODELS[model].layers):
            enc = WhisperEncoderFeatures(model, layer)
            enc.frames(speech)
            p = percentiles(timed(lambda enc=enc: enc.frames(speech), n))
            out[f"{model}-L{layer}"] = {"p50": p["p50"], "p95": p["p95"]}
            print(f"{model + ' to layer ' + str(layer):28s}{p['p50']:9.1f}{p['p95']:9.1f}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.environ.get("MUSICREC_SPEECH_MODEL", ""), help="speech model folder")
    ap.add_argument("--clip", type=Path, help="voice clip (default: 5 s of EmoDB speech from --shared)")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--requests", type=int, default=100, help="sequential requests")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--per-client", type=int, default=12, help="requests per concurrent client")
    ap.add_argument("--quick", action="store_true", help="few requests (under a minute)")
    args = ap.parse_args()
    if args.quick:
        args.requests, args.per_client = 20, 3
    if not args.model or not (Path(args.model) / "meta.json").is_file():
        raise SystemExit("pass --model DIR (a folder written by `musicrec train speech`) or set MUSICREC_SPEECH_MODEL")

    import httpx
    import torch

    from catalog import migrate
    from emotion.speech import features as F
    from emotion.speech.artifact import SpeechRecognizer
    from emotion.speech.preprocess import prepare
    from emotion.speech.train import collate, whisper_frames
    from tests.support.recommender_support import Server, make_catalog

    work = Path(tempfile.mkdtemp(prefix="bench-recommend-"))
    clip = args.clip or five_second_clip(args.shared, work / "clip5.wav")
    url = f"sqlite:///{work / 'catalog.db'}"
    migrate.upgrade("head", url)
    make_catalog(url)
    env = {"MUSICREC_DATABASE_URL": url, "MUSICREC_VAR_DIR": str(work / "var"), "MUSICREC_SPEECH_MODEL": str(Path(args.model).resolve())}
    t0 = time.perf_counter()
    server = Server(env).start()
    startup_s = time.perf_counter() - t0
    try:
        data = clip.read_bytes()
        client = httpx.Client(timeout=120)

        def post(listener: str) -> None:
            r = client.post(server.url + "/v1/recommendations", files={"audio": (clip.name, data, "audio/wav")}, data={"listener": listener})
            r.raise_for_status()

        post("warm-up")
        counter = iter(range(10**9))
        seq = timed(lambda: post(f"seq-{next(counter)}"), args.requests)

        def client_run(c: int) -> list[float]:
            own = httpx.Client(timeout=120)
            out = []
            for i in range(args.per_client):
                t = time.perf_counter()
                r = own.post(server.url + "/v1/recommendations", files={"audio": (clip.name, data, "audio/wav")}, data={"listener": f"conc-{c}-{i}"})
                r.raise_for_status()
                out.append(1000 * (time.perf_counter() - t))
            return out

        t = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            conc = [x for lst in pool.map(client_run, range(args.concurrency)) for x in lst]
        wall = time.perf_counter() - t
    finally:
        server.stop()

    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1, user_api="blas")  # as the server does (recommender.api.app.load_recognizer)
    model = SpeechRecognizer(args.model)
    model.warm_up()
    n_base = max(10, args.requests // 2)
    cpu0 = time.process_time()
    base = timed(lambda: model.predict_file(clip), n_base)
    cpu_ms = 1000 * (time.process_time() - cpu0) / n_base
    speech = prepare(clip)
    raw = F.extract(speech)
    if model.whisper is not None:
        raw.whisper = whisper_frames(speech, model.whisper)
    batch = collate([model.normaliser.apply(raw)])
    feats = raw
    with torch.inference_mode():
        net = timed(lambda: batch.run(model.model), n_base)
    s, c, b, m = percentiles(seq), percentiles(conc), percentiles(base), percentiles(net)
    print(f"{'':28s}{'p50 ms':>9s}{'p95 ms':>9s}{'p99 ms':>9s}")
    for name, p in (("HTTP sequential", s), (f"HTTP {args.concurrency} concurrent", c), ("bare inference (no HTTP/DB)", b), ("network only", m)):
        print(f"{name:28s}{p['p50']:9.1f}{p['p95']:9.1f}{p['p99']:9.1f}")
    whisper_ms = whisper_table(speech, max(5, n_base // 2))
    result = {
        "p50_ms": s["p50"], "p95_ms": s["p95"], "p99_ms": s["p99"],
        "concurrent_p50_ms": c["p50"], "concurrent_p95_ms": c["p95"], "concurrent_p99_ms": c["p99"],
        "rps": round(len(conc) / wall, 2),
        "sequential_rps": round(1000 / s["mean"], 2),
        "baseline_p50_ms": b["p50"], "baseline_p95_ms": b["p95"], "network_p50_ms": m["p50"], "baseline_cpu_ms": round(cpu_ms, 1),
        "http_overhead_p50_ms": round(s["p50"] - b["p50"], 1),
        "requests": len(seq), "concurrent_requests": len(conc), "concurrency": args.concurrency,
        "clip_s": round(len(prepare(clip)) / 16000, 2), "segments": feats.segments, "model": model.name,
        "whisper_ms": whisper_ms,
        "server_startup_s": round(startup_s, 1), "cpus": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 2),
        "machine": platform.processor() or platform.machine(), "quick": args.quick,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
