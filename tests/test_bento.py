"""`bentoml build` packs the service and the four models, with only the light serving dependencies."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
HEAVY = ("tensorflow", "torch", "jetnet", "tf2onnx", "pythia8mc", "fastjet", "keras")


def test_bentoml_build_packs_models_and_light_dependencies(tiny_models, tmp_path):
    import bentoml

    run = subprocess.run([sys.executable, "-m", "bentoml", "build", "--output", "tag"], cwd=ROOT,
                         env=dict(os.environ), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    bento = bentoml.get(run.stdout.strip().splitlines()[-1].removeprefix("__tag__:"))
    stored = {str(m.tag) for m in bento.info.all_models}
    expected = {str(bentoml.models.get(f"{name}:latest").tag) for name in ("fcnn_tensor", "fcnn_image", "cnn", "densenet")}
    assert stored == expected
    # BentoML 1.4 keeps a built Bento's models in the model store and packs them into the archive
    # that `bentoml export` (and `bentoml containerize`) make: they must be in there.
    archive = tmp_path / "jet_tagger.bento"
    export = subprocess.run([sys.executable, "-m", "bentoml", "export", str(bento.tag), str(archive)], cwd=ROOT,
                            env=dict(os.environ), capture_output=True, text=True, timeout=600)
    assert export.returncode == 0, export.stdout[-2000:] + export.stderr[-3000:]
    with tarfile.open(archive) as tar:
        packed = set(tar.getnames())
    for tag in expected:
        name, version = tag.split(":")
        assert f"./models/{name}/{version}/model.onnx" in packed and f"./models/{name}/{version}/card.json" in packed
    path = Path(bento.path)
    requirements = (path / "env" / "python" / "requirements.txt").read_text().lower()
    assert "onnxruntime-gpu[cuda,cudnn]==1.31.1" in requirements
    assert not [h for h in HEAVY if h in requirements], requirements
    sources = {p.relative_to(path / "src").as_posix() for p in (path / "src").rglob("*.py")}
    assert "serving/service.py" in sources and not any(s.startswith("training/") for s in sources)
