"""`python -m training <command>`: build, evaluate, study, simulate, download."""

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
    b.add_argument("--mixed-precision", action="store_true",
                   help="train in float16 on a GPU (exported models stay float32)")

    e = sub.add_parser("evaluate", help="metrics, figures and reports/<profile>/report.md for models/")
    e.add_argument("--models-dir", type=Path, default=Path("models"))
    e.add_argument("--runs-dir", type=Path, default=Path("runs"))
    e.add_argument("--reports-dir", type=Path, default=Path("reports"))
    e.add_argument("--models", help="comma-separated names (default: all in --models-dir)")

    st = sub.add_parser("study", help="the paper's data studies: maxr, threshold")
    st.add_argument("study", choices=["maxr", "threshold"])
    st.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    st.add_argument("--data", type=Path, help="JetNet-layout directory (default: the profile's simulated jets)")
    st.add_argument("--model", default="cnn", help="maxr: the image model to train")
    st.add_argument("--threshold", type=float, default=0.3, help="threshold: max-pixel cut")

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
    if args.command == "evaluate":
        from .evaluate import evaluate

        names = args.models.split(",") if args.models else None
        return print(f"wrote {evaluate(args.models_dir, args.runs_dir, args.reports_dir, names)}")
    if args.command == "study":
        import json

        from .studies import maxr_study, threshold_study

        if args.study == "maxr":
            return print(json.dumps(maxr_study(args.model, args.profile, args.data), indent=1))
        return print(json.dumps(threshold_study(args.profile, args.data, args.threshold), indent=1))
    from .build import build

    names = [n for n in args.models.split(",") if n]
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {unknown}; registered: {sorted(MODELS)}")
    build(args.profile, args.data, args.models_dir, args.runs_dir, names, args.force, args.workers,
          register=not args.no_register, mixed_precision=args.mixed_precision)


if __name__ == "__main__":
    main()
