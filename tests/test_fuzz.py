"""Fuzzing and load against a real `bentoml serve`: no input and no load makes a 5xx.

schemathesis sends schema-conforming (positive) and schema-violating (negative) requests, a
bounded number per operation, built from the OpenAPI schema the server publishes; the soak test
runs bench/serve_load.py for a bounded time with good and malformed requests mixed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = 40  # per operation and generation mode


def test_schemathesis_finds_no_server_errors(server):
    import schemathesis
    from hypothesis.errors import Unsatisfiable
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation.modes import GenerationMode

    schema = schemathesis.openapi.from_url(f"{server}/docs.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    tried: dict[tuple[str, str], int] = {}
    for operation in operations:
        name = f"{operation.method.upper()} {operation.path}"
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @settings(max_examples=EXAMPLES, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case):
                tried[name, mode.value] = tried.get((name, mode.value), 0) + 1
                case.call_and_validate(base_url=server, checks=[not_a_server_error], timeout=60)

            try:
                check()
            except Unsatisfiable:
                # an operation without inputs (GET /readyz) has no request that violates its schema
                assert mode is GenerationMode.NEGATIVE, name
    assert tried.get(("POST /classify", "positive"), 0) >= EXAMPLES // 2, tried
    assert tried.get(("POST /classify", "negative"), 0) >= EXAMPLES // 2, tried
    assert httpx.get(f"{server}/readyz").status_code == 200


def test_soak_with_good_and_bad_requests(tiny_models, heldout_dir, tmp_path):
    """bench/serve_load.py, bounded: 32 clients for 25 s on loopback, 30 % of requests malformed."""
    out = tmp_path / "load.json"
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "serve_load.py"), "--clients", "32", "--warmup", "5",
                          "--seconds", "20", "--latency-ms", "2", "--bad-fraction", "0.3", "--model", "cnn",
                          "--jets", str(heldout_dir / "t.hdf5"), "--json", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    (row,) = json.loads(out.read_text())
    assert row["n"] > 500 and row["bad_requests"] > 100, row  # the load was real
    assert row["503"] == row["other_5xx"] == row["wrong"] == row["dropped"] == 0, row
    assert row["ready_after"] and row["rss_growth"] < 0.10, row
