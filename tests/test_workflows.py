"""Every bundled workflow is a well-formed UI graph of known nodes; UI <-> API conversion round-trips."""
import json
from pathlib import Path

import pytest

from soundstage.headless.registry import build_registry
from soundstage.headless.ui_export import api_to_ui
from soundstage.headless.workflow import ui_to_api

WORKFLOWS = sorted((Path(__file__).resolve().parents[1] / "workflows").glob("*.json"))


@pytest.fixture(scope="module")
def registry():
    return build_registry()


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_workflow_is_loadable(path, registry):
    wf = json.loads(path.read_text())
    assert wf.get("version") in (0.4, 1) and wf["nodes"] and isinstance(wf["links"], list)
    unknown = {n["type"] for n in wf["nodes"]} - set(registry) - {"Reroute", "PrimitiveNode", "Note", "MarkdownNote"}
    assert not unknown, f"{path.name} uses unknown node types {unknown}"
    prompt = ui_to_api(wf, registry)
    # every link lands on an input the target node declares
    for nid, node in prompt.items():
        declared = set()
        for section in registry[node["class_type"]].INPUT_TYPES().values():
            declared |= set(section)
        assert set(node["inputs"]) <= declared, (path.name, nid, set(node["inputs"]) - declared)
    ids = {n["id"] for n in wf["nodes"]}
    for link in wf["links"]:
        assert link[1] in ids and link[3] in ids


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_ui_api_round_trip(path, registry):
    prompt = ui_to_api(json.loads(path.read_text()), registry)
    again = ui_to_api(api_to_ui(prompt, registry), registry)
    strip = lambda p: {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in p.items()}
    assert strip(again) == strip(prompt)


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_every_workflow_has_a_headless_run_test(path):
    # Each bundled example is run by some test through the headless runner (which then checks its files);
    # a new workflow without one fails here instead of shipping untested.
    tests = Path(__file__).resolve().parent
    runs_it = [t.name for t in tests.glob("test_*.py") if t.name != Path(__file__).name
               and path.stem in (text := t.read_text()) and ("Runner(" in text or '["run", ' in text)]
    assert runs_it, f"no test runs workflows/{path.name} headless"
