"""The paper's data studies (section 2.2 and 2.3) as commands.

    python -m training study maxr --model cnn --profile quick        # accuracy at maxR 0.4 vs 0.1
    python -m training study threshold --threshold 0.3 --profile quick  # Fig. 7: class balance
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from serving.artifacts import atomic_path

from . import plots
from .build import default_data_dir
from .constants import CLASSES
from .data import balanced_splits
from .models import MODELS
from .profiles import get_profile
from .render import jetnet_images
from .train import Inputs, train_model


def maxr_study(model: str, profile_name: str, data_dir: Path | None, values=(0.4, 0.1),
               runs_dir: Path = Path("runs"), reports_dir: Path = Path("reports")) -> dict:
    """Train one image model at each maxR on the same jets; test accuracy per maxR."""
    if MODELS[model].representation != "image":
        raise ValueError(f"{model} does not use jet images; choose one of "
                         f"{[n for n, s in MODELS.items() if s.representation == 'image']}")
    profile = get_profile(profile_name)
    data_dir = data_dir or default_data_dir(profile)
    splits = balanced_splits(data_dir, profile.split, seed=profile.seed)
    results = {}
    for maxR in values:
        p = replace(profile, maxR=maxR)
        inputs = Inputs(splits, p.im_size, maxR)
        run = train_model(model, p, inputs, runs_dir / f"{profile.name}-maxr{maxR}" / model,
                          data={"dir": str(data_dir)})
        probs = run.model.predict(inputs("image", "test"), batch_size=1024, verbose=0)
        results[str(maxR)] = {"test_accuracy": float((probs.argmax(1) == splits["test"].labels).mean()),
                              "epochs_run": run.epochs_run}
    out = {"model": model, "profile": profile.name, "data": str(data_dir), "results": results}
    _write(reports_dir / profile.name / f"maxr_study_{model}.json", out)
    return out


def threshold_study(profile_name: str, data_dir: Path | None, threshold: float = 0.3,
                    reports_dir: Path = Path("reports")) -> dict:
    """Keep training images whose maximum pixel exceeds `threshold`: what happens to the classes."""
    profile = get_profile(profile_name)
    data_dir = data_dir or default_data_dir(profile)
    train = balanced_splits(data_dir, profile.split, seed=profile.seed)["train"]
    max_pixel = jetnet_images(train.particles, profile.im_size, profile.maxR).max(axis=(1, 2, 3))
    before = np.bincount(train.labels, minlength=len(CLASSES))
    after = np.bincount(train.labels[max_pixel > threshold], minlength=len(CLASSES))
    out_dir = reports_dir / profile.name
    plots.class_histogram({"all": before, f"max pixel > {threshold}": after},
                          f"Training jets per class, max-pixel filter {threshold}", out_dir / "threshold_classes.png")
    plots.sorted_max_pixel(max_pixel, out_dir / "threshold_max_pixel.png", threshold)
    out = {"threshold": threshold, "maxR": profile.maxR, "before": dict(zip(CLASSES, before.tolist())),
           "after": dict(zip(CLASSES, after.tolist())),
           "kept_fraction": {c: float(a / b) if b else 0.0 for c, a, b in zip(CLASSES, after, before)}}
    _write(out_dir / "threshold_study.json", out)
    return out


def _write(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1))
