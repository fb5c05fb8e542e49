"""Open Inference Protocol (KServe v2 / Triton) over HTTP, so Triton and KServe clients work as is.

    GET  /v2                                   server metadata
    GET  /v2/health/live, /v2/health/ready     liveness, readiness
    GET  /v2/models/{name}[/versions/{v}]      model metadata
    GET  /v2/models/{name}[/versions/{v}]/ready
    POST /v2/models/{name}[/versions/{v}]/infer

Input `particles`, FP32, shape [N, P, 3] or [N, P, 4] (any P >= 1; the same sort, truncate and
pad rules as /classify), as JSON `data` or with the binary tensor extension
(`Inference-Header-Content-Length`); output `probabilities`, FP32 [N, 5], in JSON or binary as
asked. Errors are 4xx `{"error": ...}`.
"""

from __future__ import annotations

import itertools
import json
import zlib

import numpy as np
from pydantic import StrictFloat, TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import limits
from .batching import Overloaded
from .errors import ModelNotServed
from .observability import note_request
from .preprocess import InputError, canonical_particles

INPUT, OUTPUT = "particles", "probabilities"
_FLOATS = TypeAdapter(list[StrictFloat])


class ProtocolError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _service():
    import bentoml

    return bentoml.get_current_service()


def _tagger(request: Request):
    name = request.path_params["name"]
    note_request(model=name[:64])
    try:
        tagger = _service().tagger(name)
    except ModelNotServed as e:
        raise ProtocolError(e.status, str(e)) from None
    version = request.path_params.get("version")
    if version is not None and version != tagger.model.card.version:
        raise ProtocolError(404, f"model {name!r} has no version {version[:64]!r}; "
                                 f"served version: {tagger.model.card.version}")
    return tagger


def _errors(handler):
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except ProtocolError as e:
            return JSONResponse({"error": str(e)}, status_code=e.status)
        except InputError as e:
            return JSONResponse({"error": str(e)}, status_code=400)
        except Overloaded as e:
            return JSONResponse({"error": str(e)}, status_code=503,
                                headers={"Retry-After": str(e.retry_after_s)})
    return wrapped


@_errors
async def server_metadata(request: Request) -> Response:
    from importlib.metadata import version

    return JSONResponse({"name": "jet_tagger", "version": version("jet-tagger"), "extensions": ["binary_tensor_data"]})


@_errors
async def live(request: Request) -> Response:
    return JSONResponse({"live": True})


@_errors
async def ready(request: Request) -> Response:
    is_ready = _service().__is_ready__()
    return JSONResponse({"ready": is_ready}, status_code=200 if is_ready else 503)


@_errors
async def model_metadata(request: Request) -> Response:
    card = _tagger(request).model.card
    return JSONResponse({
        "name": card.name, "versions": [card.version], "platform": "onnxruntime_onnx",
        "inputs": [{"name": INPUT, "datatype": "FP32", "shape": [-1, -1, -1]}],
        "outputs": [{"name": OUTPUT, "datatype": "FP32", "shape": [-1, len(card.classes)]}],
        "parameters": {"classes": card.classes, "features": card.preprocessing.features,
                       "n_particles": card.preprocessing.n_particles},
    })


@_errors
async def model_ready(request: Request) -> Response:
    try:
        tagger = _tagger(request)
    except ProtocolError as e:
        if e.status != 503:
            raise
        # a model refused at load (e.g. a sha256 mismatch) is known but not ready
        return JSONResponse({"name": request.path_params["name"][:64], "ready": False, "error": str(e)}, 503)
    return JSONResponse({"name": tagger.name, "ready": True})


@_errors
async def infer(request: Request) -> Response:
    tagger = _tagger(request)
    header, particles, binary_output = await _parse(request)
    if len(particles) > limits.MAX_JETS:
        raise ProtocolError(413, f"inputs[0].shape: {len(particles)} jets in one request; "
                                 f"the limit is {limits.MAX_JETS}")
    x = canonical_particles(particles, tagger.model.n_particles, field="inputs[0].data")
    probs = np.ascontiguousarray(await tagger.predict(x, endpoint="oip"), dtype=np.float32)
    output = {"name": OUTPUT, "datatype": "FP32", "shape": list(probs.shape)}
    body = {"model_name": tagger.name, "model_version": tagger.model.card.version}
    if "id" in header:
        body["id"] = header["id"]
    if not binary_output:
        body["outputs"] = [{**output, "data": probs.ravel().tolist()}]
        return JSONResponse(body)
    raw = probs.astype("<f4").tobytes()
    body["outputs"] = [{**output, "parameters": {"binary_data_size": len(raw)}}]
    text = json.dumps(body).encode()
    return Response(text + raw, media_type="application/octet-stream",
                    headers={"Inference-Header-Content-Length": str(len(text))})


async def _parse(request: Request) -> tuple[dict, np.ndarray, bool]:
    body = _decompress(await request.body(), request.headers.get("content-encoding"))
    length = request.headers.get("inference-header-content-length")
    try:
        split = int(length) if length is not None else len(body)
        header = json.loads(body[:split])
    except (ValueError, UnicodeDecodeError) as e:
        raise ProtocolError(400, f"body: invalid inference request JSON ({e})") from None
    if not isinstance(header, dict):
        raise ProtocolError(400, "body: an inference request is a JSON object")
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise ProtocolError(400, f"inputs: expected exactly one input, {INPUT!r}")
    particles = _input_array(inputs[0], body[split:])
    return header, particles, _wants_binary(header)


def _input_array(tensor: dict, binary: bytes) -> np.ndarray:
    if tensor.get("name") != INPUT:
        raise ProtocolError(400, f"inputs[0].name: expected {INPUT!r}, got {tensor.get('name')!r}")
    if tensor.get("datatype") != "FP32":
        raise ProtocolError(400, f"inputs[0].datatype: expected 'FP32', got {tensor.get('datatype')!r}")
    shape = tensor.get("shape")
    if (not isinstance(shape, list) or len(shape) != 3 or not all(type(d) is int and d >= 1 for d in shape)
            or shape[2] not in (3, 4)):
        raise ProtocolError(400, f"inputs[0].shape: expected [N, P, 3] or [N, P, 4], got {shape!r}")
    count = shape[0] * shape[1] * shape[2]
    size = (tensor.get("parameters") or {}).get("binary_data_size")
    if size is not None:
        if size != 4 * count or len(binary) < size:
            raise ProtocolError(400, f"inputs[0].parameters.binary_data_size: {size} bytes do not hold "
                                     f"FP32 {shape} ({4 * count} bytes), or the body is shorter")
        return np.frombuffer(binary[:size], dtype="<f4").reshape(shape)
    data = tensor.get("data")
    if data is None:
        raise ProtocolError(400, "inputs[0].data: missing (and no binary_data_size)")
    flat = _numbers(data)
    if flat.size != count:
        raise ProtocolError(400, f"inputs[0].data: {flat.size} values for shape {shape} ({count} expected)")
    return flat.reshape(shape)


def _numbers(data) -> np.ndarray:
    """JSON tensor data, flat or nested in row-major order -> float64; only JSON numbers pass.

    numpy alone would turn "1.5" into 1.5 and true into 1.0; pydantic's strict float refuses both
    (and null) and says where. NaN and Infinity pass here and are refused with the other values."""
    if not isinstance(data, list):
        raise ProtocolError(400, f"inputs[0].data: expected a list of numbers, got {type(data).__name__}")
    while data and isinstance(data[0], list):  # nested: flatten one level at a time
        if not all(isinstance(row, list) for row in data):
            raise ProtocolError(400, "inputs[0].data: nested lists and numbers mixed at one level")
        data = list(itertools.chain.from_iterable(data))
    try:
        return np.asarray(_FLOATS.validate_python(data), dtype=np.float64)
    except ValidationError as e:
        error = e.errors()[0]
        index = error["loc"][0] if error["loc"] else "?"
        raise ProtocolError(400, f"inputs[0].data: value {index} (row-major) is {error['input']!r}, "
                                 "expected a number") from None


def _wants_binary(header: dict) -> bool:
    if (header.get("parameters") or {}).get("binary_data_output"):
        return True
    outputs = header.get("outputs") or []
    return any(isinstance(o, dict) and (o.get("parameters") or {}).get("binary_data") for o in outputs)


def _decompress(body: bytes, encoding: str | None) -> bytes:
    if not encoding or encoding == "identity":
        data = body
    elif encoding in ("gzip", "deflate"):
        inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
        try:
            data = inflater.decompress(body, limits.MAX_BODY_BYTES + 1)
        except zlib.error as e:
            raise ProtocolError(400, f"body: bad {encoding} data ({e})") from None
    else:
        raise ProtocolError(415, f"Content-Encoding {encoding!r} is not supported (gzip, deflate)")
    if len(data) > limits.MAX_BODY_BYTES:
        raise ProtocolError(413, f"body: more than {limits.MAX_BODY_BYTES} bytes once decompressed")
    return data


_MODEL = "/v2/models/{name}"
_VERSION = "/v2/models/{name}/versions/{version}"
ROUTES = [
    Route("/v2", server_metadata, methods=["GET"]),
    Route("/v2/health/live", live, methods=["GET"]),
    Route("/v2/health/ready", ready, methods=["GET"]),
    *(r for base in (_MODEL, _VERSION) for r in (
        Route(base, model_metadata, methods=["GET"]),
        Route(base + "/ready", model_ready, methods=["GET"]),
        Route(base + "/infer", infer, methods=["POST"]),
    )),
]
