"""The JetNet reader: identical to jetnet's own getData on the same files, without the network."""

from __future__ import annotations

from unittest import mock

import h5py
import numpy as np
import pytest

from training.constants import CLASSES
from training.data import balanced_splits, read_jetnet

CASES = [
    {},
    {"split": "train"},
    {"split": "test", "seed": 3, "jet_type": "t"},
    {"split": "valid", "particle_features": ["ptrel", "etarel"], "jet_features": ["mass", "type"],
     "num_particles": 20},
    {"jet_type": ["w"], "split_fraction": [0.5, 0.25, 0.25], "split": "valid"},
]


@pytest.mark.parametrize("kwargs", CASES)
def test_reader_equals_jetnet_getdata(sim_dir, kwargs):
    """jetnet's getData, with only its Zenodo md5 look-up patched to the local file's md5."""
    import jetnet.datasets.utils as jetnet_utils
    from jetnet.datasets import JetNet

    def local_md5(record_id, key):
        return "", jetnet_utils._calculate_md5(str(sim_dir / key))

    with mock.patch.object(jetnet_utils, "_getZenodoFileURL", local_md5):
        expected = JetNet.getData(data_dir=str(sim_dir), **kwargs)
    got = read_jetnet(sim_dir, **kwargs)
    for e, g in zip(expected, got):
        assert e.dtype == g.dtype and e.shape == g.shape
        assert np.array_equal(e, g)


def test_balanced_disjoint_splits(sim_dir):
    splits = balanced_splits(sim_dir, (1000, 250, 250), seed=1)
    for name, size in (("train", 1000), ("valid", 250), ("test", 250)):
        assert len(splits[name]) == size
        assert np.array_equal(np.bincount(splits[name].labels, minlength=5), [size // 5] * 5)
    rows = {name: {s.tobytes() for s in split.particles} for name, split in splits.items()}
    assert not rows["train"] & rows["test"] and not rows["train"] & rows["valid"]


def test_clear_errors(sim_dir, tmp_path):
    with pytest.raises(ValueError, match="per class"):
        balanced_splits(sim_dir, (5000, 1000, 1000))
    with pytest.raises(FileNotFoundError, match="training.simulate"):
        read_jetnet(tmp_path)
    for c in CLASSES:
        with h5py.File(tmp_path / f"{c}.hdf5", "w") as f:
            f["particle_features"] = np.zeros((3, 30, 2), np.float32)
            f["jet_features"] = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="expected particle_features"):
        read_jetnet(tmp_path)
    (tmp_path / "g.hdf5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="not a JetNet-layout HDF5 file"):
        read_jetnet(tmp_path)
