"""The bad-input catalogue: every malformed request is a 4xx naming the problem, the server stays up.

The same rules hold for POST /classify and the Open Inference Protocol's POST /v2/.../infer; the
batch scorer's files are covered in test_score.py. Accepted inputs (ragged jets, > 30 particles,
one particle, any particle order) are checked here too, the order property with hypothesis.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

GOOD = [[0.1, 0.0, 0.7], [-0.05, 0.02, 0.2]]
PATHS = ["../../etc/passwd", "models/cnn", "cnn/../fcnn_tensor", "%2e%2e%2fcnn", "/etc/passwd", "cnn\x00", "C:\\x"]


def _raw(value: str) -> bytes:
    return ('{"jets": [[' + value + ']]}').encode()


# (request body as JSON bytes, status, text the error must contain)
CLASSIFY_CASES = {
    "missing jets": (b'{"model": "cnn"}', 400, "jets"),
    "jets null": (b'{"jets": null}', 400, "jets"),
    "jets a string": (b'{"jets": "nope"}', 400, "jets"),
    "jets a number": (b'{"jets": 3}', 400, "jets"),
    "jets an object": (b'{"jets": {"a": 1}}', 400, "jets"),
    "no jets": (b'{"jets": []}', 400, "jets"),
    "jet not a list": (b'{"jets": [1.5]}', 400, "jets[0]"),
    "jet of no particles": (b'{"jets": [[]]}', 400, "jets[0]"),
    "particle not a list": (b'{"jets": [[0.5]]}', 400, "jets[0][0]"),
    "only zero-pt padding": (_raw("[0.0, 0.0, 0.0]"), 400, "jets[0]: a jet needs at least one particle"),
    "only masked particles": (_raw("[0.1, 0.1, 0.5, 0]"), 400, "jets[0]: a jet needs at least one particle"),
    "2 features": (_raw("[0.1, 0.2]"), 400, "jets[0][0]"),
    "5 features": (_raw("[0.1, 0.2, 0.3, 1, 1]"), 400, "jets[0][0]"),
    "a string": (_raw('[0.1, "0.2", 0.3]'), 400, "jets[0][0][1]"),
    "null": (_raw("[0.1, null, 0.3]"), 400, "jets[0][0][1]"),
    "boolean": (_raw("[0.1, 0.2, true]"), 400, "jets[0][0][2]"),
    "NaN": (_raw("[NaN, 0.2, 0.3]"), 400, "jets[0][0][0] (etarel)"),
    "Infinity": (_raw("[0.1, Infinity, 0.3]"), 400, "jets[0][0][1] (phirel)"),
    "-Infinity": (_raw("[0.1, 0.2, -Infinity]"), 400, "jets[0][0][2] (ptrel)"),
    "overflows float32": (_raw("[1e39, 0.2, 0.3]"), 400, "float32"),
    "overflows float64": (_raw("[0.1, 1e400, 0.3]"), 400, "jets[0][0][1]"),
    "negative ptrel": (_raw("[0.1, 0.2, -0.3]"), 400, "jets[0][0][2] (ptrel): ptrel must be >= 0"),
    "mask 0.5": (_raw("[0.1, 0.2, 0.3, 0.5]"), 400, "(mask): mask must be 0 or 1"),
    "mask 2": (_raw("[0.1, 0.2, 0.3, 1], [0.1, 0.2, 0.3, 2]"), 400, "jets[0][1][3] (mask)"),
    "second jet bad": (b'{"jets": [[[0.1, 0.0, 0.7]], [[0.1, 0.0, -1]]]}', 400, "jets[1][0][2]"),
    "unknown model": (b'{"jets": [[[0.1, 0.0, 0.7]]], "model": "resnet"}', 404, "served models"),
    "model not a string": (b'{"jets": [[[0.1, 0.0, 0.7]]], "model": 7}', 400, "model"),
    "model too long": (json.dumps({"jets": [GOOD], "model": "a" * 65}).encode(), 400, "model"),
    "invalid JSON": (b'{"jets": [[[0.1, 0.0, 0.7]]', 400, "JSON"),
    "truncated JSON": (b'{"jets": [[[0.1, 0.0', 400, "JSON"),
    "empty body": (b"", 400, ""),
    "body a list": (b"[[[0.1, 0.0, 0.7]]]", 400, ""),
    "body null": (b"null", 400, ""),
    "not UTF-8": (b'{"jets": [[[0.1, 0.0, 0.7]]], "model": "\xff\xfe"}', 400, ""),
}


@pytest.fixture(scope="module")
def client(asgi_client):
    return asgi_client


def _still_serving(client) -> None:
    assert client.get("/readyz").status_code == 200
    r = client.post("/classify", json={"jets": [GOOD]})
    assert r.status_code == 200 and len(r.json()["labels"]) == 1


@pytest.mark.parametrize("case", CLASSIFY_CASES)
def test_classify_bad_input(client, case):
    body, status, text = CLASSIFY_CASES[case]
    r = client.post("/classify", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, (case, r.text)
    error = r.json()["error"]
    assert error and text in error, (case, error)


@pytest.mark.parametrize("name", PATHS)
def test_model_names_with_path_characters_are_only_looked_up(client, name):
    r = client.post("/classify", json={"jets": [GOOD], "model": name})
    assert r.status_code == 404 and "served models" in r.json()["error"], r.text
    assert "root:" not in r.text  # nothing was read from a path
    r = client.post(f"/v2/models/{quote(name, safe='')}/infer", json={})
    assert r.status_code == 404, r.text


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml",
                                          "multipart/form-data; boundary=x", "application/octet-stream"])
def test_wrong_content_type_is_a_415(client, content_type):
    body = json.dumps({"jets": [GOOD]}).encode()
    r = client.post("/classify", content=body, headers={"content-type": content_type})
    assert r.status_code == 415 and "Content-Type" in r.json()["error"], r.text
    if content_type != "application/octet-stream":  # the binary tensor extension's type
        r = client.post("/v2/models/cnn/infer", content=json.dumps(_oip(GOOD, [1, 2, 3])).encode(),
                        headers={"content-type": content_type})
        assert r.status_code == 415, r.text


def test_json_content_types_and_none_are_accepted(client):
    body = json.dumps({"jets": [GOOD]}).encode()
    for headers in ({"content-type": "application/json; charset=utf-8"}, {"content-type": "application/vnd.x+json"}, {}):
        assert client.post("/classify", content=body, headers=headers).status_code == 200, headers


def test_classify_limits(client, monkeypatch):
    import serving.limits

    monkeypatch.setattr(serving.limits, "MAX_JETS", 5)
    r = client.post("/classify", json={"jets": [GOOD] * 6})
    assert r.status_code == 413 and "jets" in r.json()["error"] and "limit is 5" in r.json()["error"]
    monkeypatch.setattr(serving.limits, "MAX_BODY_BYTES", 2000)
    r = client.post("/classify", json={"jets": [GOOD * 100]})
    assert r.status_code == 413 and "JET_TAGGER_MAX_BODY_MB" in r.json()["error"]


def test_classify_accepts_ragged_long_single_and_unsorted_jets(client):
    rng = np.random.default_rng(3)
    long_jet = np.column_stack([rng.normal(0, 0.1, 80), rng.normal(0, 0.1, 80), rng.uniform(0.001, 0.2, 80)])
    top30 = long_jet[np.argsort(-long_jet[:, 2])[:30]]
    jets = [long_jet.tolist(), top30.tolist(), [[0.0, 0.0, 1.0]], GOOD, GOOD[::-1]]
    r = client.post("/classify", json={"model": "fcnn_tensor", "jets": jets})
    assert r.status_code == 200, r.text
    probs = np.array(r.json()["probabilities"])
    assert probs.shape == (5, 5) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(probs[0], probs[1])  # > 30 particles: the 30 highest ptrel are kept
    np.testing.assert_array_equal(probs[3], probs[4])  # order does not matter


_particle = st.tuples(st.floats(-0.8, 0.8), st.floats(-0.8, 0.8), st.floats(0.001, 1.0))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(jet=st.lists(_particle, min_size=1, max_size=45), seed=st.integers(0, 2**32 - 1))
def test_classify_answer_does_not_depend_on_particle_order(client, jet, seed):
    shuffled = list(np.random.default_rng(seed).permutation(len(jet)))
    jets = [[list(p) for p in jet], [list(jet[i]) for i in shuffled]]
    r = client.post("/classify", json={"model": "cnn", "jets": jets})
    assert r.status_code == 200, r.text
    probs = r.json()["probabilities"]
    assert probs[0] == probs[1]


def _oip(x: list, shape: list, **tensor) -> dict:
    return {"inputs": [{"name": "particles", "datatype": "FP32", "shape": shape, "data": x, **tensor}]}


OIP_CASES = {
    "not JSON": (b"{not json", 400, "body"),
    "truncated JSON": (b'{"inputs": [{"name": "particles"', 400, "body"),
    "body a list": (b"[1, 2]", 400, "body"),
    "no inputs": (b"{}", 400, "inputs"),
    "inputs not a list": (json.dumps({"inputs": "x"}).encode(), 400, "inputs"),
    "two inputs": (json.dumps({"inputs": [_oip([0, 0, 1], [1, 1, 3])["inputs"][0]] * 2}).encode(), 400, "inputs"),
    "wrong name": (json.dumps({"inputs": [{**_oip([0, 0, 1], [1, 1, 3])["inputs"][0], "name": "x"}]}).encode(),
                   400, "inputs[0].name"),
    "wrong datatype": (json.dumps(_oip([0, 0, 1], [1, 1, 3], datatype="INT64")).encode(), 400, "datatype"),
    "shape not a list": (json.dumps(_oip([0, 0, 1], "1,1,3")).encode(), 400, "inputs[0].shape"),
    "2 features": (json.dumps(_oip([0, 1], [1, 1, 2])).encode(), 400, "inputs[0].shape"),
    "5 features": (json.dumps(_oip([0, 0, 1, 1, 1], [1, 1, 5])).encode(), 400, "inputs[0].shape"),
    "no particles": (json.dumps(_oip([], [1, 0, 3])).encode(), 400, "inputs[0].shape"),
    "boolean shape": (json.dumps(_oip([0, 0, 1], [True, 1, 3])).encode(), 400, "inputs[0].shape"),
    "too few values": (json.dumps(_oip([0, 0, 1], [1, 2, 3])).encode(), 400, "inputs[0].data"),
    "data missing": (json.dumps({"inputs": [{"name": "particles", "datatype": "FP32", "shape": [1, 1, 3]}]}).encode(),
                     400, "inputs[0].data"),
    "data a string": (json.dumps(_oip("0,0,1", [1, 1, 3])).encode(), 400, "inputs[0].data"),
    "a string": (json.dumps(_oip([0, "0.5", 1], [1, 1, 3])).encode(), 400, "inputs[0].data: value 1"),
    "null": (json.dumps(_oip([0, None, 1], [1, 1, 3])).encode(), 400, "inputs[0].data: value 1"),
    "boolean": (json.dumps(_oip([0, 0, True], [1, 1, 3])).encode(), 400, "inputs[0].data: value 2"),
    "NaN": (b'{"inputs": [{"name": "particles", "datatype": "FP32", "shape": [1, 1, 3], "data": [NaN, 0, 1]}]}',
            400, "(etarel): NaN"),
    "Infinity": (b'{"inputs": [{"name": "particles", "datatype": "FP32", "shape": [1, 1, 3], '
                 b'"data": [0, 0, Infinity]}]}', 400, "(ptrel): NaN and infinity"),
    "overflows float32": (json.dumps(_oip([0, 1e39, 1], [1, 1, 3])).encode(), 400, "float32"),
    "negative ptrel": (json.dumps(_oip([0, 0, -1], [1, 1, 3])).encode(), 400, "(ptrel): ptrel must be >= 0"),
    "mask 0.5": (json.dumps(_oip([0, 0, 1, 0.5], [1, 1, 4])).encode(), 400, "(mask)"),
    "only padding": (json.dumps(_oip([0, 0, 1, 1, 0, 0, 0, 0], [2, 1, 4])).encode(), 400, "inputs[0].data[1]"),
    "binary size wrong": (json.dumps(_oip(None, [1, 1, 3], parameters={"binary_data_size": 8})).encode(),
                          400, "binary_data_size"),
}


@pytest.mark.parametrize("case", OIP_CASES)
def test_oip_bad_input(client, case):
    body, status, text = OIP_CASES[case]
    r = client.post("/v2/models/densenet/infer", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, (case, r.text)
    assert text in r.json()["error"], (case, r.json())


def test_oip_accepts_nested_data_and_refuses_unknown_models(client):
    flat = client.post("/v2/models/fcnn_tensor/infer", json=_oip([0.1, 0.0, 0.7, -0.05, 0.02, 0.2], [1, 2, 3]))
    nested = client.post("/v2/models/fcnn_tensor/infer", json=_oip([GOOD], [1, 2, 3]))
    assert flat.status_code == nested.status_code == 200, (flat.text, nested.text)
    assert flat.json()["outputs"] == nested.json()["outputs"]
    r = client.post("/v2/models/fcnn_tensor/infer", json=_oip([[0.1, 0.0, 0.7], 0.5], [1, 2, 3]))
    assert r.status_code == 400 and "inputs[0].data" in r.json()["error"]
    for path in ("/v2/models/resnet/infer", "/v2/models/resnet/ready", "/v2/models/resnet"):
        r = client.post(path, json=_oip(GOOD, [1, 2, 3])) if path.endswith("infer") else client.get(path)
        assert r.status_code == 404 and "served models" in r.json()["error"], r.text
    r = client.post("/v2/models/cnn/versions/0000/infer", json=_oip([GOOD], [1, 2, 3]))
    assert r.status_code == 404 and "no version '0000'" in r.json()["error"]


def test_oip_limits(client, monkeypatch):
    import serving.limits

    monkeypatch.setattr(serving.limits, "MAX_JETS", 2)
    r = client.post("/v2/models/cnn/infer", json=_oip([GOOD] * 3, [3, 2, 3]))
    assert r.status_code == 413 and "limit is 2" in r.json()["error"]
    monkeypatch.setattr(serving.limits, "MAX_BODY_BYTES", 500)
    r = client.post("/v2/models/cnn/infer", json=_oip([GOOD * 20], [1, 40, 3]))
    assert r.status_code == 413


def test_server_is_ready_after_the_catalogue(client):
    for body, _, _ in [*CLASSIFY_CASES.values()]:
        client.post("/classify", content=body, headers={"content-type": "application/json"})
    for body, _, _ in OIP_CASES.values():
        client.post("/v2/models/cnn/infer", content=body)
    _still_serving(client)
    assert client.get("/v2/health/ready").json() == {"ready": True}
