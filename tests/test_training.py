"""Training runs: checkpoints every epoch, a stopped run resumes, a finished run is reused."""

from __future__ import annotations

import json
from dataclasses import replace

import keras
import numpy as np
import pytest

from training.data import balanced_splits
from training.profiles import get_profile
from training.train import Inputs, train_model


class _Stop(Exception):
    pass


class _StopAfter(keras.callbacks.Callback):
    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            raise _Stop  # like a kill between two epochs


def test_stopped_run_resumes_and_finished_run_is_reused(sim_dir, tmp_path, monkeypatch):
    profile = get_profile("tiny")
    hp = replace(profile.hyperparameters["fcnn_tensor"], epochs=4, early_stopping_patience=None)
    profile = replace(profile, hyperparameters={**profile.hyperparameters, "fcnn_tensor": hp})
    inputs = Inputs(balanced_splits(sim_dir, profile.split, seed=1), 50, 0.4, progress=False)
    run_dir = tmp_path / "run"

    import training.checkpoints as checkpoints

    original = checkpoints.RunRecorder
    monkeypatch.setattr("training.train.RunRecorder",
                        lambda run, device: _Chain(original(run, device), _StopAfter(2)))
    with pytest.raises(_Stop):
        train_model("fcnn_tensor", profile, inputs, run_dir)
    assert len(json.loads((run_dir / "history.json").read_text())["loss"]) == 2
    assert (run_dir / "checkpoint.keras").is_file() and not (run_dir / "model.keras").exists()

    monkeypatch.setattr("training.train.RunRecorder", original)
    fits = []
    real_fit = keras.Model.fit
    monkeypatch.setattr(keras.Model, "fit", lambda self, *a, **k: fits.append(k["initial_epoch"]) or real_fit(self, *a, **k))
    result = train_model("fcnn_tensor", profile, inputs, run_dir)
    assert fits == [2] and result.epochs_run == 4 and len(result.history["val_loss"]) == 4
    assert json.loads((run_dir / "run.json").read_text())["finished"] is True

    again = train_model("fcnn_tensor", profile, inputs, run_dir)  # finished: reused, not retrained
    assert fits == [2]
    for a, b in zip(again.model.get_weights(), result.model.get_weights()):
        np.testing.assert_array_equal(a, b)


class _Chain(keras.callbacks.Callback):
    """Two callbacks as one, in order (the recorder first, then the stopper)."""

    def __init__(self, *callbacks):
        super().__init__()
        self.callbacks = callbacks

    def set_model(self, model):
        super().set_model(model)
        for c in self.callbacks:
            c.set_model(model)

    def on_epoch_begin(self, epoch, logs=None):
        for c in self.callbacks:
            c.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        for c in self.callbacks:
            c.on_epoch_end(epoch, logs)
