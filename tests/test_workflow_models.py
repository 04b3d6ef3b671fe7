"""Every model file an example workflow names has its source where ComfyUI looks for it.

ComfyUI's Missing Models panel reads a node's ``properties.models`` (name, url, directory) for the file its
widget holds; each workflow's Note says what to download and where it goes. The model folder of each loader
input is found by asking the node itself: a probe file is put in every model folder and the input's
options say which folders it lists.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from soundstage.compat import folder_paths
from soundstage.headless.registry import build_registry
from soundstage.headless.workflow import ui_to_api
from soundstage.nodes.model_folders import FAMILIES, register_model_folders

from helpers import temporary_models_dir
from model_sources import NOTE_ONLY, SHIPPED_PREFIX, SOURCES, UNRELEASED

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))
MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".sft", ".th")


@pytest.fixture(scope="module")
def registry():
    return build_registry()


@pytest.fixture(scope="module")
def input_folders(registry, tmp_path_factory):
    """(node type, input) -> the model folders its options come from, for the node types the examples use."""
    types = {n["type"] for p in WORKFLOWS for n in json.loads(p.read_text())["nodes"]} & set(registry)
    with temporary_models_dir(tmp_path_factory.mktemp("probe") / "models") as root:
        register_model_folders()
        probes = {}
        for i, folder in enumerate(sorted(folder_paths.folder_names_and_paths)):
            base = Path(folder_paths.get_folder_paths(folder)[0])
            if root not in base.parents:
                continue
            base.mkdir(parents=True, exist_ok=True)
            for suffix in (".safetensors", ".json"):  # weights, and tokenizer lists (files ending .json)
                (base / f"probe{i}{suffix}").write_bytes(b"")
                probes[f"probe{i}{suffix}"] = folder
        found: dict[tuple[str, str], set[str]] = {}
        for node_type in types:
            for section in registry[node_type].INPUT_TYPES().values():
                for name, spec in section.items():
                    options = spec[0] if spec and isinstance(spec[0], list) else (
                        spec[1].get("options", []) if len(spec) > 1 and isinstance(spec[1], dict) else [])
                    folders = {probes[o] for o in options if isinstance(o, str) and o in probes}
                    if folders:
                        found[(node_type, name)] = folders
    return found


def model_inputs(path: Path, registry, input_folders):
    """(node, input name, file) for every loader input of a workflow that names a model file."""
    workflow = json.loads(path.read_text())
    prompt = ui_to_api(workflow, registry)
    nodes = {str(n["id"]): n for n in workflow["nodes"]}
    for node_id, api in prompt.items():
        for name, value in api["inputs"].items():
            if (api["class_type"], name) in input_folders and isinstance(value, str) and value.endswith(MODEL_SUFFIXES):
                yield nodes[node_id], name, value


def folder_path(folder: str) -> str:
    return "models/" + FAMILIES.get(folder, folder) + "/"


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_every_loader_names_the_official_source_of_its_file(path, registry, input_folders):
    for node, name, value in model_inputs(path, registry, input_folders):
        where = f"{path.name} node {node['id']} ({node['type']}) '{name}' = {value}"
        entries = [m for m in (node.get("properties") or {}).get("models", []) if m["name"] == value]
        if value.startswith(SHIPPED_PREFIX) or value in UNRELEASED:
            assert not entries, f"{where}: shipped or unreleased, so no download entry"
            continue
        assert len(entries) == 1, f"{where}: no properties.models entry for it"
        entry = entries[0]
        assert entry["directory"] in input_folders[(node["type"], name)], f"{where}: directory {entry['directory']}"
        assert value in SOURCES, f"{where}: add its official source to tests/model_sources.py"
        assert entry["url"] == SOURCES[value][0], f"{where}: url differs from the source table"


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_the_note_says_what_to_download_and_where(path, registry, input_folders):
    workflow = json.loads(path.read_text())
    needed = list(model_inputs(path, registry, input_folders))
    notes = "\n".join(n["widgets_values"][0] for n in workflow["nodes"] if n["type"] in ("Note", "MarkdownNote"))
    if not needed:
        return
    assert notes, f"{path.name} names model files but has no Note"
    for node, name, value in needed:
        if value.startswith(SHIPPED_PREFIX):
            assert "come with the pack" in notes, f"{path.name}: the Note should say {value} comes with the pack"
            continue
        line = next((line for line in notes.splitlines() if value in line), None)
        assert line, f"{path.name}: the Note does not mention {value}"
        if value in UNRELEASED:
            assert "no released weights" in line, f"{path.name}: the Note should say {value} is not released"
        else:
            folders = {folder_path(f) for f in input_folders[(node["type"], name)]}
            assert any(f in line for f in folders), f"{path.name}: the Note does not say where {value} goes ({folders})"
            assert SOURCES[value][0] in line, f"{path.name}: the Note does not give {value}'s source"


def test_every_source_is_used_and_public():
    used = {value for p in WORKFLOWS for n in json.loads(p.read_text())["nodes"]
            for value in (n.get("widgets_values") or []) if isinstance(value, str)}
    assert set(SOURCES) <= used, f"sources no workflow uses: {sorted(set(SOURCES) - used)}"
    notes = "\n".join(v for v in used if v.startswith(("Models this", "Runs as shipped")))
    assert all(f"{name} " in notes and url in notes for name, (url, _) in NOTE_ONLY.items())
    for url, where in [*SOURCES.values(), *NOTE_ONLY.values()]:
        assert url.startswith("https://") and where
