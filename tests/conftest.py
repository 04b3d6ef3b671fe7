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


# With SOUNDSTAGE_COMFYUI_SHADOW=1 (and SOUNDSTAGE_COMFYUI naming a ComfyUI checkout), every headless
# Runner.run in the suite is repeated inside that real ComfyUI (its loader, validator and executor) on the
# same inputs and models, and must succeed there too: the stubs are held to the real thing.
def _run_in_comfyui(prompt: dict, input_dir, models_dir) -> None:
    import json
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "prompt.json"
        path.write_text(json.dumps(prompt, default=str))
        args = [sys.executable, str(REPO / "tests" / "comfyui_probe.py"), str(REPO), str(path), str(Path(tmp) / "out"),
                str(input_dir or ""), str(models_dir or "")]
        proc = subprocess.run(args, cwd=os.environ["SOUNDSTAGE_COMFYUI"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    missing_core = [n for n in prompt.values() if not n["class_type"].startswith("Soundstage")
                    and f"node {n['class_type']} does not exist" in str(result.get("validation"))]
    if missing_core:  # a core node newer than that ComfyUI (e.g. SaveAudioAdvanced): nothing to compare
        import warnings

        warnings.warn(f"ComfyUI at SOUNDSTAGE_COMFYUI lacks core node {missing_core[0]['class_type']}")
        return
    assert result["valid"], f"ComfyUI refused the prompt: {result['validation']}"
    assert result["success"], f"ComfyUI failed the prompt: {result['errors']}"


@pytest.fixture(autouse=True)
def _shadow_runs_in_comfyui(monkeypatch):
    if not (os.environ.get("SOUNDSTAGE_COMFYUI_SHADOW") and os.environ.get("SOUNDSTAGE_COMFYUI")):
        yield
        return
    from soundstage.headless import runner as runner_mod
    from soundstage.headless.workflow import load_json, to_prompt

    original = runner_mod.Runner.run

    def run(self, workflow, overrides=None, *args, **kwargs):
        result = original(self, workflow, overrides, *args, **kwargs)
        prompt, _ = to_prompt(load_json(workflow), self.node_classes)
        used = {prompt[n]["class_type"] for n in prompt}
        modules = {self.node_classes[c].__module__ for c in used if c in self.node_classes}
        if any(not m.startswith(("soundstage.nodes.", "soundstage.headless.core_nodes")) for m in modules):
            return result  # a test-only node that ComfyUI cannot know
        for key, value in (overrides or {}).items():
            node, _, name = key.partition(".")
            prompt[node]["inputs"][name] = value
        _run_in_comfyui(prompt, self.input_dir, self.models_dir)
        return result

    monkeypatch.setattr(runner_mod.Runner, "run", run)
    yield
