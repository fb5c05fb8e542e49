"""`python -m training <command>`: build (simulate/train/export), simulate, download."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .constants import CLASSES
from .models import MODELS
from .profiles import PROFILES


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="train and export models (simulating jets if no --data)")
    b.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    b.add_argument("--data", type=Path, help="JetNet-layout directory ({g,q,t,w,z}.hdf5)")
    b.add_argument("--models", default=",".join(MODELS), help="comma-separated names")
    b.add_argument("--models-dir", type=Path, default=Path("models"))
    b.add_argument("--runs-dir", type=Path, default=Path("runs"))
    b.add_argument("--workers", type=int, default=2, help="simulation processes")
    b.add_argument("--force", action="store_true", help="rebuild models that already exist")
    b.add_argument("--no-register", action="store_true", help="skip the BentoML model store")

    d = sub.add_parser("download", help="fetch the real JetNet-30 files with jetnet (needs internet)")
    d.add_argument("--data", type=Path, default=Path("data/jetnet"))

    sub.add_parser("simulate", help="simulate JetNet-format jets (see python -m training.simulate -h)",
                   add_help=False)

    args, rest = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.command == "simulate":
        from .simulate import main as simulate_main

        return simulate_main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "download":
        from .data import download_jetnet

        return download_jetnet(args.data, CLASSES)
    from .build import build

    names = [n for n in args.models.split(",") if n]
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {unknown}; registered: {sorted(MODELS)}")
    build(args.profile, args.data, args.models_dir, args.runs_dir, names, args.force, args.workers,
          register=not args.no_register)


if __name__ == "__main__":
    main()
