"""A training run's folder, so that a stopped run resumes where it stopped.

runs/<profile>/<model>/ holds config.json (what produced the run), history.json (per-epoch
metrics), run.json (epochs done, seconds, device), checkpoint.keras (model + optimizer after the
last finished epoch), best.weights.h5 (weights of the best validation-loss epoch) and, once
training is over, model.keras (the trained model: best weights when early stopping is on). Every
file is replaced atomically, so a kill at any moment leaves the previous epoch's state intact.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import keras
import numpy as np

from serving.artifacts import atomic_path

CONFIG, HISTORY, STATE = "config.json", "history.json", "run.json"
CHECKPOINT, BEST, FINAL = "checkpoint.keras", "best.weights.h5", "model.keras"


class Run:
    def __init__(self, run_dir: Path, config: dict):
        self.dir, self.config = Path(run_dir), config
        self.dir.mkdir(parents=True, exist_ok=True)
        if self._read(CONFIG) != json.loads(json.dumps(config, default=str)):
            self._start_over()
        self.history: dict[str, list[float]] = self._read(HISTORY) or {}
        self.state: dict = self._read(STATE) or {"epochs_run": 0, "seconds": 0.0, "finished": False}

    @property
    def epochs_done(self) -> int:
        return len(self.history.get("loss", []))

    def finished_model(self) -> keras.Model | None:
        return keras.models.load_model(self.dir / FINAL) if self.state["finished"] and (self.dir / FINAL).is_file() else None

    def checkpoint(self) -> keras.Model | None:
        path = self.dir / CHECKPOINT
        return keras.models.load_model(path) if path.is_file() and self.epochs_done else None

    def best_val_loss(self) -> tuple[int, float] | None:
        losses = self.history.get("val_loss", [])
        if not losses:
            return None
        best = int(np.argmin(losses))
        return best, losses[best]

    def finish(self, model: keras.Model, restore_best: bool) -> None:
        if restore_best and (self.dir / BEST).is_file():
            model.load_weights(self.dir / BEST)
        self.save_model(model, FINAL)
        self.state["finished"] = True
        self._write(STATE, self.state)

    def save_model(self, model: keras.Model, name: str) -> None:
        suffix = ".weights.h5" if name.endswith(".weights.h5") else ".keras"
        with atomic_path(self.dir / name, suffix=suffix) as tmp:
            model.save_weights(tmp) if suffix == ".weights.h5" else model.save(tmp)

    def _start_over(self) -> None:
        for name in (HISTORY, STATE, CHECKPOINT, BEST, FINAL):
            (self.dir / name).unlink(missing_ok=True)
        self._write(CONFIG, self.config)

    def _read(self, name: str):
        path = self.dir / name
        return json.loads(path.read_text()) if path.is_file() else None

    def _write(self, name: str, data) -> None:
        with atomic_path(self.dir / name) as tmp:
            tmp.write_text(json.dumps(data, indent=1, default=str))


class RunRecorder(keras.callbacks.Callback):
    """After every epoch: history, checkpoint, best weights and run.json, in that order."""

    def __init__(self, run: Run, device: str):
        super().__init__()
        self.run, self.device = run, device

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        run = self.run
        for key, value in (logs or {}).items():
            run.history.setdefault(key, []).append(float(value))
        run._write(HISTORY, run.history)
        run.save_model(self.model, CHECKPOINT)
        best = run.best_val_loss()
        if best is not None and best[0] == run.epochs_done - 1:
            run.save_model(self.model, BEST)
        run.state.update(epochs_run=run.epochs_done, device=self.device,
                         seconds=run.state["seconds"] + time.time() - self._start)
        run._write(STATE, run.state)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Keras' EarlyStopping on val_loss, carrying its best value and patience count across resumes."""

    def __init__(self, run: Run, patience: int):
        super().__init__(monitor="val_loss", patience=patience)
        self.run = run

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        best = self.run.best_val_loss()
        if best is not None:
            self.best_epoch, self.best = best
            self.wait = self.run.epochs_done - 1 - best[0]

    def stopped(self) -> bool:
        best = self.run.best_val_loss()
        return best is not None and self.run.epochs_done - 1 - best[0] >= self.patience
