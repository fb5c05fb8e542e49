"""Shared fixtures: simulated jets (train and held-out), and tiny trained models in a private store.

The BentoML home is a temporary folder so tests never touch (or depend on) the user's model store,
and a BentoModel missing from it can never send BentoML off to BentoCloud.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="jet-tagger-bentoml-")
os.environ["BENTOML_DO_NOT_TRACK"] = "True"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

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
