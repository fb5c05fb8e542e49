"""The exported-model contract: `models/<name>/model.onnx` + `card.json`, and atomic writes.

Training's export writes artifacts with these definitions and serving reads them with the same
ones, so the card format exists once. Only ONNX and JSON are ever loaded: no pickle, no Keras.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

MODEL_FILE = "model.onnx"
CARD_FILE = "card.json"
# Model names are identifiers, never paths: they are used as directory and BentoML model names.
MODEL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class TensorSpec(BaseModel):
    name: str
    dtype: Literal["float32"] = "float32"
    shape: list[Optional[int]]  # None marks the dynamic batch dimension


class ImageSpec(BaseModel):
    im_size: int
    maxR: float
    renderer: str = "in-graph 2D histogram of ptrel over (etarel, phirel), equal to jetnet.utils.to_image"


class Preprocessing(BaseModel):
    """What a client's jet becomes before the ONNX graph; serving applies exactly this."""

    representation: Literal["particles", "image"]
    features: list[str]  # order of the last input axis
    n_particles: int  # keep the n highest-ptrel particles, zero-pad the rest
    sort_by: str = "ptrel"
    image: Optional[ImageSpec] = None  # rendered inside the ONNX graph for image models


class Metrics(BaseModel):
    accuracy: float
    loss: float


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())

    name: str = Field(pattern=MODEL_NAME.pattern)
    version: str
    architecture: str
    classes: list[str]
    input: TensorSpec
    output: TensorSpec
    preprocessing: Preprocessing
    opset: int
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    metrics: dict[str, Metrics] = {}  # split name -> metrics of the exported ONNX model
    training: dict = {}
    data: dict = {}
    versions: dict[str, str] = {}
    created: str = ""


class ArtifactError(RuntimeError):
    """An exported model that must not be served (missing, unreadable or tampered with)."""


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename.

    `suffix` is for writers that insist on a file ending (Keras wants `.keras`, `.weights.h5`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; artifacts are meant to be shared
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def read_card(model_dir: Path) -> ModelCard:
    path = Path(model_dir) / CARD_FILE
    try:
        return ModelCard.model_validate_json(path.read_bytes())
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{path}: unreadable model card ({e})") from e


def verified_model(model_dir: Path) -> tuple[ModelCard, Path]:
    """The card and ONNX path of an exported model, after checking the file's sha256."""
    card = read_card(model_dir)
    onnx_path = Path(model_dir) / MODEL_FILE
    if not onnx_path.is_file():
        raise ArtifactError(f"{onnx_path}: missing ONNX file")
    actual = sha256_file(onnx_path)
    if actual != card.sha256:
        raise ArtifactError(
            f"{onnx_path}: sha256 {actual[:12]}... does not match the card's {card.sha256[:12]}... "
            "(truncated or tampered file); refusing to load it"
        )
    return card, onnx_path


def write_card(model_dir: Path, card: ModelCard) -> None:
    with atomic_path(Path(model_dir) / CARD_FILE) as tmp:
        tmp.write_text(json.dumps(card.model_dump(mode="json"), indent=2) + "\n")
