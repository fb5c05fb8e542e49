"""Serving stays light: importing it pulls in no TensorFlow, torch, jetnet or training code."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("tensorflow", "keras", "torch", "jetnet", "tf2onnx", "training")


def test_serving_imports_without_training_stack():
    code = (
        "import sys; import serving.service, serving.score, serving.store, serving.runtime; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"serving imported: {out.stdout.strip()}"
