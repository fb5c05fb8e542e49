"""Load on a real `bentoml serve`: concurrent single-jet clients, for each batching setting.

    .venv/bin/python bench/serve_load.py [--clients 32] [--seconds 20] [--latency-ms 0 2 10] [--model fcnn_tensor]

For each JET_TAGGER_MAX_LATENCY_MS value it starts the server (models from the BentoML store,
`make models` registers them), runs `--clients` concurrent clients on loopback for `--seconds`,
each POSTing one jet per request to /classify, and prints requests/s, latency percentiles, the
mean jets per ONNX Runtime call (from /metrics), how many answers were 503 or other 5xx, and the
server's RSS at the start and end of the run. Ratios are between settings measured in this one run.
"""

from __future__ import annotations

import argparse
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


def client_loop(url: str, model: str, jets: np.ndarray, stop: float, out: list, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with httpx.Client(timeout=60) as client:
        while time.time() < stop:
            jet = jets[rng.integers(len(jets))]
            start = time.perf_counter()
            try:
                status = client.post(f"{url}/classify", json={"model": model, "jets": [jet.tolist()]}).status_code
            except httpx.HTTPError:
                status = -1  # a dropped connection
            out.append((status, time.perf_counter() - start))


def run_setting(latency_ms: float, args, jets: np.ndarray) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "JET_TAGGER_MAX_LATENCY_MS": str(latency_ms), "BENTOML_DO_NOT_TRACK": "True"}
    proc = start_server(env, port, Path(f"/tmp/serve_load_{port}.log"))
    try:
        httpx.post(f"{url}/classify", json={"model": args.model, "jets": [jets[0].tolist()]}, timeout=60)  # warm-up
        rss_start, (req0, calls0) = rss_mb(proc.pid), batch_stats(url, args.model)
        results: list[tuple[int, float]] = []
        stop = time.time() + args.seconds
        threads = [threading.Thread(target=client_loop, args=(url, args.model, jets, stop, results, i))
                   for i in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        req1, calls1 = batch_stats(url, args.model)
        ready = httpx.get(f"{url}/readyz").status_code == 200
        rss_end = rss_mb(proc.pid)
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
    statuses = np.array([s for s, _ in results])
    latencies = np.array([t for s, t in results if s == 200]) * 1000
    return {"latency_ms": latency_ms, "requests_per_s": len(results) / args.seconds,
            "p50_ms": float(np.percentile(latencies, 50)), "p99_ms": float(np.percentile(latencies, 99)),
            "jets_per_call": (req1 - req0) / max(calls1 - calls0, 1), "n": len(results),
            "503": int((statuses == 503).sum()), "other_5xx": int(((statuses >= 500) & (statuses != 503)).sum()),
            "dropped": int((statuses == -1).sum()), "ready_after": ready, "rss_start_mb": rss_start,
            "rss_end_mb": rss_end}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0, 2, 10])
    parser.add_argument("--model", default="fcnn_tensor")
    parser.add_argument("--jets", type=Path, default=ROOT / "data/simulated/quick-seed42/t.hdf5")
    args = parser.parse_args()
    import h5py

    with h5py.File(args.jets) as f:
        jets = np.asarray(f["particle_features"][:1000])
    rows = [run_setting(ms, args, jets) for ms in args.latency_ms]
    print(f"{args.clients} clients x {args.seconds:g} s, one {args.model} jet per request, {os.cpu_count()} cores")
    print("max_latency_ms  req/s   p50 ms  p99 ms  jets/call  503  other5xx  dropped  ready  RSS MB start->end")
    for r in rows:
        print(f"{r['latency_ms']:>14g} {r['requests_per_s']:>6.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>7.1f} "
              f"{r['jets_per_call']:>10.1f} {r['503']:>4} {r['other_5xx']:>9} {r['dropped']:>8} {str(r['ready_after']):>6}"
              f"  {r['rss_start_mb']:.0f}->{r['rss_end_mb']:.0f}")
    base = rows[0]["requests_per_s"]
    print("throughput relative to the first setting: " + ", ".join(
        f"{r['latency_ms']:g} ms: {r['requests_per_s'] / base:.2f}x" for r in rows))


if __name__ == "__main__":
    main()
