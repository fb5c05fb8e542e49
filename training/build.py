"""The main job: data -> train -> export (-> BentoML model store) for the registered models.

    python -m training build --profile quick            # what `make models` runs
    python -m training build --profile paper --data data/jetnet --models fcnn_tensor

Without --data, jets are simulated into data/simulated/<profile>-seed<seed>/ (once: the files are
reused when they hold enough jets). Models already exported in models/ are kept unless --force.
Training runs live in runs/<profile>/<model>/: an interrupted build resumes from the last finished
epoch; --force starts those runs over.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import replace
from pathlib import Path

from .data import balanced_splits, read_jetnet_file
from .export import export_model, model_is_complete, remove_stale_staging
from .models import MODELS
from .profiles import Profile, get_profile
from .simulate import simulate
from .train import Inputs, train_model

log = logging.getLogger("training")


def default_data_dir(profile: Profile) -> Path:
    return Path("data/simulated") / f"{profile.name}-seed{profile.seed}"


def has_enough_jets(data_dir: Path, jets_per_class: int) -> bool:
    from .constants import CLASSES

    try:
        return all(len(read_jetnet_file(data_dir / f"{c}.hdf5")[1]) >= jets_per_class for c in CLASSES)
    except (FileNotFoundError, ValueError):
        return False


def describe_data(data_dir: Path, profile: Profile) -> dict:
    meta_file = data_dir / "simulation.json"
    info = {"dir": str(data_dir), "seed": profile.seed,  # the seed of the shuffle and the split
            "split": dict(zip(("train", "valid", "test"), profile.split))}
    if meta_file.is_file():
        sim = json.loads(meta_file.read_text())
        info.update(source="simulated", generator=sim.get("generator"), process=sim.get("process"),
                    simulation_seed=sim.get("seed"), jets_per_class=sim.get("jets_per_class"))
    else:
        info.update(source="jetnet", reference="JetNet-30, Zenodo record 6975118")
    return info


def build(profile_name: str = "quick", data_dir: Path | None = None, models_dir: Path = Path("models"),
          runs_dir: Path = Path("runs"), names: list[str] | None = None, force: bool = False,
          workers: int = 2, register: bool = True, mixed_precision: bool = False) -> list[str]:
    """Train and export every requested model that models/ lacks; returns the names exported."""
    profile = get_profile(profile_name)
    if mixed_precision:
        profile = replace(profile, mixed_precision=True)
    names = names or list(MODELS)
    for path in remove_stale_staging(models_dir):  # nothing when models_dir does not exist yet
        log.info("cleaned up %s, left by an export that did not finish", path)
    todo = [n for n in names if force or not model_is_complete(models_dir / n)]
    if not todo:
        log.info("models/ already holds %s; nothing to do (use --force to rebuild)", ", ".join(names))
        return []
    if data_dir is None:
        data_dir = default_data_dir(profile)
        if not has_enough_jets(data_dir, profile.jets_per_class):
            log.info("simulating %d jets per class into %s", profile.jets_per_class, data_dir)
            simulate(data_dir, profile.jets_per_class, seed=profile.seed, workers=workers)
    splits = balanced_splits(data_dir, profile.split, seed=profile.seed)
    data_info = describe_data(data_dir, profile)
    inputs = Inputs(splits, profile.im_size, profile.maxR)
    for name in todo:
        start = time.time()
        log.info("training %s (%s profile)", name, profile.name)
        if force:
            shutil.rmtree(runs_dir / profile.name / name, ignore_errors=True)
        result = train_model(name, profile, inputs, run_dir=runs_dir / profile.name / name, data=data_info)
        training = {"profile": profile.name, **result.summary(),
                    "keras_test_accuracy": _keras_accuracy(result.model, inputs, name)}
        card = export_model(result.model, name, models_dir, im_size=profile.im_size, maxR=profile.maxR,
                            splits=splits, training=training, data=data_info)
        tag = _register(models_dir / name) if register else "(not registered)"
        test = card.metrics["test"]
        log.info("%s: test accuracy %.4f, loss %.4f, %d epochs, %.0f s -> %s", name, test.accuracy,
                 test.loss, result.epochs_run, time.time() - start, tag)
    return todo


def _keras_accuracy(model, inputs: Inputs, name: str) -> float:
    probs = model.predict(inputs(MODELS[name].representation, "test"), batch_size=1024, verbose=0)
    return float((probs.argmax(axis=1) == inputs.splits["test"].labels).mean())


def _register(model_dir: Path) -> str:
    from serving.store import register

    return register(model_dir)
