"""Train one registered model on JetNet-layout splits with the profile's hyperparameters (Keras 3)."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np

from .checkpoints import ResumableEarlyStopping, Run, RunRecorder
from .constants import CLASSES
from .data import Split, particle_tensor
from .models import MODELS, build_model
from .profiles import Hyperparameters, Profile
from .render import jetnet_images

log = logging.getLogger("training")


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
            return particle_tensor(particles)
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


def _learning_rate_schedule(hp: Hyperparameters) -> keras.callbacks.Callback:
    ratio = hp.final_learning_rate / hp.learning_rate
    steps = max(hp.epochs - 1, 1)
    return keras.callbacks.LearningRateScheduler(
        lambda epoch: hp.learning_rate * math.pow(ratio, min(epoch, steps) / steps))


def train_model(name: str, profile: Profile, inputs: Inputs, run_dir: Path,
                data: dict | None = None, verbose: int = 2) -> TrainResult:
    """Train model `name` in `run_dir`, resuming a stopped run; returns the trained model.

    A finished run with the same config is reused as it is, so rerunning a build after an
    interruption continues where it stopped and reproduces what was finished.
    """
    hp = profile.hyperparameters[name]
    options = profile.model_options.get(name, {})
    run = Run(run_dir, {"model": name, "profile": profile.to_dict(), "data": data or {}})
    device = training_device()
    model = run.finished_model()
    if model is None:
        model = _fit(name, profile, hp, options, inputs, run, device, verbose)
    if profile.mixed_precision:  # export and serve a float32 copy of the weights
        model = _float32_copy(name, profile, options, model)
    return TrainResult(model, run.history, run.epochs_done, run.state["seconds"],
                       run.state.get("device", device), hp)


def _fit(name, profile, hp, options, inputs, run: Run, device: str, verbose: int) -> keras.Model:
    representation = MODELS[name].representation
    keras.mixed_precision.set_global_policy("mixed_float16" if profile.mixed_precision else "float32")
    try:
        keras.utils.set_random_seed(profile.seed + run.epochs_done)
        model = run.checkpoint()
        if model is None:
            model = build_model(name, im_size=profile.im_size, **options)
            model.compile(optimizer=make_optimizer(hp), loss="categorical_crossentropy",
                          metrics=["accuracy"])
        else:
            log.info("%s: resuming after epoch %d from %s", name, run.epochs_done, run.dir)
        callbacks: list[keras.callbacks.Callback] = [RunRecorder(run, device)]
        stopping = ResumableEarlyStopping(run, hp.early_stopping_patience) if hp.early_stopping_patience else None
        if stopping:
            callbacks.append(stopping)
        if hp.final_learning_rate:
            callbacks.append(_learning_rate_schedule(hp))
        if run.epochs_done < hp.epochs and not (stopping and stopping.stopped()):
            model.fit(
                inputs(representation, "train"), inputs.labels("train"),
                validation_data=(inputs(representation, "valid"), inputs.labels("valid")),
                initial_epoch=run.epochs_done, epochs=hp.epochs, batch_size=hp.batch_size,
                shuffle=True, callbacks=callbacks, verbose=verbose,
            )
        # The paper stops when val loss has not improved for `patience` epochs; we also restore
        # the best epoch's weights, so the served model is the one that generalised best.
        run.finish(model, restore_best=stopping is not None)
        return model
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _float32_copy(name: str, profile: Profile, options: dict, model: keras.Model) -> keras.Model:
    copy = build_model(name, im_size=profile.im_size, **options)
    copy.set_weights(model.get_weights())
    return copy
