"""The paper's evaluation: ONNX and Keras agree, the report and figures are written, the studies run."""

from __future__ import annotations

import json

import pytest

from training.evaluate import evaluate
from training.studies import maxr_study, threshold_study

pytestmark = pytest.mark.slow


def test_evaluate_writes_table_figures_and_agreement(tiny_models, tmp_path):
    report = evaluate(tiny_models, tiny_models.parent / "runs", tmp_path)
    assert report == tmp_path / "tiny" / "report.md"
    text = report.read_text()
    assert "| FCNN on tensor data (`fcnn_tensor`) |" in text and "| 0.7050 |" in text  # paper's number
    assert "**Data: simulated**" in text
    metrics = json.loads((tmp_path / "tiny" / "metrics.json").read_text())
    for name in ("fcnn_tensor", "fcnn_image", "cnn", "densenet"):
        m = metrics[name]
        assert m["keras_max_diff"] is not None and m["keras_max_diff"] <= 1e-4
        assert set(m["metrics"]["test"]["auc"]) == {"g", "q", "t", "w", "z"}
        assert sum(map(sum, m["metrics"]["test"]["confusion"])) == 250
        for figure in ("confusion", "roc", "history"):
            assert (tmp_path / "tiny" / f"{figure}_{name}.png").stat().st_size > 1000
    for figure in ("class_histogram", "max_pixel", "maxr_comparison", "mean_images"):
        assert (tmp_path / "tiny" / f"{figure}.png").stat().st_size > 1000


def test_studies(sim_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = threshold_study("tiny", sim_dir, threshold=0.3, reports_dir=tmp_path)
    assert sum(out["before"].values()) == 1500 and sum(out["after"].values()) < 1500
    assert (tmp_path / "tiny" / "threshold_classes.png").is_file()
    study = maxr_study("cnn", "tiny", sim_dir, runs_dir=tmp_path / "runs", reports_dir=tmp_path)
    assert set(study["results"]) == {"0.4", "0.1"}
    assert all(0 <= r["test_accuracy"] <= 1 for r in study["results"].values())
    with pytest.raises(ValueError, match="does not use jet images"):
        maxr_study("fcnn_tensor", "tiny", sim_dir)
