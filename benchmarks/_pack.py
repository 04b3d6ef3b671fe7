"""Make ``import soundstage`` work for a benchmark run from a plain checkout (not pip-installed)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def ensure_pack() -> None:
    if "soundstage" in sys.modules:
        return
    if importlib.util.find_spec("soundstage") is not None:  # installed (pip install -e .)
        return
    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("soundstage", root / "__init__.py",
                                                  submodule_search_locations=[str(root)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["soundstage"] = module
    spec.loader.exec_module(module)
