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


def golden_parts(path: Path) -> tuple[dict, dict, dict, dict]:
    """A golden file split as its README describes: (weights, ``input.*``, ``output.*`` with the prefixes
    dropped, and the JSON beside it)."""
    import json

    from safetensors.torch import load_file

    data = load_file(str(path))
    weights = {k: v for k, v in data.items() if not k.startswith(("input.", "output."))}
    inputs = {k[len("input."):]: v for k, v in data.items() if k.startswith("input.")}
    outputs = {k[len("output."):]: v for k, v in data.items() if k.startswith("output.")}
    return weights, inputs, outputs, json.loads(path.with_suffix(".json").read_text())


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


# ---- test lanes -----------------------------------------------------------------------------------
# End-to-end tests: example workflows run headless with tiny weights, training and data-generation runs,
# the real-size memory plans, subprocess import checks. `pytest -m "not slow"` is the quick lane;
# CI (`pytest tests`) runs everything.
SLOW_MODULES = {"test_dubbing_datagen.py", "test_dubbing_clips.py", "test_dubbing_train.py", "test_audiogen_train.py",
                "test_dualdub_train.py", "test_in_comfyui.py", "test_readme_examples.py"}
SLOW_TESTS = {
    "test_audiogen_nodes.py::test_workflow_runs_headless", "test_audiogen_nodes.py::test_node_chain",
    "test_dualdub_nodes.py::test_workflow_runs_headless_with_tiny_weights",
    "test_dubbing_nodes.py::test_workflow_runs_headless_with_tiny_weights",
    "test_mtv_nodes.py::test_workflow_runs_headless_with_tiny_weights",
    "test_ovi_nodes.py::test_workflow_runs_headless", "test_ovi_nodes.py::test_node_chain_matches_direct_calls",
    "test_media_nodes.py::test_example_workflow_me_delivery",
    "test_media_nodes.py::test_graph_core_load_video_through_our_nodes_to_core_save_video",
    "test_dubbing_refine.py::test_refine_node_function_runs_end_to_end",
    "test_cli.py::test_main_job_writes_the_delivery_file", "test_cli.py::test_synth_and_eval_entries",
    "test_ovi_memory.py::test_real_11b_config_fits_24gb_in_fp8_with_block_swap",
    "test_ltx2_memory.py::test_real_19b_config_memory_modes",
    "test_pack_hygiene.py::test_model_layer_and_stubs_import_without_the_media_and_metric_extras",
    "test_pack_hygiene.py::test_loading_the_nodes_leaves_the_heavy_libraries_for_later",
    "test_dubbing_filters.py::test_whisper_filter_scores_the_target_line",
    "test_dubbing_filters.py::test_whisper_model_folder_takes_the_language_code",
    "test_mtv_demucs.py::test_separation_matches_demucs_apply_model",
    "test_bigvgan.py::test_real_checkpoint_layout",
    "test_dubbing_filters.py::test_build_dataset_drops_the_pair_a_filter_rejects",
    "test_dubbing_nodes.py::test_lora_loader_stacks_without_touching_the_shared_model",
    "test_ltx2_memory.py::test_loader_node_block_swap_is_self_placing_and_keeps_results",
    "test_legacy_values.py::test_old_names_load_the_same_model",
    "test_clip_metrics.py::test_eval_with_clip_flag",
    "test_synthworld.py::test_samples_cover_every_input_the_example_workflows_load",
    "test_media_fingerprint.py::test_replaced_audio_file_reruns_and_unchanged_stays_cached",
}


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end (workflow, training, data generation, real-size plans)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = Path(str(item.fspath)).name
        if module in SLOW_MODULES or f"{module}::{getattr(item, 'originalname', item.name)}" in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
