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


def _run_probe(prompt: dict, tmp_path: Path, inputs: Path, models: Path) -> dict:
    (tmp_path / "prompt.json").write_text(json.dumps(prompt))
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "comfyui_probe.py"), str(REPO),
                           str(tmp_path / "prompt.json"), str(tmp_path / "out"), str(inputs), str(models)],
                          cwd=COMFYUI, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["valid"], result["validation"]
    assert result["success"], json.dumps(result["errors"])[:3000]
    return result


@pytest.mark.parametrize("name", ["dub_video_ltx23", "dub_own_voice_ltx23"])
def test_dubit_workflows_run_in_comfyui(tmp_path, name):
    """DubIt and own voice with a tiny LTX-2.3 single file, through ComfyUI's own loader, validator and executor."""
    import av

    from dubit_models import api_prompt, source_as_stems, write_tiny_dubit_models
    from media_factory import make_audio, make_video

    models, inputs = tmp_path / "models", tmp_path / "input"
    inputs.mkdir()
    names = write_tiny_dubit_models(models)
    make_video(inputs / "dub_source.mp4", seconds=0.75, fps=24, size=(192, 128), audio="tone", sample_rate=16000)
    make_audio(inputs / "speech.wav", seconds=0.6, sample_rate=16000, kind="speechlike")
    prompt = api_prompt(json.loads((REPO / "workflows" / f"{name}.json").read_text()), names,
                        {"width": 192, "height": 128})
    if name == "dub_own_voice_ltx23":
        prompt = source_as_stems(prompt)  # no separator weights in a tiny test
    result = _run_probe(prompt, tmp_path, inputs, models)
    save = next(nid for nid, n in prompt.items() if n["class_type"] == "SaveVideo")
    saved = result["outputs"][save]["images"][0]
    with av.open(str(tmp_path / "out" / saved["subfolder"] / saved["filename"])) as c:
        v = c.streams.video[0]
        assert (v.width, v.height) == (192, 128) and sum(1 for _ in c.decode(video=0)) == 17
        assert len(c.streams.audio) == 1


@pytest.mark.parametrize("system,workflow", [("audiogen_omni", "soundtrack_mmdit"), ("dualdub", "soundtrack_dualdub"),
                                             ("ovi", "i2av_ovi"), ("mtv", "audio_to_video_mtv")])
def test_workflow_runs_in_comfyui_with_the_shipped_default(tmp_path, system, workflow):
    """The template as shipped: ComfyUI lists the pack's tiny default under soundstage-tiny/ (an extra search path)
    and runs the graph on the sample input with an empty models folder."""
    from soundstage.headless.registry import build_registry
    from soundstage.headless.workflow import ui_to_api
    from soundstage.synthworld.samples import write_workflow_samples
    from soundstage.training.defaults.cli import _installed

    if _installed(system) is None:
        pytest.skip(f"the {system} tiny default is not shipped in defaults/ (train-defaults {system} --install)")
    models, inputs = tmp_path / "models", tmp_path / "input"
    models.mkdir()
    write_workflow_samples(inputs, seconds=2.0)
    prompt = ui_to_api(json.loads((REPO / "workflows" / f"{workflow}.json").read_text()), build_registry())
    result = _run_probe(prompt, tmp_path, inputs, models)
    saved = [f for ui in result["outputs"].values() for files in ui.values() if isinstance(files, list)
             for f in files if isinstance(f, dict) and str(f.get("filename", "")).endswith(".mp4")]
    assert saved and all((tmp_path / "out" / f["subfolder"] / f["filename"]).stat().st_size > 1000 for f in saved)
    if workflow == "soundtrack_mmdit":
        assert "av_align" in result["outputs"]["33"]["text"][0]
