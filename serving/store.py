"""The BentoML model store side of exported models: register `models/<name>/` and find them again.

A model is stored as `<name>:<version>` where the version is the first 16 hex digits of the ONNX
file's sha256 (the card's `version`), so registering the same export twice is a no-op and a new
export becomes `<name>:latest`. The stored model holds the same two files, model.onnx and card.json.

    python -m serving.store register models/   # every exported model found there
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from .artifacts import CARD_FILE, MODEL_FILE, MODEL_NAME, ArtifactError, verified_model

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")  # no usage analytics calls from this tool

PROJECT_LABEL = {"project": "jet-tagger"}


def register(model_dir: Path) -> str:
    """Register one exported model directory in the BentoML model store; returns its tag."""
    import bentoml
    from bentoml.exceptions import NotFound

    card, onnx_path = verified_model(model_dir)
    if card.name != Path(model_dir).name:
        raise ArtifactError(f"{model_dir}: its card names the model {card.name!r}")
    tag = f"{card.name}:{card.version}"
    try:
        return str(bentoml.models.get(tag).tag)
    except NotFound:
        pass
    metadata = {"representation": card.preprocessing.representation, "sha256": card.sha256,
                **{f"{split}_{k}": v for split, m in card.metrics.items() for k, v in m.model_dump().items()}}
    with bentoml.models.create(tag, labels={**PROJECT_LABEL, "stage": "exported"}, metadata=metadata) as model:
        shutil.copyfile(onnx_path, model.path_of(MODEL_FILE))
        shutil.copyfile(Path(model_dir) / CARD_FILE, model.path_of(CARD_FILE))
    return tag


def register_all(models_dir: Path) -> list[str]:
    """Register every `models_dir/<name>/`. Only folders named like a model count: a killed export
    leaves its staging folder `.<name>.XXXX/` behind, and that must never be served."""
    tags = []
    for model_dir in sorted(p for p in Path(models_dir).iterdir()
                            if MODEL_NAME.match(p.name) and (p / CARD_FILE).is_file()):
        tags.append(register(model_dir))
    return tags


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m serving.store", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    reg = sub.add_parser("register", help="register exported models in the BentoML model store")
    reg.add_argument("models_dir", type=Path, nargs="?", default=Path("models"))
    args = parser.parse_args(argv)
    try:
        for tag in register_all(args.models_dir):
            print(f"registered {tag}")
    except ArtifactError as e:
        parser.exit(1, f"error: {e}\n")


if __name__ == "__main__":
    main()
