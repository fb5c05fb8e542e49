"""End to end: a real `bentoml serve` subprocess on freshly exported models, and batch scoring."""

from __future__ import annotations

import math
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from serving import score
from training.data import read_jetnet

pytestmark = pytest.mark.slow


def test_served_models_classify_heldout_jets(server, heldout_dir):
    particles, jets = read_jetnet(heldout_dir, seed=0)
    truth = jets[:, 0].astype(int)
    models = httpx.get(f"{server}/models").json()["models"]
    assert {m["name"] for m in models} == {"fcnn_tensor", "fcnn_image", "cnn", "densenet"}
    for name in ("fcnn_tensor", "fcnn_image", "cnn", "densenet"):
        r = httpx.post(f"{server}/classify", json={"model": name, "jets": particles.tolist()}, timeout=60)
        assert r.status_code == 200, r.text
        body = r.json()
        probs = np.array(body["probabilities"])
        assert probs.shape == (len(particles), 5) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
        assert body["labels"] == [body["classes"][i] for i in probs.argmax(axis=1)]
        if name == "fcnn_tensor":
            # above chance: more than 3 standard deviations over 1/5 for this many jets
            accuracy = float((probs.argmax(axis=1) == truth).mean())
            assert accuracy > 0.2 + 3 * math.sqrt(0.2 * 0.8 / len(truth)), accuracy


def test_bad_requests_do_not_hurt_the_server(server):
    for body in (b"{", b'{"jets": [[[1, 2]]]}', b'{"jets": [[[1, 2, -3]]]}', b'{"jets": 5, "model": "x"}'):
        r = httpx.post(f"{server}/classify", content=body, headers={"content-type": "application/json"})
        assert 400 <= r.status_code < 500 and r.json()["error"], r.text
    assert httpx.get(f"{server}/readyz").status_code == 200
    assert httpx.post(f"{server}/classify", json={"jets": [[[0.1, 0.0, 0.7]]]}).status_code == 200
    metrics = httpx.get(f"{server}/metrics").text
    assert "jet_tagger_batch_jets_count" in metrics and "bentoml_service_request_total" in metrics


def test_per_model_metrics_request_ids_and_access_log(server, server_log):
    import json

    r = httpx.post(f"{server}/classify", json={"model": "densenet", "jets": [[[0.1, 0.0, 0.7]]] * 2},
                   headers={"X-Request-ID": "e2e-densenet-1"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "e2e-densenet-1"
    metrics = httpx.get(f"{server}/metrics").text
    ok = [line for line in metrics.splitlines() if line.startswith("jet_tagger_requests_total{")
          and 'model="densenet"' in line and 'outcome="ok"' in line and 'endpoint="classify"' in line]
    assert ok and float(ok[0].rsplit(" ", 1)[1]) >= 1, metrics[-2000:]
    assert _histogram(metrics, "jet_tagger_request_seconds", "densenet")[1] >= 1
    deadline = time.time() + 10  # the log line is written as the response goes out
    while time.time() < deadline and "e2e-densenet-1" not in server_log.read_text():
        time.sleep(0.2)
    line = next(line for line in server_log.read_text().splitlines() if "e2e-densenet-1" in line)
    # BentoML's log format puts a prefix before the message and its trace ids after it
    record, _ = json.JSONDecoder().raw_decode(line, line.index("{"))
    assert record["model"] == "densenet" and record["jets"] == 2 and record["status"] == 200


def test_batch_scoring_in_process_and_through_the_server(server, heldout_dir, tiny_models, tmp_path, capsys):
    local, remote = tmp_path / "local.csv", tmp_path / "remote.csv"
    assert score.main([str(heldout_dir), "--model", "cnn", "--models-dir", str(tiny_models),
                       "--output", str(local), "--chunk", "128"]) == 0
    printed = capsys.readouterr().out
    assert "accuracy:" in printed and "truth \\ predicted" in printed
    assert score.main([str(heldout_dir), "--model", "cnn", "--url", server, "--output", str(remote),
                       "--chunk", "200"]) == 0
    assert local.read_text() == remote.read_text()
    lines = local.read_text().splitlines()
    assert lines[0] == "index,file,row,p_g,p_q,p_t,p_w,p_z,label,truth" and len(lines) == 501
    # one file, no truth; and a clear error for a file that is not HDF5
    one = tmp_path / "one.csv"
    assert score.main([str(heldout_dir / "t.hdf5"), "--model", "cnn", "--models-dir", str(tiny_models),
                       "--output", str(one)]) == 0
    assert one.read_text().splitlines()[0].endswith(",label")
    bad = tmp_path / "bad.hdf5"
    bad.write_text("not hdf5")
    assert score.main([str(bad), "--model", "cnn", "--models-dir", str(tiny_models),
                       "--output", str(tmp_path / "x.csv")]) == 2
    assert "not a readable JetNet-layout HDF5 file" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def test_tritonclient_works_unmodified(server, heldout_dir):
    """The Triton HTTP client, as published, against our Open Inference Protocol endpoints."""
    import tritonclient.http as triton

    particles, _ = read_jetnet(heldout_dir, seed=0)
    x = np.ascontiguousarray(particles[:64])
    client = triton.InferenceServerClient(server.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("cnn")
    meta = client.get_model_metadata("cnn")
    assert meta["outputs"][0]["name"] == "probabilities"
    expected = np.array(httpx.post(f"{server}/classify", json={"model": "cnn", "jets": x.tolist()}).json()["probabilities"])
    for binary in (True, False):
        tensor = triton.InferInput("particles", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=binary)
        output = triton.InferRequestedOutput("probabilities", binary_data=binary)
        result = client.infer("cnn", [tensor], outputs=[output], request_id="r1")
        np.testing.assert_allclose(result.as_numpy("probabilities"), expected, rtol=1e-5, atol=1e-6)
        assert result.get_response()["id"] == "r1"
    result = client.infer("cnn", [tensor], model_version=meta["versions"][0])  # no outputs: binary
    assert result.as_numpy("probabilities").shape == (64, 5)
    with pytest.raises(triton.InferenceServerException, match="unknown model"):
        client.infer("resnet", [tensor])


def _histogram(metrics: str, name: str, model: str) -> tuple[float, float]:
    """(sum, count) of a Prometheus histogram for one model."""
    values = {}
    for line in metrics.splitlines():
        for suffix in ("_sum", "_count"):
            if line.startswith(f"{name}{suffix}{{") and f'model="{model}"' in line:
                values[suffix] = float(line.rsplit(" ", 1)[1])
    return values.get("_sum", 0.0), values.get("_count", 0.0)


def test_concurrent_single_jet_requests_are_batched(server):
    """/metrics proves it: fewer ONNX Runtime calls than requests, so requests shared batches."""
    from concurrent.futures import ThreadPoolExecutor

    before = _histogram(httpx.get(f"{server}/metrics").text, "jet_tagger_batch_requests", "fcnn_image")
    jets = [[[[0.01 * (i % 20), -0.02, 0.6], [0.0, 0.01, 0.3]]] for i in range(256)]
    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=32)) as client, \
            ThreadPoolExecutor(32) as pool:
        statuses = list(pool.map(
            lambda j: client.post(f"{server}/classify", json={"model": "fcnn_image", "jets": j}).status_code, jets))
    assert statuses == [200] * len(jets)
    after = _histogram(httpx.get(f"{server}/metrics").text, "jet_tagger_batch_requests", "fcnn_image")
    requests, batches = after[0] - before[0], after[1] - before[1]
    assert requests == len(jets) and batches < requests, (requests, batches)


def test_python_clients_from_the_readme(server, heldout_dir):
    import bentoml
    import requests

    particles, _ = read_jetnet(heldout_dir, seed=0)
    jets = particles[:8]
    with bentoml.SyncHTTPClient(server) as client:
        result = client.classify(jets=jets.tolist(), model="densenet")
    direct = httpx.post(f"{server}/classify", json={"model": "densenet", "jets": jets.tolist()}).json()
    assert result["labels"] == direct["labels"]
    np.testing.assert_allclose(result["probabilities"], direct["probabilities"], rtol=1e-6)
    r = requests.post(f"{server}/classify", json={"jets": jets[:3].tolist()},
                      headers={"X-Request-ID": "my-analysis-7"}, timeout=60)
    assert r.status_code == 200 and r.headers["X-Request-ID"] == "my-analysis-7"
    assert np.array(r.json()["probabilities"]).shape == (3, 5)
