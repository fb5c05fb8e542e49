"""Export a trained Keras model to `models/<name>/` (model.onnx + card.json) with tf2onnx.

Every exported model takes raw particles, float32 [N, 30, 3] named `particles`, and returns
`probabilities` [N, 5]. Image models get the `JetImage` layer in front, so the 50x50 rendering is
part of the ONNX graph and serving never needs jetnet. The card carries the preprocessing spec,
the ONNX file's sha256 and the metrics of the exported model itself, measured with ONNX Runtime
through serving's own preprocessing. The model directory is written beside the target and renamed
into place, so a killed export never leaves a half-written model for serving to pick up.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path

import keras

from serving.artifacts import (CARD_FILE, MODEL_FILE, ImageSpec, Metrics, ModelCard, Preprocessing,
                               TensorSpec, sha256_file, write_card)
from serving.runtime import OnnxModel

from .constants import CLASSES, INPUT_FEATURES, N_PARTICLES
from .data import Split
from .models import MODELS
from .render import JetImage

OPSET = 17
INPUT_NAME, OUTPUT_NAME = "particles", "probabilities"


def serving_graph(model: keras.Model, representation: str, im_size: int, maxR: float) -> keras.Model:
    """The trained model behind a raw-particle input (with in-graph rendering for image models)."""
    particles = keras.Input((N_PARTICLES, len(INPUT_FEATURES)), name=INPUT_NAME)
    x = particles if representation == "particles" else JetImage(im_size, maxR, name="jet_image")(particles)
    return keras.Model(particles, model(x), name=model.name)


def to_onnx(model: keras.Model, path: Path, opset: int = OPSET) -> None:
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, N_PARTICLES, len(INPUT_FEATURES)), tf.float32, name=INPUT_NAME),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset)
    _rename_output(proto, OUTPUT_NAME)
    path.write_bytes(proto.SerializeToString())


def _rename_output(proto, name: str) -> None:
    old = proto.graph.output[0].name
    for node in proto.graph.node:
        node.output[:] = [name if o == old else o for o in node.output]
        node.input[:] = [name if i == old else i for i in node.input]
    proto.graph.output[0].name = name


def onnx_metrics(model: OnnxModel, split: Split) -> Metrics:
    from sklearn.metrics import accuracy_score, log_loss

    probs = model.predict_raw(split.particles)
    return Metrics(accuracy=float(accuracy_score(split.labels, probs.argmax(axis=1))),
                   loss=float(log_loss(split.labels, probs, labels=range(len(CLASSES)))))


def export_model(model: keras.Model, name: str, models_dir: Path, *, im_size: int, maxR: float,
                 splits: dict[str, Split], training: dict, data: dict) -> ModelCard:
    """Write models/<name>/ atomically and return its card."""
    representation = MODELS[name].representation
    graph = serving_graph(model, representation, im_size, maxR)
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=models_dir))
    staging.chmod(0o755)  # mkdtemp makes it private; exported models are meant to be shared
    try:
        to_onnx(graph, staging / MODEL_FILE)
        digest = sha256_file(staging / MODEL_FILE)
        card = ModelCard(
            name=name, version=digest[:16], architecture=MODELS[name].title, classes=list(CLASSES),
            input=TensorSpec(name=INPUT_NAME, shape=[None, N_PARTICLES, len(INPUT_FEATURES)]),
            output=TensorSpec(name=OUTPUT_NAME, shape=[None, len(CLASSES)]),
            preprocessing=Preprocessing(
                representation=representation, features=list(INPUT_FEATURES), n_particles=N_PARTICLES,
                image=ImageSpec(im_size=im_size, maxR=maxR) if representation == "image" else None),
            opset=OPSET, sha256=digest, training=training, data=data, versions=_versions(),
            created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        )
        write_card(staging, card)
        onnx_model = OnnxModel.load(staging, device="cpu")
        card.metrics = {s: onnx_metrics(onnx_model, splits[s]) for s in ("valid", "test") if s in splits}
        write_card(staging, card)
        _replace_dir(staging, models_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return card


def _replace_dir(new: Path, target: Path) -> None:
    """Swap `new` in for `target`: readers see the old model or the new one (or, for an instant,
    none), never a mix of the two or a half-written file."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
    new.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _versions() -> dict[str, str]:
    packages = ("tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime-gpu", "jetnet", "numpy")
    out = {}
    for p in packages:
        try:
            out[p] = version(p)
        except Exception:  # a package missing from this environment is simply not recorded
            pass
    return out


def model_is_complete(model_dir: Path) -> bool:
    return (Path(model_dir) / CARD_FILE).is_file() and (Path(model_dir) / MODEL_FILE).is_file()


def remove_stale_staging(models_dir: Path) -> list[Path]:
    """Clean up after killed exports: delete `.<name>.XXXX/` staging folders, and put a `.<name>.old/`
    back as `<name>/` when the kill came between _replace_dir's two renames (else delete it)."""
    stale = sorted(p for p in Path(models_dir).glob(".*") if p.is_dir() and p.name.split(".")[1] in MODELS)
    for path in stale:
        target = path.with_name(path.name.split(".")[1])
        if path.name.endswith(".old") and not target.exists():
            path.rename(target)
        else:
            shutil.rmtree(path, ignore_errors=True)
    return stale

