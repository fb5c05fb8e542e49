"""Shared fixtures: simulated jets (train and held-out), and tiny trained models in a private store.

The BentoML home is a temporary folder so tests never touch (or depend on) the user's model store,
and a BentoModel missing from it can never send BentoML off to BentoCloud.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="jet-tagger-bentoml-")
os.environ["BENTOML_DO_NOT_TRACK"] = "True"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TRAIN_SEED, HELDOUT_SEED = 11, 12345  # different seeds: held-out jets never overlap training jets


@pytest.fixture(scope="session")
def sim_dir(tmp_path_factory) -> Path:
    """400 simulated jets per class, JetNet layout."""
    from training.simulate import simulate

    out = tmp_path_factory.mktemp("sim")
    simulate(out, jets_per_class=400, seed=TRAIN_SEED, workers=2, progress=False)
    return out


@pytest.fixture(scope="session")
def heldout_dir(tmp_path_factory) -> Path:
    """100 simulated jets per class from an independent seed, for scoring trained models."""
    from training.simulate import simulate

    out = tmp_path_factory.mktemp("heldout")
    simulate(out, jets_per_class=100, seed=HELDOUT_SEED, workers=2, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_models(sim_dir, tmp_path_factory) -> Path:
    """All four registered models, trained briefly (tiny profile), exported and in the store."""
    from training.build import build

    root = tmp_path_factory.mktemp("build")
    models_dir = root / "models"
    build("tiny", data_dir=sim_dir, models_dir=models_dir, runs_dir=root / "runs", register=True)
    return models_dir


@pytest.fixture(scope="session")
def asgi_client(tiny_models):
    """The service's ASGI app in-process. One per test session: each app start registers BentoML's
    Prometheus metrics, and a second registration in the same process fails."""
    from starlette.testclient import TestClient

    from serving.service import JetTagger

    with TestClient(JetTagger.to_asgi()) as client:
        yield client


@pytest.fixture(scope="session")
def start_server():
    """start_server(log, **env) -> URL of a real `bentoml serve` (this repo, loopback, a free port),
    ready; its output goes to `log`. The servers stop at the end of the test session."""
    import httpx

    procs = []

    def start(log: Path, **env: str) -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bentoml", "serve", "--host", "127.0.0.1", "--port", str(port)],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env}, start_new_session=True)
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while time.time() < deadline:
            assert proc.poll() is None, f"bentoml serve exited:\n{log.read_text()[-3000:]}"
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        pytest.fail(f"server not ready after 120 s:\n{log.read_text()[-3000:]}")

    yield start
    for proc in procs:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


@pytest.fixture(scope="session")
def server_log(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("server") / "server.log"


@pytest.fixture(scope="session")
def server(tiny_models, start_server, server_log) -> str:
    """The URL of a real `bentoml serve` on the tiny models, shared by the end-to-end tests."""
    return start_server(server_log)
