"""The few facts every stage agrees on. Serving reads the same facts from each model's card."""

# JetNet's class order (jetnet.datasets.JetNet.JET_TYPES): the class index is the position here.
CLASSES = ("g", "q", "t", "w", "z")
CLASS_LABELS = {"g": "gluon", "q": "light quark", "t": "top quark", "w": "W boson", "z": "Z boson"}

# JetNet's per-particle features, in file order; the models see the first three.
PARTICLE_FEATURES = ("etarel", "phirel", "ptrel", "mask")
INPUT_FEATURES = ("etarel", "phirel", "ptrel")
# JetNet's per-jet features as stored in the files; getData prepends "type" (the class index).
FILE_JET_FEATURES = ("pt", "eta", "mass", "num_particles")
JET_FEATURES = ("type",) + FILE_JET_FEATURES

N_PARTICLES = 30  # the 30 highest-pT constituents per jet (JetNet-30)
JET_RADIUS = 0.8  # anti-kT R used for JetNet

# Jet images as in the paper: jetnet.utils.to_image at 50x50 pixels over [-maxR, maxR]^2.
IM_SIZE = 50
MAXR = 0.4

# Paper split sizes (train / validation / test), balanced over classes.
PAPER_SPLIT = (200_000, 50_000, 50_000)
