"""Training stage: data (JetNet or simulated) -> Keras models -> ONNX artifacts in models/."""

import os

# TensorFlow's C++ start-up chatter (no CUDA driver, CPU instructions) hides the useful output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
