"""ONNX Runtime sessions with explicit providers: CUDA when it can really be loaded, CPU otherwise.

onnxruntime-gpu always lists CUDAExecutionProvider, and on a host without a driver or without the
CUDA 13 libraries it is built for, asking for it logs a long error and silently runs on the CPU.
So we probe first (driver, then the provider library and its CUDA dependencies), ask for CUDA only
when the probe passes, and report the provider the session really uses.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .artifacts import ModelCard, verified_model
from .preprocess import canonical_particles


@functools.lru_cache(maxsize=1)
def cuda_status() -> tuple[bool, str]:
    """(usable, reason): whether ONNX Runtime's CUDA provider can run on this host."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False, "this onnxruntime build has no CUDA provider"
    try:
        driver = ctypes.CDLL("libcuda.so.1")
        count = ctypes.c_int(0)
        if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value < 1:
            return False, "no usable NVIDIA GPU (cuInit failed or no device)"
    except OSError:
        return False, "no NVIDIA driver (libcuda.so.1 not found)"
    # CUDA/cuDNN from the nvidia-* pip wheels, when installed. preload_dlls prints a line per
    # library it cannot find (they may still be found on the system's paths): keep that quiet.
    quiet = io.StringIO()
    try:
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            if hasattr(ort, "preload_dlls"):
                ort.preload_dlls()
        provider = Path(ort.__file__).parent / "capi" / "libonnxruntime_providers_cuda.so"
        ctypes.CDLL(str(provider), mode=os.RTLD_LAZY)
    except OSError as e:
        return False, f"CUDA libraries for onnxruntime-gpu {ort.__version__} missing ({e})"
    return True, "CUDA available"


def make_session(onnx_path: Path, device: str = "auto", threads: int | None = None):
    """An InferenceSession on `device` ("auto", "cuda" or "cpu") with explicit providers."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only; provider choice is logged by us, once
    options.intra_op_num_threads = threads or 0  # 0: ONNX Runtime's default (all cores)
    options.inter_op_num_threads = 1
    use_cuda, reason = cuda_status()
    if device == "cuda" and not use_cuda:
        raise RuntimeError(f"device=cuda requested but {reason}")
    providers = ["CPUExecutionProvider"]
    if use_cuda and device in ("auto", "cuda"):
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(str(onnx_path), options, providers=providers)


@dataclass
class OnnxModel:
    """An exported model, verified against its card, ready to score canonical particle tensors."""

    card: ModelCard
    session: object
    path: Path

    @classmethod
    def load(cls, model_dir: Path, device: str = "auto", threads: int | None = None) -> OnnxModel:
        card, onnx_path = verified_model(model_dir)
        return cls(card, make_session(onnx_path, device, threads), onnx_path)

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]

    @property
    def n_particles(self) -> int:
        return self.card.preprocessing.n_particles

    def predict(self, particles: np.ndarray) -> np.ndarray:
        """Probabilities (N, 5) for a canonical float32 (N, n_particles, 3) tensor."""
        return self.session.run([self.card.output.name], {self.card.input.name: particles})[0]

    def predict_raw(self, particles: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """Probabilities for raw (N, P, 3|4) particles: serving's preprocessing, then the model."""
        out = [self.predict(canonical_particles(particles[i:i + chunk], self.n_particles))
               for i in range(0, len(particles), chunk)]
        return np.concatenate(out) if out else np.zeros((0, len(self.card.classes)), np.float32)
