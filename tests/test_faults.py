"""Faults: tampered and truncated models, a killed export, overload, and a host without CUDA.

A bad model is refused at load with one clear log line while the others are served; a killed
export leaves the previous model intact and nothing half-written that serving would pick up;
past capacity the server sheds load with 503 + Retry-After and recovers.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from serving.artifacts import ArtifactError, sha256_file, verified_model
from serving.store import register_all

ROOT = Path(__file__).resolve().parents[1]
GOOD = [[0.1, 0.0, 0.7], [-0.05, 0.02, 0.2]]


def _tamper(onnx: Path) -> None:
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))


def _truncate(onnx: Path) -> None:
    onnx.write_bytes(onnx.read_bytes()[: onnx.stat().st_size // 3])


@pytest.mark.parametrize("damage", [_tamper, _truncate, Path.unlink])
def test_damaged_model_files_are_refused(tiny_models, tmp_path, damage):
    model_dir = shutil.copytree(tiny_models / "cnn", tmp_path / "cnn")
    damage(model_dir / "model.onnx")
    with pytest.raises(ArtifactError, match="sha256|missing ONNX file"):
        verified_model(model_dir)


def test_only_model_folders_are_registered(tiny_models, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(tiny_models / "cnn", models / "cnn")
    shutil.copytree(tiny_models / "densenet", models / ".densenet.k2j4l1")  # a killed export's staging
    shutil.copytree(tiny_models / "fcnn_image", models / ".fcnn_image.old")
    assert [t.split(":")[0] for t in register_all(models)] == ["cnn"]
    shutil.copytree(tiny_models / "fcnn_image", models / "fcnn_tensor")  # a card naming another model
    with pytest.raises(ArtifactError, match="names the model 'fcnn_image'"):
        register_all(models)


@pytest.mark.slow
def test_killed_export_leaves_the_previous_model_intact(tiny_models, sim_dir, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(tiny_models / "fcnn_tensor", models / "fcnn_tensor")
    before = sha256_file(models / "fcnn_tensor" / "model.onnx")
    command = [sys.executable, "-m", "training", "build", "--profile", "tiny", "--data", str(sim_dir),
               "--models", "fcnn_tensor", "--models-dir", str(models), "--runs-dir", str(tmp_path / "runs"),
               "--force", "--no-register"]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not list(models.glob(".fcnn_tensor.*")):
        time.sleep(0.005)
    staging = list(models.glob(".fcnn_tensor.*"))
    proc.send_signal(signal.SIGKILL)  # in the middle of writing the new export
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and staging, proc.stderr.read().decode()[-2000:]
    card, _ = verified_model(models / "fcnn_tensor")  # the old model, whole
    assert sha256_file(models / "fcnn_tensor" / "model.onnx") == before == card.sha256
    assert [t.split(":")[0] for t in register_all(models)] == ["fcnn_tensor"]  # the leftover is ignored
    rerun = subprocess.run(command[:-2] + ["--no-register"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "left by an export that did not finish" in rerun.stderr and not list(models.glob(".fcnn_tensor.*"))  # cleaned up on the next build


def test_a_host_without_cuda_libraries_runs_on_cpu_quietly(tiny_models, monkeypatch, capfd):
    """A driver and a GPU, but the CUDA 13 libraries onnxruntime-gpu needs are missing."""
    import ctypes

    import serving.runtime as runtime

    class Driver:
        def cuInit(self, flags):
            return 0

        def cuDeviceGetCount(self, count):
            ctypes.cast(count, ctypes.POINTER(ctypes.c_int))[0] = 1
            return 0

    def fake_cdll(name, mode=0):
        if name == "libcuda.so.1":
            return Driver()
        raise OSError(f"{Path(name).name}: libcudart.so.13: cannot open shared object file")

    monkeypatch.setattr(runtime.ctypes, "CDLL", fake_cdll)
    runtime.cuda_status.cache_clear()
    try:
        usable, reason = runtime.cuda_status()
        assert not usable and "CUDA libraries for onnxruntime-gpu" in reason and "libcudart.so.13" in reason
        model = runtime.OnnxModel.load(tiny_models / "cnn", device="auto")
        assert model.provider == "CPUExecutionProvider"
        assert model.predict(np.zeros((1, 30, 3), np.float32)).shape == (1, 5)
        with pytest.raises(RuntimeError, match="device=cuda requested but CUDA libraries"):
            runtime.OnnxModel.load(tiny_models / "cnn", device="cuda")
    finally:
        runtime.cuda_status.cache_clear()
    out, err = capfd.readouterr()
    assert "onnxruntime" not in (out + err).lower(), out + err  # no provider error noise


def test_overload_sheds_with_503_and_retry_after_then_recovers(tiny_models, monkeypatch):
    from serving.batching import BatchingConfig
    from serving.service import JetTagger

    service = JetTagger()
    batcher = service.taggers["densenet"].batcher
    monkeypatch.setattr(batcher, "config", BatchingConfig(max_batch_size=64, max_queued_jets=100))
    original = batcher.infer
    monkeypatch.setattr(batcher, "infer", lambda x: (time.sleep(0.02), original(x))[1])

    async def flood():
        return await asyncio.gather(*(service.classify(jets=[GOOD] * 20, model="densenet") for _ in range(40)))

    responses = asyncio.run(flood())
    shed = [r for r in responses if getattr(r, "status_code", 200) == 503]
    served = [r for r in responses if hasattr(r, "probabilities")]
    assert shed and served and len(shed) + len(served) == 40
    assert all(r.headers["retry-after"] == "1" and b"queued" in r.body for r in shed)
    recovered = asyncio.run(service.classify(jets=[GOOD], model="densenet"))
    assert len(recovered.probabilities) == 1


@pytest.fixture(scope="module")
def damaged_server(tiny_models, start_server, tmp_path_factory):
    """A real server on a copy of the model store where cnn is tampered with and fcnn_image truncated."""
    import bentoml

    home = tmp_path_factory.mktemp("damaged-home")
    shutil.copytree(Path(bentoml.models.get("cnn:latest").path).parents[1], home / "models", symlinks=True)
    _tamper(Path(home / "models" / "cnn" / bentoml.models.get("cnn:latest").tag.version / "model.onnx"))
    version = bentoml.models.get("fcnn_image:latest").tag.version
    _truncate(home / "models" / "fcnn_image" / version / "model.onnx")
    log = home / "server.log"
    return start_server(log, BENTOML_HOME=str(home), JET_TAGGER_MAX_QUEUED_JETS="300"), log


@pytest.mark.slow
def test_server_refuses_damaged_models_and_serves_the_rest(damaged_server):
    url, log = damaged_server
    assert httpx.get(f"{url}/readyz").status_code == 200
    body = httpx.get(f"{url}/models").json()
    assert sorted(m["name"] for m in body["models"]) == ["densenet", "fcnn_tensor"]
    assert set(body["unavailable"]) == {"cnn", "fcnn_image"}
    assert all("does not match the card" in reason for reason in body["unavailable"].values())
    r = httpx.post(f"{url}/classify", json={"model": "cnn", "jets": [GOOD]})
    assert r.status_code == 503 and "model 'cnn' is not available" in r.json()["error"] and "sha256" in r.json()["error"]
    r = httpx.get(f"{url}/v2/models/fcnn_image/ready")
    assert r.status_code == 503 and r.json()["ready"] is False
    assert httpx.post(f"{url}/v2/models/cnn/infer", json={}).status_code == 503
    r = httpx.post(f"{url}/classify", json={"model": "fcnn_tensor", "jets": [GOOD]})
    assert r.status_code == 200
    text = log.read_text()
    refused = [line for line in text.splitlines() if "not serving" in line]
    assert len(refused) == 2 and all("refusing to load it" in line for line in refused), refused
    assert "Traceback" not in text
    # no GPU here: one line says so, and ONNX Runtime's own CUDA errors are not in the log
    assert sum("ONNX Runtime device=auto: CPU only" in line for line in text.splitlines()) == 1
    assert body["cuda"]["usable"] is False and all(m["provider"] == "CPUExecutionProvider" for m in body["models"])
    assert "libonnxruntime_providers_cuda" not in text and "Failed to create CUDAExecutionProvider" not in text


@pytest.mark.slow
def test_real_server_sheds_overload_and_recovers(damaged_server):
    url, _ = damaged_server
    jets = np.random.default_rng(0).uniform(0.01, 0.3, (200, 30, 3)).tolist()

    async def flood():
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*(client.post(f"{url}/classify", json={"model": "densenet", "jets": jets})
                                          for _ in range(48)))

    statuses = [r.status_code for r in asyncio.run(flood())]
    assert set(statuses) <= {200, 503} and 503 in statuses and 200 in statuses, statuses
    assert httpx.post(f"{url}/classify", json={"model": "densenet", "jets": jets}).status_code == 200
    assert httpx.get(f"{url}/readyz").status_code == 200


def test_bentoml_request_timers_are_cancelled_and_still_time_out():
    """Each request's BentoML timeout timer must go when the request is done (else RSS climbs)."""
    from bentoml._internal.server.http.traffic import TimeoutMiddleware

    import serving.service  # noqa: F401  (applies serving.limits.cancel_bentoml_request_timers)

    async def app(scope, receive, send):
        await asyncio.sleep(scope["delay"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def call(delay: float, timeout: float) -> tuple[list, list]:
        sent = []

        async def send(message):
            sent.append(message)

        await TimeoutMiddleware(app, timeout=timeout)({"type": "http", "delay": delay}, None, send)
        live = [h for h in asyncio.get_running_loop()._scheduled if not h.cancelled()]
        return sent, live

    sent, live = asyncio.run(call(0.0, timeout=60))
    assert sent[0]["status"] == 200 and not live  # no timer left behind for the next 60 s
    sent, _ = asyncio.run(call(1.0, timeout=0.05))
    assert sent[0]["status"] == 504
