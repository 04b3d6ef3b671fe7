"""`python -m soundstage synth --out DIR --n N`"""
from __future__ import annotations

from .dataset import generate_dataset


def main(args) -> int:
    manifest = generate_dataset(args.out, args.n, seed=args.seed, seconds=args.seconds, size=args.size, fps=args.fps)
    print(f"wrote {len(manifest['clips'])} clips and manifest.json to {args.out}")
    return 0
