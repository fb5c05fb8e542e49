"""The paper's figures, as PNG files (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .constants import CLASS_LABELS, CLASSES  # noqa: E402


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def history(hist: dict[str, list[float]], title: str, path: Path) -> Path:
    """Accuracy (left) and loss (right) per epoch, training vs validation (paper Figs. 8, 10, 12, 15)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    epochs = np.arange(1, len(hist.get("loss", [])) + 1)
    for ax, key in zip(axes, ("accuracy", "loss")):
        ax.plot(epochs, hist.get(key, []), "o-", label="training")
        ax.plot(epochs, hist.get(f"val_{key}", []), "o-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.legend()
    fig.suptitle(title)
    return _save(fig, path)


def confusion(matrix: np.ndarray, title: str, path: Path) -> Path:
    """Confusion matrix, rows normalised to the true class (paper Figs. 9, 11, 13, 16)."""
    norm = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(CLASSES)):
        for j in range(len(CLASSES)):
            ax.text(j, i, f"{norm[i, j]:.2f}\n({matrix[i, j]})", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(CLASSES)), CLASSES)
    ax.set_yticks(range(len(CLASSES)), CLASSES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax)
    return _save(fig, path)


def roc(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], title: str, path: Path) -> Path:
    """One-vs-rest ROC curve per class with its AUC."""
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for c, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, label=f"{c} ({CLASS_LABELS[c]}), AUC = {auc:.3f}")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def class_histogram(counts: dict[str, np.ndarray], title: str, path: Path) -> Path:
    """Jets per class (paper Figs. 3 and 7); several labelled count arrays side by side."""
    fig, ax = plt.subplots(figsize=(6, 4))
    width = 0.8 / len(counts)
    for k, (label, values) in enumerate(counts.items()):
        ax.bar(np.arange(len(CLASSES)) + (k - (len(counts) - 1) / 2) * width, values, width, label=label)
    ax.set_xticks(range(len(CLASSES)), CLASSES)
    ax.set_ylabel("jets")
    ax.set_title(title)
    if len(counts) > 1:
        ax.legend()
    return _save(fig, path)


def sorted_max_pixel(max_pixels: np.ndarray, path: Path, threshold: float | None = None) -> Path:
    """Maximum pixel value of every image, sorted (paper Fig. 4)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(np.sort(max_pixels))
    if threshold is not None:
        ax.axhline(threshold, color="red", ls="--", label=f"threshold {threshold}")
        ax.legend()
    ax.set_xlabel("image (sorted)")
    ax.set_ylabel("maximum pixel value")
    return _save(fig, path)


def images(panels: dict[str, np.ndarray], path: Path, log: bool = False) -> Path:
    """Jet images side by side: e.g. one jet at two maxR (Fig. 6), or the mean image per class."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2))
    for ax, (title, image) in zip(np.atleast_1d(axes), panels.items()):
        data = np.log10(image + 1e-6) if log else image
        ax.imshow(data.squeeze(), origin="lower", cmap="viridis")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("phirel bin")
        ax.set_ylabel("etarel bin")
    return _save(fig, path)
