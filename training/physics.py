"""Pythia 8 + FastJet: pp collisions at 13 TeV -> truth-matched anti-kT R=0.8 jets in JetNet's format.

One `JetGenerator` per (class, seed). It generates events in batches (`Pythia.nextBatch`, awkward
arrays), clusters visible final-state particles with FastJet, keeps jets with pT in the window and
|eta| < 2.5 that are matched to the parton (g, q) or to a hadronically decaying t/W/Z whose decay
quarks all lie inside the jet, and returns JetNet's per-particle and per-jet features.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import awkward as ak
import numpy as np

from .constants import CLASSES, JET_RADIUS, N_PARTICLES

# Hadronic decays of W and Z (to u, d, s, c, b) and of the top via t -> bW.
_HADRONIC_W = ["24:onMode = off", "24:onIfAny = 1 2 3 4 5"]
_HADRONIC_Z = ["23:onMode = off", "23:onIfAny = 1 2 3 4 5"]

# Hard processes per class. Light quarks are u, d, s (JetNet's q); c/b jets are not matched.
PROCESSES: dict[str, list[str]] = {
    "g": ["HardQCD:gg2gg = on", "HardQCD:qqbar2gg = on", "HardQCD:qg2qg = on"],
    "q": [
        "HardQCD:qq2qq = on",
        "HardQCD:qqbar2qqbarNew = on",
        "HardQCD:gg2qqbar = on",
        "HardQCD:qg2qg = on",
        "HardQCD:nQuarkNew = 3",
    ],
    "t": ["Top:gg2ttbar = on", "Top:qqbar2ttbar = on", *_HADRONIC_W],
    "w": ["WeakDoubleBoson:ffbar2WW = on", *_HADRONIC_W],
    # gmZmode = 2: pure Z exchange, the photon contribution is switched off.
    "z": ["WeakDoubleBoson:ffbar2gmZgmZ = on", "WeakZ0:gmZmode = 2", *_HADRONIC_Z],
}
# PDG id of the matched truth object: a parton for g/q, the decaying resonance for t/W/Z.
_RESONANCE_ID = {"t": 6, "w": 24, "z": 23}
_LIGHT_QUARKS = (1, 2, 3)
PT_HAT = (750.0, 1250.0)  # GeV: the hard scattering's pT range, around the 1 TeV jets we keep
_NEUTRINOS = (12, 14, 16)


@dataclass(frozen=True)
class JetSelection:
    pt_min: float = 800.0
    pt_max: float = 1200.0
    abs_eta_max: float = 2.5
    radius: float = JET_RADIUS


@dataclass(frozen=True)
class Jets:
    """JetNet's layout: particle_features (N, 30, 4) = etarel, phirel, ptrel, mask;
    jet_features (N, 4) = pt, eta, mass, num_particles."""

    particle_features: np.ndarray
    jet_features: np.ndarray

    def __len__(self) -> int:
        return len(self.jet_features)

    @staticmethod
    def concatenate(parts: list[Jets]) -> Jets:
        return Jets(
            np.concatenate([p.particle_features for p in parts]).astype(np.float32),
            np.concatenate([p.jet_features for p in parts]).astype(np.float32),
        )


def pythia_settings(jet_type: str, seed: int, pt_hat: tuple[float, float]) -> list[str]:
    return [
        "Beams:eCM = 13000.",
        f"PhaseSpace:pTHatMin = {pt_hat[0]}",
        f"PhaseSpace:pTHatMax = {pt_hat[1]}",
        *PROCESSES[jet_type],
        "Random:setSeed = on",
        f"Random:seed = {seed}",
        "Print:quiet = on",
        "Next:numberCount = 0",
    ]


class JetGenerator:
    """Generates truth-matched jets of one class. Deterministic for a given seed."""

    def __init__(
        self,
        jet_type: str,
        seed: int,
        selection: JetSelection = JetSelection(),
        pt_hat: tuple[float, float] = PT_HAT,
        events_per_batch: int = 50,
    ):
        import fastjet
        import pythia8mc

        if jet_type not in CLASSES:
            raise ValueError(f"jet_type must be one of {CLASSES}, got {jet_type!r}")
        self.jet_type = jet_type
        self.selection = selection
        self.events_per_batch = events_per_batch
        self.settings = pythia_settings(jet_type, seed, pt_hat)
        with _quiet_stdout():  # Pythia's and FastJet's banners go to stdout, not via logging
            self.pythia = pythia8mc.Pythia("", False)
            for line in self.settings:
                if not self.pythia.readString(line):
                    raise RuntimeError(f"Pythia rejected setting {line!r}")
            if not self.pythia.init():
                raise RuntimeError(f"Pythia failed to initialise for {jet_type}")
            self.jet_def = fastjet.JetDefinition(fastjet.antikt_algorithm, selection.radius)
        self.events_generated = 0

    def generate(self, n_jets: int) -> Jets:
        parts, n = [], 0
        while n < n_jets:
            jets = self._next_batch()
            parts.append(jets)
            n += len(jets)
        out = Jets.concatenate(parts)
        return Jets(out.particle_features[:n_jets], out.jet_features[:n_jets])

    def _next_batch(self) -> Jets:
        import fastjet

        with _quiet_stdout():
            events = self.pythia.nextBatch(self.events_per_batch)
        self.events_generated += len(events)
        prt = events.prt
        visible = (prt.status > 0) & ~_isin(abs(prt.id), _NEUTRINOS)
        final = prt[visible]
        momenta = ak.zip(
            {"px": final.p.px, "py": final.p.py, "pz": final.p.pz, "E": final.p.e},
            with_name="Momentum4D",
        )
        with _quiet_stdout():
            cluster = fastjet.ClusterSequence(momenta, self.jet_def)
            pt_floor = 0.9 * self.selection.pt_min
            jets = cluster.inclusive_jets(min_pt=pt_floor)
            constituents = cluster.constituents(min_pt=pt_floor)
        return self._select(prt, jets, constituents)

    def _select(self, prt, jets, constituents) -> Jets:
        sel = self.selection
        n_per_event = ak.to_numpy(ak.num(jets, axis=1))
        jet_p = _flat_momenta(jets, axis=1)
        pt, eta, phi = _pt_eta_phi(*jet_p[:3])
        kinematic = (pt >= sel.pt_min) & (pt <= sel.pt_max) & (np.abs(eta) < sel.abs_eta_max)
        event_of_jet = np.repeat(np.arange(len(n_per_event)), n_per_event)
        record = _EventRecord(prt)
        keep = np.zeros(len(pt), dtype=bool)
        for i_event in np.unique(event_of_jet[kinematic]):
            truth = self._truth(*record.event(i_event))
            for j in np.flatnonzero(kinematic & (event_of_jet == i_event)):
                keep[j] = _matches(eta[j], phi[j], truth, sel.radius)
        flat_constituents = ak.flatten(constituents, axis=1)[keep]
        return jetnet_features([p[keep] for p in jet_p], flat_constituents)

    def _truth(self, ids, status, mother, eta_phi) -> list[np.ndarray]:
        """Truth objects of this class: each an array of (eta, phi) rows that must all be in the jet."""
        outgoing = np.flatnonzero(np.abs(status) == 23)  # outgoing partons of the hard process
        groups: dict[int, list[int]] = {}
        for i in outgoing:
            groups.setdefault(_root_resonance(i, ids, status, mother), []).append(i)
        if self.jet_type in _RESONANCE_ID:
            want = _RESONANCE_ID[self.jet_type]
            return [eta_phi[q] for root, q in groups.items() if root >= 0 and abs(ids[root]) == want]
        partons = groups.get(-1, [])
        if self.jet_type == "g":
            return [eta_phi[[i]] for i in partons if ids[i] == 21]
        return [eta_phi[[i]] for i in partons if abs(ids[i]) in _LIGHT_QUARKS]


class _EventRecord:
    """Flat numpy views of a batch of Pythia event records, sliced per event on demand."""

    def __init__(self, prt):
        self.offsets = np.concatenate([[0], np.cumsum(ak.to_numpy(ak.num(prt.id)))])
        self.ids = ak.to_numpy(ak.flatten(prt.id))
        self.status = ak.to_numpy(ak.flatten(prt.status))
        self.mother = ak.to_numpy(ak.flatten(prt.mother1))
        self.p = [ak.to_numpy(ak.flatten(getattr(prt.p, f))) for f in ("px", "py", "pz")]

    def event(self, i: int):
        s = slice(self.offsets[i], self.offsets[i + 1])
        _, eta, phi = _pt_eta_phi(*(c[s] for c in self.p))
        return self.ids[s], self.status[s], self.mother[s], np.stack([eta, phi], axis=-1)


def _root_resonance(i: int, ids, status, mother) -> int:
    """Index of the outermost t/W/Z that parton i descends from, or -1 for a QCD parton."""
    root, j = -1, mother[i]
    while j > 0 and abs(status[j]) != 21:  # stop at the incoming partons of the hard process
        if abs(ids[j]) in (6, 23, 24):
            root = j
        j = mother[j]
    return root


def _matches(eta: float, phi: float, truth: list[np.ndarray], radius: float) -> bool:
    for points in truth:
        if np.all(delta_r(eta, phi, points[:, 0], points[:, 1]) < radius):
            return True
    return False


def jetnet_features(jet_p: list[np.ndarray], constituents) -> Jets:
    """JetNet per-particle and per-jet features from jet (px, py, pz, E) and their constituents."""
    n_jets = len(jet_p[0])
    particles = np.zeros((n_jets, N_PARTICLES, 4), np.float32)
    num = ak.to_numpy(ak.num(constituents, axis=1))
    pt_j, eta_j, phi_j = _pt_eta_phi(*jet_p[:3])
    mass = np.sqrt(np.maximum(jet_p[3] ** 2 - jet_p[0] ** 2 - jet_p[1] ** 2 - jet_p[2] ** 2, 0.0))
    if n_jets:
        jet_index = np.repeat(np.arange(n_jets), num)
        pt, eta, phi = _pt_eta_phi(*_flat_momenta(constituents, axis=None)[:3])
        order = np.lexsort((-pt, jet_index))  # by jet, then by decreasing pT
        jet_index, pt, eta, phi = jet_index[order], pt[order], eta[order], phi[order]
        rank = np.arange(len(pt)) - np.repeat(np.concatenate([[0], np.cumsum(num)[:-1]]), num)
        lead = rank < N_PARTICLES
        j, r = jet_index[lead], rank[lead]
        particles[j, r, 0] = eta[lead] - eta_j[j]
        particles[j, r, 1] = wrap_phi(phi[lead] - phi_j[j])
        particles[j, r, 2] = pt[lead] / pt_j[j]
        particles[j, r, 3] = 1.0  # padding rows stay exactly zero, as in JetNet
    jet_features = np.stack([pt_j, eta_j, mass, num], axis=-1).astype(np.float32)
    return Jets(particles, jet_features)


def _flat_momenta(vectors, axis) -> list[np.ndarray]:
    """(px, py, pz, E) of an awkward array of four-vectors as flat numpy arrays."""
    return [ak.to_numpy(ak.flatten(vectors[f], axis=axis)) for f in ("px", "py", "pz", "E")]


def _pt_eta_phi(px, py, pz):
    pt = np.hypot(px, py)
    eta = np.arcsinh(np.divide(pz, pt, out=np.full_like(pz, np.inf), where=pt > 0))
    return pt, eta, np.arctan2(py, px)


def wrap_phi(dphi):
    """Wrap an azimuthal difference into [-pi, pi)."""
    return (dphi + np.pi) % (2 * np.pi) - np.pi


def delta_r(eta1, phi1, eta2, phi2):
    return np.hypot(eta1 - eta2, wrap_phi(phi1 - phi2))


def _isin(values, choices) -> ak.Array:
    out = values == choices[0]
    for c in choices[1:]:
        out = out | (values == c)
    return out


class _quiet_stdout:
    """Silence C++ writes to fd 1 (Pythia/FastJet banners) while keeping Python's stdout usable."""

    def __enter__(self):
        import sys

        sys.stdout.flush()
        self._saved = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)

    def __exit__(self, *exc):
        os.dup2(self._saved, 1)
        os.close(self._saved)
