"""Seconds to load the pack's nodes over an already imported torch (what ComfyUI pays at start-up).

Target: under 1.5 s. Each run is a fresh interpreter; the median of ``--runs`` is reported as JSON.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = f"""
import importlib.util, sys, time
import torch
t = time.perf_counter()
spec = importlib.util.spec_from_file_location('soundstage', {str(ROOT / '__init__.py')!r},
                                              submodule_search_locations=[{str(ROOT)!r}])
m = importlib.util.module_from_spec(spec); sys.modules['soundstage'] = m; spec.loader.exec_module(m)
from soundstage.nodes.extension import load_node_classes
n = len(load_node_classes())
print(time.perf_counter() - t, n, ' '.join(x for x in ('diffusers', 'transformers', 'peft') if x in sys.modules))
"""


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    times, nodes, heavy = [], 0, ""
    for _ in range(args.runs):
        out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout.split()
        times.append(float(out[0]))
        nodes, heavy = int(out[1]), " ".join(out[2:])
    result = {"bench": "import", "median_s": round(statistics.median(times), 3), "runs": args.runs,
              "nodes": nodes, "heavy_libraries_loaded": heavy}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
