"""reports/<profile>/report.md: the paper's Table 4 for our models, beside the paper's numbers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from serving.artifacts import atomic_path

from .constants import CLASSES
from .models import MODELS

# "Unraveling JetNet", Table 4 and section 3 (test accuracy and loss; the table's caption calls
# them validation, the text and figure captions test). Real JetNet, 200k training jets.
PAPER = {
    "fcnn_tensor": {"accuracy": 0.705, "loss": 0.842},
    "fcnn_image": {"accuracy": 0.579, "loss": 1.085},
    "cnn": {"accuracy": 0.5916, "loss": 1.081},
    "densenet": {"accuracy": 0.551, "loss": 1.304},
}


def _f(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _table(results) -> list[str]:
    lines = [
        "| model | val. accuracy | val. loss | test accuracy | test loss | paper test accuracy | paper test loss "
        "| epochs run | training time | device |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        v, t, p, tr = r.metrics["valid"], r.metrics["test"], PAPER.get(r.name, {}), r.card.training
        title = MODELS[r.name].title if r.name in MODELS else r.name
        lines.append(
            f"| {title} (`{r.name}`) | {_f(v['accuracy'])} | {_f(v['loss'])} | {_f(t['accuracy'])} "
            f"| {_f(t['loss'])} | {_f(p.get('accuracy'), 4)} | {_f(p.get('loss'))} "
            f"| {tr.get('epochs_run', '–')} | {tr.get('seconds', 0):.0f} s | {tr.get('device', '–')} |")
    return lines


def _auc_table(results) -> list[str]:
    lines = ["| model | " + " | ".join(f"AUC {c}" for c in CLASSES) + " | Keras vs ONNX max abs diff |",
             "|---|" + "---|" * (len(CLASSES) + 1)]
    for r in results:
        aucs = r.metrics["test"]["auc"]
        diff = "no Keras model" if r.keras_max_diff is None else f"{r.keras_max_diff:.1e}"
        lines.append(f"| `{r.name}` | " + " | ".join(f"{aucs[c]:.3f}" for c in CLASSES) + f" | {diff} |")
    return lines


def write_report(path: Path, results, data_figures: dict[str, str]) -> Path:
    card = results[0].card
    data, training = card.data, card.training
    source = data.get("source", "?")
    lines = [
        f"# Jet tagging report: profile `{training.get('profile', '?')}`",
        "",
        f"Generated {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC by `python -m training evaluate`.",
        "",
        f"**Data: {source}**" + (" (Pythia 8 + FastJet in JetNet's layout, not the real JetNet: the paper's "
                                 "numbers are on real JetNet and are not directly comparable)"
                                 if source == "simulated" else " (JetNet-30)") + ".",
        f"Data folder `{data.get('dir')}`"
        + (f" ({data['jets_per_class']} jets per class simulated with seed {data['simulation_seed']})"
           if "simulation_seed" in data else "")
        + f"; split (train/valid/test) {'/'.join(str(v) for v in data.get('split', {}).values())} jets, "
        f"balanced over classes, shuffled with seed {data.get('seed')}.",
        "",
        "## Accuracy and loss (paper Table 4)",
        "",
        "Metrics of the exported ONNX models, through serving's preprocessing.",
        "",
        *_table(results),
        "",
        "## One-vs-rest ROC AUC on the test split",
        "",
        *_auc_table(results),
        "",
        "## Figures",
        "",
    ]
    for r in results:
        lines += [f"### `{r.name}`", ""] + [f"![{k}]({v})" for k, v in r.figures.items()] + [""]
    lines += ["### Data", ""] + [f"![{k}]({v})" for k, v in data_figures.items()] + [""]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines))
    return path
