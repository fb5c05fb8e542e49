"""Train one registered model on JetNet-layout splits with the profile's hyperparameters (Keras 3)."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np

from serving.artifacts import atomic_path

from .constants import CLASSES
from .data import Split
from .models import MODELS, build_model
from .profiles import Hyperparameters, Profile
from .render import jetnet_images


@dataclass
class TrainResult:
    model: keras.Model
    history: dict[str, list[float]]
    epochs_run: int
    seconds: float
    device: str
    hyperparameters: Hyperparameters

    def summary(self) -> dict:
        return {"epochs_run": self.epochs_run, "seconds": round(self.seconds, 1),
                "device": self.device, "hyperparameters": asdict(self.hyperparameters),
                "history": self.history}


class Inputs:
    """Model inputs per representation, computed once per split and shared by the models."""

    def __init__(self, splits: dict[str, Split], im_size: int, maxR: float, progress: bool = True):
        self.splits, self.im_size, self.maxR, self.progress = splits, im_size, maxR, progress
        self._images: dict[str, np.ndarray] = {}

    def __call__(self, representation: str, split: str) -> np.ndarray:
        particles = self.splits[split].particles
        if representation == "particles":
            return particles[..., :3]
        if split not in self._images:
            self._images[split] = jetnet_images(particles, self.im_size, self.maxR, progress=self.progress)
        return self._images[split]

    def labels(self, split: str) -> np.ndarray:
        return keras.utils.to_categorical(self.splits[split].labels, len(CLASSES))


def training_device() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"GPU ({len(gpus)}x {gpus[0].name})" if gpus else "CPU"


def make_optimizer(hp: Hyperparameters) -> keras.optimizers.Optimizer:
    if hp.optimizer == "adam":
        return keras.optimizers.Adam(hp.learning_rate)
    if hp.optimizer == "sgd":
        return keras.optimizers.SGD(hp.learning_rate, momentum=hp.momentum, nesterov=hp.momentum > 0)
    raise ValueError(f"unknown optimizer {hp.optimizer!r}")


def _callbacks(hp: Hyperparameters, run_dir: Path | None) -> list[keras.callbacks.Callback]:
    callbacks: list[keras.callbacks.Callback] = []
    if hp.early_stopping_patience:
        # The paper stops when val loss has not improved for `patience` epochs; we also restore
        # the best epoch's weights, so the served model is the one that generalised best.
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=hp.early_stopping_patience, restore_best_weights=True))
    if hp.final_learning_rate:
        ratio = hp.final_learning_rate / hp.learning_rate
        steps = max(hp.epochs - 1, 1)
        callbacks.append(keras.callbacks.LearningRateScheduler(
            lambda epoch: hp.learning_rate * math.pow(ratio, min(epoch, steps) / steps)))
    if run_dir is not None:
        callbacks.append(_HistoryFile(run_dir / "history.json"))
    return callbacks


class _HistoryFile(keras.callbacks.Callback):
    """history.json rewritten after every epoch, so a long run can be watched and plotted."""

    def __init__(self, path: Path):
        super().__init__()
        self.path, self.history = path, {}

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(self.history, indent=1))


def train_model(name: str, profile: Profile, inputs: Inputs, run_dir: Path | None = None,
                verbose: int = 2) -> TrainResult:
    """Build, compile and fit model `name`; returns the trained model and its history."""
    representation = MODELS[name].representation
    hp = profile.hyperparameters[name]
    keras.utils.set_random_seed(profile.seed)
    model = build_model(name, im_size=profile.im_size, **profile.model_options.get(name, {}))
    model.compile(optimizer=make_optimizer(hp), loss="categorical_crossentropy", metrics=["accuracy"])
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(run_dir / "config.json") as tmp:
            tmp.write_text(json.dumps({"model": name, "profile": profile.to_dict()}, indent=2, default=str))
    start = time.time()
    fit = model.fit(
        inputs(representation, "train"), inputs.labels("train"),
        validation_data=(inputs(representation, "valid"), inputs.labels("valid")),
        epochs=hp.epochs, batch_size=hp.batch_size, shuffle=True,
        callbacks=_callbacks(hp, run_dir), verbose=verbose,
    )
    history = {k: [float(v) for v in vs] for k, vs in fit.history.items()}
    return TrainResult(model, history, len(history.get("loss", [])), time.time() - start,
                       training_device(), hp)
