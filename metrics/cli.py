"""`python -m soundstage eval --pred DIR --ref DIR [--out DIR]`"""
from __future__ import annotations

from .evaluate import evaluate


def main(args) -> int:
    report = evaluate(args.pred, args.ref, args.out, clip=getattr(args, "clip", None))
    for k, v in report["summary"].items():
        print(f"{k:24s} {v:.4f}")
    return 0
