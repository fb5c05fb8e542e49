"""The BentoML service, in-process: direct calls and through the ASGI app (TestClient)."""

from __future__ import annotations

import asyncio
import numpy as np
import pytest

from serving.runtime import OnnxModel
from training.data import read_jetnet


@pytest.fixture(scope="module")
def service_class(tiny_models):
    from serving.service import JetTagger

    return JetTagger


@pytest.fixture(scope="module")
def service(service_class):
    return service_class()


@pytest.fixture(scope="module")
def client(asgi_client):
    return asgi_client


def _jets(heldout_dir, n=20):
    particles, jets = read_jetnet(heldout_dir, seed=0)
    return particles[:n], jets[:n, 0].astype(int)


def test_direct_call_matches_the_onnx_model(service, tiny_models, heldout_dir):
    particles, _ = _jets(heldout_dir)
    for name in ("fcnn_tensor", "densenet"):
        response = asyncio.run(service.classify(jets=particles.tolist(), model=name))
        expected = OnnxModel.load(tiny_models / name).predict(particles[..., :3])
        np.testing.assert_allclose(response.probabilities, expected, rtol=1e-5, atol=1e-6)
        assert response.model == name and response.classes == ["g", "q", "t", "w", "z"]
        assert response.labels == [response.classes[i] for i in expected.argmax(axis=1)]


def test_concurrent_requests_share_a_batch(service):
    tagger = service.taggers["fcnn_tensor"]
    seen = []
    original = tagger.batcher.on_batch
    tagger.batcher.on_batch = lambda requests, jets, seconds: seen.append(requests)
    try:
        async def many():
            jet = [[[0.01 * i, 0.02, 0.5], [0.0, 0.01, 0.2]] for i in range(40)]
            return await asyncio.gather(*(service.classify(jets=[j]) for j in jet))
        responses = asyncio.run(many())
    finally:
        tagger.batcher.on_batch = original
    assert len(responses) == 40 and sum(seen) == 40
    assert max(seen) > 1, f"no request shared a batch: {seen}"


def test_http_classify(client, heldout_dir):
    particles, _ = _jets(heldout_dir, 5)
    for name in ("fcnn_tensor", "fcnn_image", "cnn", "densenet"):
        r = client.post("/classify", json={"model": name, "jets": particles.tolist()})
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"model", "model_version", "classes", "probabilities", "labels"}
        probs = np.array(body["probabilities"])
        assert probs.shape == (5, 5) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    ragged = {"jets": [[[0.1, 0.0, 0.7]], [[0.0, 0.1, 0.4], [0.05, -0.02, 0.3, 1], [0, 0, 0, 0]]]}
    r = client.post("/classify", json=ragged)  # default model, jets of different lengths
    assert r.status_code == 200 and r.json()["model"] == "fcnn_tensor" and len(r.json()["labels"]) == 2


@pytest.mark.parametrize("body,status,field", [
    ({"jets": [[[0.1, 0.2]]]}, 400, "jets[0][0]"),
    ({"jets": [[[0.1, 0.2, True]]]}, 400, "jets[0][0][2]"),
    ({"jets": [[[0.1, 0.2, -1.0]]]}, 400, "jets[0][0][2] (ptrel)"),
    ({"jets": [[[0.1, 0.2, 0.3]]], "model": "../../etc/passwd"}, 404, "model"),
    ({"jets": [[[0.1, 0.2, 0.3]]], "model": "resnet"}, 404, "fcnn_tensor"),
    ({"jets": []}, 400, "jets"),
    ({"model": "cnn"}, 400, "jets"),
    ({"jets": "nope"}, 400, "jets"),
])
def test_http_bad_input_is_a_4xx_naming_the_field(client, body, status, field):
    r = client.post("/classify", json=body)
    assert r.status_code == status, r.text
    assert field in r.json()["error"]


def test_http_invalid_json_and_too_many_jets(client, monkeypatch):
    r = client.post("/classify", content=b'{"jets": [[[1, 1, 1]]', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "Invalid JSON" in r.json()["error"]
    r = client.post("/classify", content=b'{"jets": [[[NaN, 1, 1]]]}', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "jets[0][0][0] (etarel)" in r.json()["error"]
    import serving.limits

    monkeypatch.setattr(serving.limits, "MAX_JETS", 3)
    r = client.post("/classify", json={"jets": [[[0.1, 0.1, 0.5]]] * 4})
    assert r.status_code == 413 and "limit is 3" in r.json()["error"]
    monkeypatch.setattr(serving.limits, "MAX_BODY_BYTES", 1000)
    big = {"jets": [[[0.1, 0.1, 0.5]] * 100]}
    r = client.post("/classify", json=big)
    assert r.status_code == 413 and "JET_TAGGER_MAX_BODY_MB" in r.json()["error"]

    def chunked():  # no Content-Length: the limit holds while the body streams in
        yield b'{"jets": [[' + b"[0.1, 0.1, 0.5], " * 100
        yield b"[0.1, 0.1, 0.5]]]}"
    r = client.post("/classify", content=chunked(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    monkeypatch.setattr(serving.limits, "MAX_BODY_BYTES", 10_000)
    r = client.post("/classify", content=chunked(), headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    assert client.get("/readyz").status_code == 200  # still serving after all of that


def test_models_endpoint(client):
    r = client.get("/models")
    assert r.status_code == 200
    body = r.json()
    assert body["default"] == "fcnn_tensor" and not body["unavailable"]
    names = {m["name"]: m for m in body["models"]}
    assert set(names) == {"fcnn_tensor", "fcnn_image", "cnn", "densenet"}
    for m in names.values():
        assert m["provider"] in ("CPUExecutionProvider", "CUDAExecutionProvider")
        assert m["card"]["sha256"].startswith(m["version"]) and "test" in m["metrics"]
    assert names["cnn"]["card"]["preprocessing"]["image"]["maxR"] == 0.4


def test_one_model_endpoint_and_unknown_model(client):
    r = client.get("/models/cnn")
    assert r.status_code == 200 and r.json()["name"] == "cnn" and r.json()["representation"] == "image"
    r = client.get("/models/resnet")
    assert r.status_code == 404 and "fcnn_tensor" in r.json()["error"]


def test_model_versions_come_from_the_environment():
    from serving.service import model_tag

    assert model_tag("cnn", "") == "cnn:latest"
    assert model_tag("cnn", "fcnn_tensor:abc, cnn:0123456789abcdef") == "cnn:0123456789abcdef"
    assert model_tag("densenet", "fcnn_tensor:abc") == "densenet:latest"
    with pytest.raises(ValueError, match="resnet"):
        model_tag("cnn", "resnet:1")


def test_request_ids_and_structured_access_log(client):
    import json
    import logging

    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logger = logging.getLogger("bentoml.jet_tagger.access")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        r = client.post("/classify", json={"model": "cnn", "jets": [[[0.1, 0.0, 0.7]]] * 3},
                        headers={"X-Request-ID": "run42-jet7"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "run42-jet7"
        r = client.post("/classify", json={"jets": [[[0.1, 0.0]]]}, headers={"X-Request-ID": "bad id\n"})
        assert r.status_code == 400
        generated = r.headers["x-request-id"]
        assert len(generated) == 32 and generated != "bad id\n"
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in records]
    ok = next(line for line in lines if line["request_id"] == "run42-jet7")
    assert ok["status"] == 200 and ok["model"] == "cnn" and ok["jets"] == 3 and ok["duration_ms"] > 0
    assert ok["model_version"] and ok["path"] == "/classify"
    assert any(line["request_id"] == generated and line["status"] == 400 for line in lines)


def test_request_timeout_is_a_503_with_retry_after(service, monkeypatch):
    import json
    import time

    import serving.limits

    batcher = service.taggers["fcnn_image"].batcher
    original = batcher.infer
    monkeypatch.setattr(batcher, "infer", lambda x: (time.sleep(0.3), original(x))[1])
    monkeypatch.setattr(serving.limits, "REQUEST_TIMEOUT_S", 0.05)
    response = asyncio.run(service.classify(jets=[[[0.1, 0.0, 0.7]]], model="fcnn_image"))
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert "JET_TAGGER_REQUEST_TIMEOUT_S" in json.loads(response.body)["error"]
    monkeypatch.setattr(serving.limits, "REQUEST_TIMEOUT_S", 30)
    response = asyncio.run(service.classify(jets=[[[0.1, 0.0, 0.7]]], model="fcnn_image"))
    assert len(response.probabilities) == 1  # the same model answers once it is quick enough again


def test_swagger_example_payload_works_when_clicked(client):
    """The Swagger page builds its "Try it out" body from the schema's examples: that body must work."""
    spec = client.get("/docs.json").json()
    schema = spec["paths"]["/classify"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    body = {k: v["examples"][0] for k, v in schema["properties"].items() if v.get("examples")}
    assert set(body) == {"jets", "model"}, schema
    r = client.post("/classify", json=body)
    assert r.status_code == 200 and len(r.json()["labels"]) == len(body["jets"]), r.text
