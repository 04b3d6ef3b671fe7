"""Saved workflows from before the one weight-dtype / offload vocabulary still validate and load:
`auto`, `bfloat16`, `fp8_e4m3`, ... and the LTX-2 loader's old block_swap boolean map onto today's names."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"
NEW_TO_OLD = {"default": "auto", "bf16": "bfloat16", "fp8_e4m3fn": "fp8_e4m3"}
# Widget slots that hold a weight dtype or an offload mode, per loader.
SLOTS = {"SoundstageLoadMelVAE": [1], "SoundstageLoadVocoder": [1], "SoundstageCogVideoXVAELoader": [1],
         "SoundstageMTVLoadModel": [1], "SoundstageLoadLTX2AVModel": [1, 3], "SoundstageLoadLTX2TextEncoder": [1],
         "SoundstageLoadLTX2LatentUpsampler": [1], "SoundstageWanVAELoader": [1], "SoundstageOviLoadModel": [1, 2],
         "SoundstageLoadMMDiT": [1], "SoundstageLoadT5": [2], "SoundstageLoadDualDub": [3],
         "SoundstageLoadMMDiTVisualEncoders": [3]}
NAMED = {"precision", "weight_dtype", "weight_storage", "offload"}


def _nodes(workflow: dict):
    yield from workflow.get("nodes", [])
    for sub in workflow.get("definitions", {}).get("subgraphs", []):
        yield from sub.get("nodes", [])


def _aged(workflow: dict) -> tuple[dict, int]:
    """The workflow as it was saved before: legacy names, the LTX-2 offload as a boolean."""
    count = 0
    for node in _nodes(workflow):
        for slot in SLOTS.get(node.get("type"), []):
            values = node["widgets_values"]
            if node["type"] == "SoundstageLoadLTX2AVModel" and slot == 3:
                values[slot] = values[slot] == "block_swap"
                count += 1
            elif values[slot] in NEW_TO_OLD:
                values[slot] = NEW_TO_OLD[values[slot]]
                count += 1
    return workflow, count


def _dtype_errors(runner, workflow: dict) -> list:
    from soundstage.headless.runner import ValidationFailed

    try:
        runner.validate(workflow)
    except ValidationFailed as exc:  # missing model files are expected here; only the dtype inputs matter
        return [err for entry in exc.response.get("node_errors", {}).values() for err in entry["errors"]
                if (err.get("extra_info") or {}).get("input_name") in NAMED or
                any(name in str(err.get("details", "")) for name in NAMED)]
    return []


@pytest.fixture(scope="module")
def runner():
    from soundstage.headless.runner import Runner

    return Runner(device="cpu")


@pytest.mark.parametrize("name", sorted(p.name for p in WORKFLOWS.glob("*.json")))
def test_old_saved_values_still_validate(runner, name):
    workflow, aged = _aged(json.loads((WORKFLOWS / name).read_text()))
    if not aged:
        pytest.skip(f"{name} has no loader with a weight dtype")
    assert _dtype_errors(runner, workflow) == []


def test_an_unknown_value_is_still_refused(runner):
    workflow = json.loads((WORKFLOWS / "dub_video.json").read_text())
    loader = next(n for n in _nodes(workflow) if n["type"] == "SoundstageLoadLTX2AVModel")
    loader["widgets_values"][1] = "fp7"
    errors = _dtype_errors(runner, workflow)
    assert errors and "fp7" in json.dumps(errors)


def test_old_names_load_the_same_model(tmp_path):
    # What execute() receives from an old workflow: the LTX-2 loader's boolean and legacy dtype names.
    from soundstage.nodes.dubbing import load_ltx2_av
    from soundstage.testing.just_dub_it import write_tiny_single_file

    path = str(write_tiny_single_file(tmp_path / "m.safetensors"))
    old = load_ltx2_av(path, "auto", "default", True, 1)
    new = load_ltx2_av(path, "default", "default", "block_swap", 1)
    assert old.transformer.self_placing and new.transformer.self_placing
    assert old.transformer.dtype == new.transformer.dtype
    assert not load_ltx2_av(path, "auto", "default", False, 0).transformer.self_placing
