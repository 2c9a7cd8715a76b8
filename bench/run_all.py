"""Run every benchmark in bench/ (each prints one JSON object as its last line) and write one JSON report.

    python bench/run_all.py [--quick] [--only crawl,topics] [--out var/bench/report.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
# Benchmarks that compare ours against a baseline in one run; topics_emopia.py is a real-data study run on its own.
NAMES = ("features", "crawl", "emotion", "topics", "pipeline", "recommend", "hostile_uploads")


def machine() -> dict[str, object]:
    import os

    info: dict[str, object] = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    try:
        info["load_average"] = os.getloadavg()
    except OSError:
        pass
    return info


def last_json(text: str) -> dict[str, object] | None:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                return None
    return None


def run_one(name: str, quick: bool, timeout: float) -> dict[str, object]:
    cmd = [sys.executable, str(BENCH / f"{name}.py"), *(["--quick"] if quick else [])]
    print(f"==> bench/{name}.py{' --quick' if quick else ''}", flush=True)
    started = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=BENCH.parent, stdout=subprocess.PIPE, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s", "seconds": round(time.monotonic() - started, 1)}
    result = last_json(proc.stdout)
    seconds = round(time.monotonic() - started, 1)
    if proc.returncode != 0 or result is None:
        return {
            "ok": False,
            "error": f"exit code {proc.returncode}" + ("" if result else ", no JSON last line"),
            "tail": proc.stdout[-1500:],
            "seconds": seconds,
        }
    print(json.dumps(result), flush=True)
    return {"ok": True, "seconds": seconds, "result": result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="Small inputs: each benchmark finishes within about a minute.")
    parser.add_argument("--only", default="", help="Comma-separated subset of: " + ", ".join(NAMES))
    parser.add_argument("--out", type=Path, default=Path("var/bench/report.json"))
    parser.add_argument("--timeout", type=float, default=3600.0, help="Seconds allowed for each benchmark.")
    args = parser.parse_args(argv)
    names = [n for n in (args.only.split(",") if args.only else NAMES) if n]
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    report = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine(),
        "benchmarks": {name: run_one(name, args.quick, args.timeout) for name in names},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    failed = [n for n, r in report["benchmarks"].items() if not r["ok"]]
    print(f"report written to {args.out}" + (f"; failed: {', '.join(failed)}" if failed else ""), file=sys.stderr)
    print(json.dumps({"report": str(args.out), "ok": not failed, "failed": failed}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
