"""Client jets -> the float32 [N, n_particles, 3] tensor every exported model takes.

Rules (the same for /classify, the batch scorer and the Open Inference Protocol):
- a particle is [etarel, phirel, ptrel] or [etarel, phirel, ptrel, mask] with mask 0 or 1;
  mask-0 particles are padding and dropped;
- particles are ordered by decreasing ptrel (ties by etarel, then phirel, so that the result never
  depends on the order the client sent them in), the n highest kept, the rest zero-padded:
  JetNet's layout;
- every value must be finite and fit in float32, ptrel must be >= 0, and a jet needs at least one
  particle with ptrel > 0.
Values too small for a normal float32 (|x| < 1.2e-38) become 0: ONNX Runtime and TensorFlow flush
such subnormals anyway, so making it explicit keeps every runtime's answer the same.
"""

from __future__ import annotations

import numpy as np

FEATURES = ("etarel", "phirel", "ptrel", "mask")
_F32 = np.finfo(np.float32)


class InputError(ValueError):
    """Bad client input; the message names the offending field (e.g. `jets[3][0][2]`)."""


def canonical_particles(particles: np.ndarray, n_particles: int, field: str = "jets") -> np.ndarray:
    """(N, P, 3 or 4) array -> float32 (N, n_particles, 3), validated, sorted, truncated, padded."""
    x = np.asarray(particles)
    if x.ndim != 3 or x.shape[2] not in (3, 4) or x.shape[1] < 1:
        raise InputError(f"{field}: expected shape [N, P, 3] or [N, P, 4] with P >= 1, got {list(x.shape)}")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise InputError(f"{field}: expected real numbers, got {x.dtype}")
    x = x.astype(np.float64, copy=False)
    _check_values(x, field)
    mask = x[..., 3] > 0 if x.shape[2] == 4 else np.ones(x.shape[:2], dtype=bool)
    ptrel = np.where(mask, x[..., 2], -np.inf)  # padding sorts last
    empty = ~np.any(ptrel > 0, axis=1)
    if empty.any():
        i = int(np.flatnonzero(empty)[0])
        raise InputError(f"{field}[{i}]: a jet needs at least one particle with ptrel > 0 (and mask 1)")
    n, p = mask.shape
    # lexsort's last key is primary: per jet, then decreasing ptrel, then etarel, then phirel
    order = np.lexsort((x[..., 1].ravel(), x[..., 0].ravel(), -ptrel.ravel(), np.repeat(np.arange(n), p)))
    order = (order.reshape(n, p) - (np.arange(n) * p)[:, None])[:, :n_particles]  # per-jet indices
    rows = np.arange(n)[:, None]
    out = np.zeros((n, n_particles, 3), np.float32)
    kept = mask[rows, order]
    out[:, : order.shape[1]] = np.where(kept[..., None], x[rows, order, :3], 0.0)
    out[np.abs(out) < _F32.tiny] = 0.0
    return out


def jets_to_particles(jets: list, n_particles: int, field: str = "jets") -> np.ndarray:
    """Ragged JSON jets (list of jets, each a list of particles) -> canonical float32 tensor.

    Over HTTP the request model already refused non-numbers (booleans and strings included);
    called from Python, a bool mixed into numbers counts as 0/1, as numpy would have it.
    """
    if not isinstance(jets, list) or not jets:
        raise InputError(f"{field}: expected a non-empty list of jets")
    longest = 0
    for i, jet in enumerate(jets):
        if not isinstance(jet, list) or not jet:
            raise InputError(f"{field}[{i}]: expected a non-empty list of particles")
        longest = max(longest, len(jet))
    padded = np.zeros((len(jets), longest, 4), np.float64)  # mask 0 marks the padding
    for i, jet in enumerate(jets):
        padded[i, : len(jet)] = _jet_array(jet, f"{field}[{i}]")
    return canonical_particles(padded, n_particles, field)


def _jet_array(jet: list, field: str) -> np.ndarray:
    """(P, 4) float64 of one jet's particles, the mask set to 1 where the client sent 3 features."""
    try:
        arr = np.asarray(jet)
    except ValueError:  # ragged: mixed particle widths, or junk nested inside
        arr = None
    if arr is not None and arr.ndim == 2 and arr.shape[1] in (3, 4) and arr.dtype.kind in "fiu":
        arr = arr.astype(np.float64)
        return arr if arr.shape[1] == 4 else np.concatenate([arr, np.ones((len(arr), 1))], axis=1)
    rows = []  # slow path: name the first offending particle
    for j, p in enumerate(jet):
        if not isinstance(p, (list, tuple)) or len(p) not in (3, 4):
            raise InputError(f"{field}[{j}]: a particle is [etarel, phirel, ptrel] or "
                             "[etarel, phirel, ptrel, mask]")
        for k, v in enumerate(p):
            if not _real(v):
                raise InputError(f"{field}[{j}][{k}] ({FEATURES[k]}): expected a number, got {v!r}")
        rows.append((*p, 1.0) if len(p) == 3 else tuple(p))
    try:
        return np.array(rows, dtype=np.float64)
    except OverflowError:
        raise InputError(f"{field}: a value does not fit in float32") from None


def _real(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_values(x: np.ndarray, field: str) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        raise InputError(f"{_where(field, bad)}: NaN and infinity are not allowed")
    bad = np.abs(x) > _F32.max
    if bad.any():
        raise InputError(f"{_where(field, bad)}: value does not fit in float32")
    bad = np.zeros_like(bad)
    bad[..., 2] = x[..., 2] < 0
    if bad.any():
        raise InputError(f"{_where(field, bad)}: ptrel must be >= 0")
    if x.shape[2] == 4:
        bad[...] = False
        bad[..., 3] = (x[..., 3] != 0) & (x[..., 3] != 1)
        if bad.any():
            raise InputError(f"{_where(field, bad)}: mask must be 0 or 1")


def _where(field: str, bad: np.ndarray) -> str:
    i, j, k = (int(v) for v in np.argwhere(bad)[0])
    return f"{field}[{i}][{j}][{k}] ({FEATURES[k]})"
