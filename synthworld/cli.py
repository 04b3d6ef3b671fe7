"""`python -m soundstage synth --out DIR --n N` (``--samples``: the example workflows' inputs; ``--switch``: language-switch
clips for ``dubbing-data``)."""
from __future__ import annotations

from .dataset import generate_dataset


def main(args) -> int:
    if getattr(args, "samples", False):
        from .samples import write_workflow_samples

        files = write_workflow_samples(args.out, seed=args.seed, seconds=args.seconds, size=args.size)
        print(f"wrote {len(files)} sample inputs for the example workflows to {args.out}")
        return 0
    if getattr(args, "switch", None) is not None:
        from .switch import write_switch_clips

        written = write_switch_clips(args.out, getattr(args, "split", None) or "train", args.n,
                                     half_frames=args.switch or None, size=args.size, fps=args.fps)
        print(f"wrote {len(written)} language-switch clips (mp4 + .switch.json) to {args.out}")
        return 0
    manifest = generate_dataset(args.out, args.n, seed=args.seed, seconds=args.seconds, size=args.size, fps=args.fps,
                                split=getattr(args, "split", None), task=getattr(args, "task", "full"),
                                languages=tuple(getattr(args, "languages", None) or ("en", "fr")))
    print(f"wrote {len(manifest['clips'])} clips and manifest.json to {args.out}")
    return 0
