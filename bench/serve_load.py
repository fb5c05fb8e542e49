"""Load on a real `bentoml serve`: concurrent single-jet clients, for each batching setting.

    .venv/bin/python bench/serve_load.py [--clients 32] [--seconds 20] [--latency-ms 0 2 10] [--model fcnn_tensor]
    .venv/bin/python bench/serve_load.py --latency-ms 2 --bad-fraction 0.3 --seconds 40   # the soak test

For each JET_TAGGER_MAX_LATENCY_MS value it starts the server (models from the BentoML store,
`make models` registers them), runs `--clients` concurrent clients on loopback for `--seconds`,
each POSTing one jet per request to /classify (a `--bad-fraction` of them malformed in one of
several ways, which must be answered 4xx), and prints requests/s, latency percentiles of the good
requests, the mean jets per ONNX Runtime call (from /metrics), how many answers were 503, other
5xx, wrong (a bad request not answered 4xx, or a good one not 200) or dropped connections, whether
the server was ready afterwards, and its RSS after `--warmup` seconds of load and at the end.
Ratios are between settings measured in this one run. `--json FILE` also writes the rows.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict, port: int, log: Path) -> subprocess.Popen:
    out = open(log, "w")
    proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    sys.exit("server not ready after 180 s")


def rss_mb(pid: int) -> float:
    """Resident memory of the server process tree (BentoML runs a supervisor and workers)."""
    total = 0
    for line in subprocess.run(["ps", "-o", "rss=", "--ppid", str(pid), "-p", str(pid)],
                               capture_output=True, text=True).stdout.split():
        total += int(line)
    return total / 1024


def batch_stats(url: str, model: str) -> tuple[float, float]:
    """(requests, ONNX Runtime calls) so far, from the jet_tagger_batch_requests histogram."""
    values = {}
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        for suffix in ("_sum", "_count"):
            if line.startswith(f"jet_tagger_batch_requests{suffix}{{") and f'model="{model}"' in line:
                values[suffix] = values.get(suffix, 0.0) + float(line.rsplit(" ", 1)[1])
    return values.get("_sum", 0.0), values.get("_count", 0.0)


# Malformed /classify bodies: each must get a 4xx, never a 5xx or a dropped connection.
BAD_BODIES = [
    b'{"jets": [[[0.1, 0.2]]]}', b'{"jets": [[[NaN, 0.1, 0.5]]]}', b'{"jets": [[[0.1, 0.1, -0.5]]]}',
    b'{"jets": [[[0.1, 0.1, 0.5]]], "model": "../etc"}', b'{"jets": [[]]}', b'{"jets": "x"}',
    b'{"jets": [[[0.1, 0.1, 0.5', b'{"jets": [[[0.1, "a", 0.5]]]}', b'{"jets": [[[0, 0, 0]]]}',
    b'{"jets": [[[0.1, 0.1, 0.5, 0.5]]]}', b"[]", b'{"jets": [[[1e39, 0.1, 0.5]]]}',
]


def client_loop(url: str, model: str, jets: np.ndarray, stop: float, out: list, seed: int,
                bad_fraction: float = 0.0) -> None:
    """(status, seconds, bad) per request until `stop`; status -1 is a dropped connection."""
    rng = np.random.default_rng(seed)
    headers = {"content-type": "application/json"}
    with httpx.Client(timeout=60) as client:
        while time.time() < stop:
            bad = rng.random() < bad_fraction
            if bad:
                body = BAD_BODIES[rng.integers(len(BAD_BODIES))]
            else:
                body = json.dumps({"model": model, "jets": [jets[rng.integers(len(jets))].tolist()]}).encode()
            start = time.perf_counter()
            try:
                status = client.post(f"{url}/classify", content=body, headers=headers).status_code
            except httpx.HTTPError:
                status = -1
            out.append((status, time.perf_counter() - start, bad))


def run_setting(latency_ms: float, args, jets: np.ndarray) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "JET_TAGGER_MAX_LATENCY_MS": str(latency_ms), "BENTOML_DO_NOT_TRACK": "True"}
    proc = start_server(env, port, Path(f"/tmp/serve_load_{port}.log"))
    try:
        httpx.post(f"{url}/classify", json={"model": args.model, "jets": [jets[0].tolist()]}, timeout=60)  # warm-up
        req0, calls0 = batch_stats(url, args.model)
        results: list[tuple[int, float, bool]] = []
        stop = time.time() + args.warmup + args.seconds
        threads = [threading.Thread(target=client_loop, args=(url, args.model, jets, stop, results, i,
                                                              args.bad_fraction))
                   for i in range(args.clients)]
        for t in threads:
            t.start()
        time.sleep(args.warmup)  # RSS after the allocator and caches have settled under this load
        rss_start = rss_mb(proc.pid)
        for t in threads:
            t.join()
        req1, calls1 = batch_stats(url, args.model)
        ready = httpx.get(f"{url}/readyz").status_code == 200
        rss_end = rss_mb(proc.pid)
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
    return summarize(results, latency_ms, args.warmup + args.seconds, (req1 - req0) / max(calls1 - calls0, 1),
                     ready, rss_start, rss_end)


def summarize(results: list, latency_ms: float, seconds: float, jets_per_call: float, ready: bool,
              rss_start: float, rss_end: float) -> dict:
    statuses = np.array([s for s, _, _ in results])
    bad = np.array([b for _, _, b in results], dtype=bool)
    latencies = np.array([t for s, t, b in results if s == 200 and not b]) * 1000
    wrong = (bad & ((statuses < 400) | (statuses >= 500))) | (~bad & (statuses != 200))
    return {"latency_ms": latency_ms, "requests_per_s": len(results) / seconds, "n": len(results),
            "bad_requests": int(bad.sum()),
            "p50_ms": float(np.percentile(latencies, 50)), "p99_ms": float(np.percentile(latencies, 99)),
            "jets_per_call": jets_per_call, "503": int((statuses == 503).sum()),
            "other_5xx": int(((statuses >= 500) & (statuses != 503)).sum()), "wrong": int(wrong.sum()),
            "dropped": int((statuses == -1).sum()), "ready_after": ready, "rss_start_mb": rss_start,
            "rss_end_mb": rss_end, "rss_growth": rss_end / rss_start - 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0, 2, 10])
    parser.add_argument("--model", default="fcnn_tensor")
    parser.add_argument("--jets", type=Path, default=ROOT / "data/simulated/quick-seed42/t.hdf5")
    parser.add_argument("--bad-fraction", type=float, default=0.0, help="share of malformed requests")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load before the first RSS reading")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args()
    import h5py

    with h5py.File(args.jets) as f:
        jets = np.asarray(f["particle_features"][:1000])
    rows = [run_setting(ms, args, jets) for ms in args.latency_ms]
    print(f"{args.clients} clients x {args.warmup + args.seconds:g} s, one {args.model} jet per request, "
          f"{args.bad_fraction:.0%} malformed, {os.cpu_count()} cores")
    print("max_latency_ms  req/s   p50 ms  p99 ms  jets/call  503  other5xx  wrong  dropped  ready  RSS MB after warm-up->end")
    for r in rows:
        print(f"{r['latency_ms']:>14g} {r['requests_per_s']:>6.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>7.1f} "
              f"{r['jets_per_call']:>10.1f} {r['503']:>4} {r['other_5xx']:>9} {r['wrong']:>6} {r['dropped']:>8} "
              f"{str(r['ready_after']):>6}  {r['rss_start_mb']:.0f}->{r['rss_end_mb']:.0f} ({r['rss_growth']:+.1%})")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    base = rows[0]["requests_per_s"]
    print("throughput relative to the first setting: " + ", ".join(
        f"{r['latency_ms']:g} ms: {r['requests_per_s'] / base:.2f}x" for r in rows))


if __name__ == "__main__":
    main()
