"""BentoML service `JetTagger`: jets in, class probabilities out, on ONNX Runtime.

    bentoml serve              # from the repo root (bentofile.yaml names serving.service:JetTagger)

Endpoints: POST /classify, GET /models, the Open Inference Protocol under /v2 (serving/oip.py),
and BentoML's /readyz, /livez, /metrics and the Swagger page at /.
The models are the exported artifacts registered in the BentoML model store (`make models` or
`python -m serving.store register models/`); nothing here imports training code, TensorFlow,
torch or jetnet. Settings come from the environment:
  JET_TAGGER_MODELS  versions to serve, e.g. "fcnn_tensor:1eb75c19f5226a45,cnn:latest" (default: all :latest)
  JET_TAGGER_DEVICE  auto (CUDA when usable) | cpu | cuda
  JET_TAGGER_THREADS ONNX Runtime intra-op threads per model (default: cores / workers)
  JET_TAGGER_MAX_JETS  jets per request (default 10000; more is a 413)
  JET_TAGGER_MAX_BODY_MB  request body size (default 128; more is a 413)
  JET_TAGGER_REQUEST_TIMEOUT_S  longest wait for a model (default 30; then 503 + Retry-After)
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Annotated

import bentoml
import numpy as np
from bentoml.models import BentoModel
from pydantic import Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from . import limits, oip
from .batching import BatchingConfig, MicroBatcher, Overloaded
from .errors import FieldErrorMiddleware, ModelNotServed, quiet_validation_logs
from .limits import BodyLimitMiddleware, ContentTypeMiddleware
from .observability import RequestLogMiddleware, note_request, observe
from .preprocess import InputError, jets_to_particles
from .runtime import OnnxModel, cuda_status
from .schemas import EXAMPLE_JETS, ClassifyResponse, Jet

log = logging.getLogger("bentoml.jet_tagger")  # under bentoml: its log handlers apply
quiet_validation_logs()
limits.cancel_bentoml_request_timers()
DEFAULT_MODEL = "fcnn_tensor"
MODEL_NAMES = ("fcnn_tensor", "fcnn_image", "cnn", "densenet")
WORKERS = int(os.environ.get("JET_TAGGER_WORKERS", "1"))

batch_size_histogram = bentoml.metrics.Histogram(
    name="jet_tagger_batch_jets", documentation="Jets per ONNX Runtime call, per model",
    labelnames=["model"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192))
batch_requests_histogram = bentoml.metrics.Histogram(
    name="jet_tagger_batch_requests", documentation="Requests sharing one ONNX Runtime call, per model",
    labelnames=["model"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
jets_counter = bentoml.metrics.Counter(
    name="jet_tagger_jets", documentation="Jets classified, per model", labelnames=["model"])


def model_tag(name: str, spec: str | None = None) -> str:
    """The store tag to serve for `name`: from JET_TAGGER_MODELS ("name:version,..."), else name:latest."""
    spec = os.environ.get("JET_TAGGER_MODELS", "") if spec is None else spec
    chosen = dict(item.strip().split(":", 1) if ":" in item else (item.strip(), "latest")
                  for item in spec.split(",") if item.strip())
    unknown = set(chosen) - set(MODEL_NAMES)
    if unknown:
        raise ValueError(f"JET_TAGGER_MODELS names unknown models {sorted(unknown)}; known: {list(MODEL_NAMES)}")
    return f"{name}:{chosen.get(name, 'latest')}"


class Tagger:
    """One served model: verified ONNX session + its adaptive batcher."""

    def __init__(self, model: OnnxModel, tag: str):
        self.model, self.tag = model, tag
        self.name = model.card.name
        self.batcher = MicroBatcher(model.predict, BatchingConfig.from_env(), on_batch=self._observe)

    def _observe(self, requests: int, jets: int, seconds: float) -> None:
        batch_size_histogram.labels(model=self.name).observe(jets)
        batch_requests_histogram.labels(model=self.name).observe(requests)
        jets_counter.labels(model=self.name).inc(jets)

    async def predict(self, x: np.ndarray, endpoint: str) -> np.ndarray:
        """Probabilities for canonical particles, batched with concurrent requests, within the timeout."""
        note_request(model=self.name, model_version=self.model.card.version, jets=len(x))
        start, outcome = time.perf_counter(), "error"
        try:
            probs = await asyncio.wait_for(self.batcher(x), limits.REQUEST_TIMEOUT_S)
            outcome = "ok"
            return probs
        except asyncio.TimeoutError:
            outcome = "timeout"
            raise Overloaded(f"no answer from model {self.name!r} within {limits.REQUEST_TIMEOUT_S:g} s "
                             "(JET_TAGGER_REQUEST_TIMEOUT_S): the server is overloaded; retry shortly",
                             retry_after_s=5) from None
        except Overloaded:
            outcome = "overloaded"
            raise
        finally:
            observe(self.name, endpoint, outcome, time.perf_counter() - start)

    def describe(self) -> dict:
        card = self.model.card
        return {"name": self.name, "version": card.version, "tag": self.tag,
                "provider": self.model.provider, "representation": card.preprocessing.representation,
                "input": card.input.model_dump(), "classes": card.classes,
                "metrics": {k: v.model_dump() for k, v in card.metrics.items()},
                "card": card.model_dump(mode="json")}


async def _list_models(request: Request) -> JSONResponse:
    return JSONResponse(bentoml.get_current_service().describe())


async def _show_model(request: Request) -> JSONResponse:
    try:
        tagger = bentoml.get_current_service().tagger(request.path_params["name"])
    except ModelNotServed as e:
        return _error(e.status, f"model: {e}")
    return JSONResponse(tagger.describe())


# Mounted at "/": BentoML mounts apps after its own routes and only where a child route matches.
http_app = Starlette(routes=[Route("/models", _list_models, methods=["GET"]),
                             Route("/models/{name}", _show_model, methods=["GET"]), *oip.ROUTES])


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


@bentoml.asgi_app(http_app, path="/")
@bentoml.service(name="jet_tagger", workers=WORKERS, traffic={"timeout": 60, "max_concurrency": 512})
class JetTagger:
    # Declared at class scope so `bentoml build` packs them into the Bento.
    fcnn_tensor = BentoModel(model_tag("fcnn_tensor"))
    fcnn_image = BentoModel(model_tag("fcnn_image"))
    cnn = BentoModel(model_tag("cnn"))
    densenet = BentoModel(model_tag("densenet"))

    def __init__(self) -> None:
        device = os.environ.get("JET_TAGGER_DEVICE", "auto")
        threads = int(os.environ.get("JET_TAGGER_THREADS", "0")) or max(1, (os.cpu_count() or 1) // WORKERS)
        self.taggers: dict[str, Tagger] = {}
        self.unavailable: dict[str, str] = {}
        usable, reason = cuda_status()
        log.info("ONNX Runtime device=%s: %s", device, reason if usable else f"CPU only ({reason})")
        refs = [v for v in vars(type(self)).values() if isinstance(v, BentoModel)]
        for ref in refs:
            name = ref.tag.name
            try:
                stored = ref.resolve()
                self.taggers[name] = Tagger(OnnxModel.load(Path(stored.path), device, threads), str(stored.tag))
                log.info("serving %s on %s", stored.tag, self.taggers[name].model.provider)
            except Exception as e:  # a bad or missing model must not take the others down
                self.unavailable[name] = f"{type(e).__name__}: {e}"
                log.error("not serving %s: %s", ref.tag, self.unavailable[name])

    def __is_ready__(self) -> bool:
        return bool(self.taggers)

    def tagger(self, name: str) -> Tagger:
        """The served model called `name`; ModelNotServed (404 unknown, 503 refused at load) otherwise.

        Names are only looked up in this dict, never used as paths."""
        tagger = self.taggers.get(name)
        if tagger is not None:
            return tagger
        shown = repr(name[:64])
        if name in self.unavailable:
            raise ModelNotServed(503, f"model {shown} is not available: {self.unavailable[name]}")
        raise ModelNotServed(404, f"unknown model {shown}; served models: {sorted(self.taggers)}")

    def describe(self) -> dict:
        usable, reason = cuda_status()
        return {"default": DEFAULT_MODEL, "max_jets_per_request": limits.MAX_JETS,
                "cuda": {"usable": usable, "reason": reason},
                "models": [t.describe() for t in self.taggers.values()],
                "unavailable": self.unavailable}

    @bentoml.api(route="/classify")
    async def classify(
        self,
        jets: Annotated[list[Jet], Field(min_length=1, examples=[EXAMPLE_JETS])],
        model: Annotated[str, Field(max_length=64, examples=[DEFAULT_MODEL])] = DEFAULT_MODEL,
    ) -> ClassifyResponse:
        """Class probabilities (g, q, t, w, z) for each jet, from the chosen model."""
        note_request(model=model[:64], jets=len(jets))
        try:
            tagger = self.tagger(model)
        except ModelNotServed as e:
            return _error(e.status, f"model: {e}")
        if len(jets) > limits.MAX_JETS:
            return _error(413, f"jets: {len(jets)} jets in one request; the limit is {limits.MAX_JETS}")
        try:
            if len(jets) > 256:  # large requests: keep the event loop free for others
                x = await asyncio.to_thread(jets_to_particles, jets, tagger.model.n_particles)
            else:
                x = jets_to_particles(jets, tagger.model.n_particles)
            probs = await tagger.predict(x, endpoint="classify")
        except InputError as e:
            return _error(400, str(e))
        except Overloaded as e:
            return _error(503, str(e), **{"Retry-After": str(e.retry_after_s)})
        classes = tagger.model.card.classes
        return ClassifyResponse(
            model=model, model_version=tagger.model.card.version, classes=classes,
            probabilities=probs.tolist(), labels=[classes[i] for i in np.argmax(probs, axis=1)])


JetTagger.add_asgi_middleware(RequestLogMiddleware)  # first added is outermost: logs 413s too
JetTagger.add_asgi_middleware(FieldErrorMiddleware)
JetTagger.add_asgi_middleware(BodyLimitMiddleware)
JetTagger.add_asgi_middleware(ContentTypeMiddleware)
