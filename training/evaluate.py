"""Evaluate exported models the paper's way and write a report: `python -m training evaluate`.

For every model in models/ (or --models-dir): on the validation and test splits the model card
names, accuracy, categorical cross-entropy, confusion matrix and one-vs-rest ROC AUC per class,
computed on the exported ONNX model through serving's own preprocessing; and, where the run folder
still holds the Keras model, on it too, with the two required to agree. Writes figures and
reports/<profile>/report.md with a table shaped like the paper's Table 4 beside the paper's numbers.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, auc, confusion_matrix, log_loss, roc_curve

from serving.artifacts import CARD_FILE, ModelCard, atomic_path
from serving.runtime import OnnxModel

from . import plots
from .constants import CLASSES
from .data import Split, balanced_splits, particle_tensor
from .models import MODELS
from .render import jetnet_images
from .report import write_report

log = logging.getLogger("training")
AGREEMENT_ATOL = 1e-4  # max |p_onnx - p_keras| allowed, as in the export parity tests


@dataclass
class Evaluation:
    name: str
    card: ModelCard
    metrics: dict[str, dict] = field(default_factory=dict)  # split -> accuracy, loss, auc, confusion
    keras_max_diff: float | None = None  # None: no Keras model left to compare with
    figures: dict[str, str] = field(default_factory=dict)

    @property
    def agrees(self) -> bool:
        return self.keras_max_diff is None or self.keras_max_diff <= AGREEMENT_ATOL


def classification_metrics(labels: np.ndarray, probs: np.ndarray) -> dict:
    curves = {}
    for i, c in enumerate(CLASSES):
        fpr, tpr, _ = roc_curve(labels == i, probs[:, i])
        curves[c] = (fpr, tpr, float(auc(fpr, tpr)))
    return {
        "accuracy": float(accuracy_score(labels, probs.argmax(axis=1))),
        "loss": float(log_loss(labels, probs, labels=range(len(CLASSES)))),
        "auc": {c: v[2] for c, v in curves.items()},
        "confusion": confusion_matrix(labels, probs.argmax(axis=1), labels=range(len(CLASSES))).tolist(),
        "_curves": curves,
    }


class SplitCache:
    """Data splits (and jet images) per data source named in the cards, loaded once."""

    def __init__(self):
        self._splits: dict[tuple, dict[str, Split]] = {}
        self._images: dict[tuple, np.ndarray] = {}

    def splits(self, card: ModelCard) -> dict[str, Split]:
        d = card.data
        key = (d["dir"], tuple(d["split"].values()), d["seed"])
        if key not in self._splits:
            self._splits[key] = balanced_splits(Path(d["dir"]), tuple(d["split"].values()), seed=d["seed"])
        return self._splits[key]

    def images(self, card: ModelCard, split: str) -> np.ndarray:
        image = card.preprocessing.image
        key = (card.data["dir"], split, image.im_size, image.maxR)
        if key not in self._images:
            self._images[key] = jetnet_images(self.splits(card)[split].particles, image.im_size, image.maxR)
        return self._images[key]


def evaluate_model(model_dir: Path, runs_dir: Path, out: Path, cache: SplitCache) -> Evaluation:
    onnx_model = OnnxModel.load(model_dir, device="cpu")
    card = onnx_model.card
    result = Evaluation(card.name, card)
    splits = cache.splits(card)
    for split in ("valid", "test"):
        probs = onnx_model.predict_raw(splits[split].particles)
        result.metrics[split] = classification_metrics(splits[split].labels, probs)
        if split == "test":
            result.keras_max_diff = _keras_difference(card, runs_dir, cache, probs)
    test = result.metrics["test"]
    title = MODELS[card.name].title if card.name in MODELS else card.name
    result.figures["confusion"] = plots.confusion(np.array(test["confusion"]), title, out / f"confusion_{card.name}.png").name
    result.figures["roc"] = plots.roc(test.pop("_curves"), title, out / f"roc_{card.name}.png").name
    result.metrics["valid"].pop("_curves")
    history = card.training.get("history") or {}
    if history:
        result.figures["history"] = plots.history(history, title, out / f"history_{card.name}.png").name
    return result


def _keras_difference(card: ModelCard, runs_dir: Path, cache: SplitCache, onnx_probs: np.ndarray) -> float | None:
    import keras

    path = Path(runs_dir) / card.training.get("profile", "") / card.name / "model.keras"
    if not path.is_file():
        log.warning("%s: no Keras model at %s; ONNX metrics only", card.name, path)
        return None
    model = keras.models.load_model(path)
    split = cache.splits(card)["test"]
    x = particle_tensor(split.particles) if card.preprocessing.representation == "particles" else cache.images(card, "test")
    keras_probs = model.predict(x, batch_size=1024, verbose=0)
    return float(np.max(np.abs(keras_probs - onnx_probs)))


IMAGE_FIGURE_JETS = 50_000  # jetnet renders ~500 jets/s: image figures use at most this many


def dataset_figures(splits: dict[str, Split], out: Path, maxR: float = 0.4) -> dict[str, str]:
    """The paper's data figures from the training split: Figs. 3, 4, 6 and mean images."""
    train = splits["train"]
    sample = slice(0, IMAGE_FIGURE_JETS)  # the split is shuffled, so the first jets are a fair sample
    images, labels = jetnet_images(train.particles[sample], maxR=maxR), train.labels[sample]
    figures = {
        "class_histogram": plots.class_histogram(
            {"training set": np.bincount(train.labels, minlength=len(CLASSES))},
            "Jets per class in the training set", out / "class_histogram.png"),
        "max_pixel": plots.sorted_max_pixel(images.max(axis=(1, 2, 3)), out / "max_pixel.png"),
        "maxr": plots.images({f"maxR = {r}": jetnet_images(train.particles[:1], maxR=r)[0] for r in (0.4, 0.1)},
                             out / "maxr_comparison.png"),
        "mean_images": plots.images({f"{c}: mean image": images[labels == i].mean(axis=0)
                                     for i, c in enumerate(CLASSES)}, out / "mean_images.png", log=True),
    }
    return {k: v.name for k, v in figures.items()}


def evaluate(models_dir: Path = Path("models"), runs_dir: Path = Path("runs"),
             reports_dir: Path = Path("reports"), names: list[str] | None = None) -> Path:
    """Evaluate every exported model and write reports/<profile>/; returns the report's path."""
    model_dirs = [d for d in sorted(Path(models_dir).iterdir()) if (d / CARD_FILE).is_file()
                  and (names is None or d.name in names)]
    if not model_dirs:
        raise FileNotFoundError(f"no exported models in {models_dir}: run `make models` first")
    cache = SplitCache()
    first = ModelCard.model_validate_json((model_dirs[0] / CARD_FILE).read_bytes())
    out = Path(reports_dir) / first.training.get("profile", "models")
    results = []
    for model_dir in sorted(model_dirs, key=lambda d: list(MODELS).index(d.name) if d.name in MODELS else 99):
        log.info("evaluating %s", model_dir.name)
        results.append(evaluate_model(model_dir, runs_dir, out, cache))
    data_figures = dataset_figures(cache.splits(first), out)
    with atomic_path(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps({r.name: {"metrics": r.metrics, "keras_max_diff": r.keras_max_diff}
                                   for r in results}, indent=1))
    report = write_report(out / "report.md", results, data_figures)
    disagree = [r.name for r in results if not r.agrees]
    if disagree:
        raise RuntimeError(f"Keras and ONNX disagree by more than {AGREEMENT_ATOL} for {disagree}; see {report}")
    return report
