"""The pack inside a real ComfyUI: its loader registers every node, its validator and executor run the
main example graph. Needs a ComfyUI checkout: SOUNDSTAGE_COMFYUI, else the snapshot at ../shared/comfyui
beside the repo (and ComfyUI's requirements); skips with the reason when there is none."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COMFYUI = os.environ.get("SOUNDSTAGE_COMFYUI") or str(REPO.parent / "shared" / "comfyui")

pytestmark = pytest.mark.skipif(not COMFYUI or not Path(COMFYUI, "execution.py").is_file(),
                                reason="no ComfyUI checkout: set SOUNDSTAGE_COMFYUI or put one at ../shared/comfyui")


def test_main_workflow_runs_in_comfyui(tmp_path):
    from soundstage.headless.registry import build_registry
    from soundstage.headless.workflow import ui_to_api
    from soundstage.object_info import pack_node_classes

    prompt = ui_to_api(json.loads((REPO / "workflows" / "synth_mix_mux.json").read_text()), build_registry())
    prompt["1"]["inputs"].update(seconds=1.5, size=64)
    (tmp_path / "prompt.json").write_text(json.dumps(prompt))
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "comfyui_probe.py"), str(REPO),
                           str(tmp_path / "prompt.json"), str(tmp_path / "out")],
                          cwd=COMFYUI, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["loaded"] and set(result["nodes"]) == set(pack_node_classes())
    assert result["valid"], result["validation"]
    assert result["success"], result["errors"]
    saved = result["outputs"]["3"]["images"][0]
    assert (tmp_path / "out" / saved["subfolder"] / saved["filename"]).stat().st_size > 1000
    assert "av_align" in result["outputs"]["4"]["text"][0]
