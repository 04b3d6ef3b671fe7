"""Test set-up: make the repository importable as the package ``soundstage`` and find shared fixtures."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _register_package() -> None:
    # The pack is its repository root; ComfyUI imports it under a path-derived name, tests as `soundstage`.
    if "soundstage" in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(
        "soundstage", REPO / "__init__.py", submodule_search_locations=[str(REPO)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["soundstage"] = module
    spec.loader.exec_module(module)


_register_package()


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    # Tiny models: intra-op threads cost more sync than they save, and on a loaded 2-core runner
    # they make tiny forwards up to 50x slower. Benchmarks choose their own thread count.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def golden_root() -> Path:
    return Path(os.environ.get("SOUNDSTAGE_GOLDEN", REPO.parent / "shared" / "golden"))


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    root = golden_root()
    if not root.is_dir():
        pytest.skip(f"golden fixtures not found at {root} (set SOUNDSTAGE_GOLDEN or place shared/ beside the repo)")
    return root


def golden_files(item: str, pattern: str = "*.safetensors") -> list[Path]:
    """Fixture files of one golden item, for parametrizing; empty when shared/ is absent."""
    folder = golden_root() / item
    return sorted(folder.glob(pattern)) if folder.is_dir() else []
