"""Jet images inside the model graph, equal to `jetnet.utils.to_image`.

`jetnet.utils.to_image` is `np.histogram2d(etarel, phirel, bins=im_size, range=[[-maxR, maxR]] * 2,
weights=ptrel)` per jet. `JetImage` computes the same 2D histogram with tensor ops so that exported
image models take raw particles: a particle falls in bin i when edges[i] <= x < edges[i+1], compared
in float64 against numpy's float64 edges exactly as np.histogramdd's searchsorted does, and the
image is the product of the two one-hot bin matrices weighted by ptrel. One value is special:
histogramdd moves `x == edges[-1]` one bin to the left (to close the last bin), and with numpy 1.x
(which jetnet needs) that comparison runs in float32, so it hits x == float32(maxR) even where
float32(maxR) < maxR. Where that value lands is asked of numpy itself when the layer is built.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from .constants import IM_SIZE, MAXR


class JetImage(keras.layers.Layer):
    """(N, P, 3) particles [etarel, phirel, ptrel] -> (N, im_size, im_size, 1) ptrel image."""

    def __init__(self, im_size: int = IM_SIZE, maxR: float = MAXR, **kwargs):
        kwargs.setdefault("dtype", "float32")  # binning must not run in reduced precision
        super().__init__(trainable=False, **kwargs)
        self.im_size = int(im_size)
        self.maxR = float(maxR)
        edges = np.linspace(-self.maxR, self.maxR, self.im_size + 1)
        self._lower, self._upper = edges[:-1], edges[1:]
        self._edge_value = np.float32(self.maxR)
        self._edge_bins = _numpy_bins(self._edge_value, self.im_size, self.maxR)

    def _one_hot(self, x):
        wide = ops.cast(x, "float64")[..., None]  # (N, P, 1) against (im_size,) edges
        lower = ops.convert_to_tensor(self._lower, dtype="float64")
        upper = ops.convert_to_tensor(self._upper, dtype="float64")
        inside = ops.logical_and(ops.greater_equal(wide, lower), ops.less(wide, upper))
        on_edge = ops.equal(x, self._edge_value)[..., None]
        edge_bins = ops.convert_to_tensor(self._edge_bins, dtype="bool")
        return ops.cast(ops.where(on_edge, edge_bins, inside), "float32")

    def call(self, particles):
        eta_bins = self._one_hot(particles[..., 0])  # (N, P, im)
        phi_bins = self._one_hot(particles[..., 1])  # (N, P, im)
        weighted = eta_bins * ops.cast(particles[..., 2:3], "float32")
        image = ops.matmul(ops.transpose(weighted, (0, 2, 1)), phi_bins)  # (N, im_eta, im_phi)
        return image[..., None]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.im_size, self.im_size, 1)

    def get_config(self):
        return {**super().get_config(), "im_size": self.im_size, "maxR": self.maxR}


def _numpy_bins(value: np.float32, im_size: int, maxR: float) -> np.ndarray:
    """One-hot (im_size,) of the bin np.histogram2d gives a float32 `value` (all False if none)."""
    hist, _, _ = np.histogram2d(np.array([value]), np.array([value]), bins=[im_size, im_size],
                                range=[[-maxR, maxR], [-maxR, maxR]])
    return hist.sum(axis=1) > 0


def jetnet_images(particles: np.ndarray, im_size: int = IM_SIZE, maxR: float = MAXR,
                  chunk: int = 5000, progress: bool = False) -> np.ndarray:
    """Images of JetNet particle arrays (N, P, 3 or 4 with the mask last) by jetnet.utils.to_image."""
    from jetnet.utils import to_image
    from tqdm import tqdm

    images = np.empty((len(particles), im_size, im_size, 1), np.float32)
    for start in tqdm(range(0, len(particles), chunk), desc="jet images", disable=not progress):
        part = particles[start:start + chunk]
        jets = np.array(part[..., :3], copy=True)  # to_image multiplies pt by the mask in place
        mask = part[..., 3] if part.shape[-1] > 3 else None
        if len(part) == 1:  # to_image wants a 2D array for a single jet
            jets, mask = jets[0], None if mask is None else mask[0]
        images[start:start + chunk, ..., 0] = to_image(jets, im_size, mask=mask, maxR=maxR)
    return images
