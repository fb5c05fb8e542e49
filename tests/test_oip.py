"""Open Inference Protocol (KServe v2), in-process through the ASGI app."""

from __future__ import annotations

import gzip
import json
import numpy as np
import pytest

from serving.runtime import OnnxModel
from training.data import read_jetnet


@pytest.fixture(scope="module")
def client(asgi_client):
    return asgi_client


def _request(x: np.ndarray, **extra) -> dict:
    return {"inputs": [{"name": "particles", "datatype": "FP32", "shape": list(x.shape),
                        "data": x.ravel().tolist()}], **extra}


def test_metadata_and_health(client):
    assert client.get("/v2").json()["name"] == "jet_tagger"
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    meta = client.get("/v2/models/cnn").json()
    assert meta["name"] == "cnn" and meta["outputs"][0] == {"name": "probabilities", "datatype": "FP32", "shape": [-1, 5]}
    assert client.get(f"/v2/models/cnn/versions/{meta['versions'][0]}/ready").status_code == 200
    assert client.get("/v2/models/cnn/versions/0000/ready").status_code == 404
    r = client.get("/v2/models/nope/ready")
    assert r.status_code == 404 and "fcnn_tensor" in r.json()["error"]


def test_infer_json_and_binary_match_the_model(client, tiny_models, heldout_dir):
    particles, _ = read_jetnet(heldout_dir, seed=0)
    x = particles[:7]
    expected = OnnxModel.load(tiny_models / "densenet").predict(x[..., :3])
    r = client.post("/v2/models/densenet/infer", json=_request(x, id="req-1"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "req-1" and body["model_name"] == "densenet"
    out = body["outputs"][0]
    assert out["name"] == "probabilities" and out["shape"] == [7, 5]
    np.testing.assert_allclose(np.array(out["data"]).reshape(7, 5), expected, rtol=1e-5, atol=1e-6)
    # binary tensor extension, both ways, gzip-compressed request
    header = json.dumps({"inputs": [{"name": "particles", "datatype": "FP32", "shape": [7, 30, 4],
                                     "parameters": {"binary_data_size": x.nbytes}}],
                         "parameters": {"binary_data_output": True}}).encode()
    r = client.post("/v2/models/densenet/infer", content=gzip.compress(header + x.astype("<f4").tobytes()),
                    headers={"Inference-Header-Content-Length": str(len(header)), "Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    n = int(r.headers["Inference-Header-Content-Length"])
    meta = json.loads(r.content[:n])
    assert meta["outputs"][0]["parameters"]["binary_data_size"] == 7 * 5 * 4
    np.testing.assert_allclose(np.frombuffer(r.content[n:], "<f4").reshape(7, 5), expected, rtol=1e-5, atol=1e-6)


def test_ragged_particle_count_and_mask_rules(client):
    x = np.zeros((2, 45, 3), np.float32)
    x[:, :, 2] = np.linspace(1, 0.01, 45)
    x[:, :, 0] = np.linspace(-0.3, 0.3, 45)
    r = client.post("/v2/models/fcnn_tensor/infer", json=_request(x))
    assert r.status_code == 200 and r.json()["outputs"][0]["shape"] == [2, 5]


@pytest.mark.parametrize("body,status,field", [
    ({"inputs": []}, 400, "inputs"),
    ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1, 3], "data": [0, 0, 1]}]}, 400, "inputs[0].name"),
    ({"inputs": [{"name": "particles", "datatype": "FP64", "shape": [1, 1, 3], "data": [0, 0, 1]}]}, 400, "datatype"),
    ({"inputs": [{"name": "particles", "datatype": "FP32", "shape": [1, 3], "data": [0, 0, 1]}]}, 400, "shape"),
    ({"inputs": [{"name": "particles", "datatype": "FP32", "shape": [1, 1, 2], "data": [0, 1]}]}, 400, "shape"),
    ({"inputs": [{"name": "particles", "datatype": "FP32", "shape": [1, 2, 3], "data": [0, 0, 1]}]}, 400, "inputs[0].data"),
    ({"inputs": [{"name": "particles", "datatype": "FP32", "shape": [1, 1, 3], "data": ["a", 0, 1]}]}, 400, "inputs[0].data"),
    ({"inputs": [{"name": "particles", "datatype": "FP32", "shape": [1, 1, 3], "data": [0, 0, -1]}]}, 400, "(ptrel)"),
    ({"inputs": [{"name": "particles", "datatype": "FP32", "shape": [1, 1, 4], "data": [0, 0, 1, 0.5]}]}, 400, "(mask)"),
])
def test_bad_requests_are_4xx_naming_the_field(client, body, status, field):
    r = client.post("/v2/models/cnn/infer", json=body)
    assert r.status_code == status and field in r.json()["error"], r.text


def test_bad_bodies(client):
    r = client.post("/v2/models/cnn/infer", content=b"{not json")
    assert r.status_code == 400 and "body" in r.json()["error"]
    r = client.post("/v2/models/cnn/infer", content=b"x", headers={"Content-Encoding": "br"})
    assert r.status_code == 415
    r = client.post("/v2/models/cnn/infer", content=b"notgzip", headers={"Content-Encoding": "gzip"})
    assert r.status_code == 400
    assert client.post("/v2/models/nope/infer", json={}).status_code == 404
