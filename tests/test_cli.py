"""The command line: run/validate exit codes, node listing, object info, synth and eval entries."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from soundstage.cli import main

REPO = Path(__file__).resolve().parents[1]
MAIN_WORKFLOW = REPO / "workflows" / "synth_mix_mux.json"
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


def test_object_info_lists_every_pack_node(capsys):
    from soundstage.nodes.extension import IMPORT_ERRORS, load_node_classes

    classes = load_node_classes()
    assert not IMPORT_ERRORS, IMPORT_ERRORS
    assert main(["object-info"]) == 0
    info = json.loads(capsys.readouterr().out)
    ids = {c.GET_SCHEMA().node_id for c in classes}
    assert set(info) == ids and "SoundstageMux" in ids and "SoundstageSynthClip" in ids
    mux = info["SoundstageMux"]
    assert mux["output"] == ["VIDEO"] and mux["output_node"] is True and mux["category"].startswith("Soundstage")
    assert all(i["category"].startswith("Soundstage/") for i in info.values())


def test_list_nodes(capsys):
    assert main(["list-nodes"]) == 0
    out = capsys.readouterr().out
    assert "SoundstageSynthClip" in out and "Soundstage/Media" in out


def test_validate_reports_errors_with_exit_code_1(tmp_path, capsys):
    wf = json.loads(MAIN_WORKFLOW.read_text())
    assert main(["validate", str(MAIN_WORKFLOW)]) == 0
    for node in wf["nodes"]:
        if node["type"] == "SoundstageSynthClip":
            node["widgets_values"][3] = 4096  # size (after seed, its control value and seconds) above its max
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(wf))
    capsys.readouterr()
    assert main(["validate", str(bad)]) == 1
    response = json.loads(capsys.readouterr().out)
    errors = [e for n in response["node_errors"].values() for e in n["errors"]]
    assert any(e["type"] == "value_bigger_than_max" and e["extra_info"]["input_name"] == "size" for e in errors)
    (tmp_path / "broken.json").write_text("{not json")
    assert main(["validate", str(tmp_path / "broken.json")]) == 1


def test_run_reports_runtime_errors_with_exit_code_2(tmp_path, capsys):
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 10)
    save = {"audio": ["1", 0], "filename_prefix": "x", "format": "flac", "bitrate_kbps": 192}
    prompt = {"1": {"class_type": "SoundstageLoadAudio", "inputs": {"file": "corrupt.wav", "start_time": 0.0,
                    "max_duration": 0.0, "sample_rate": 0, "channels": 0, "stream_index": 0}},
              "2": {"class_type": "SoundstageSaveAudio", "inputs": save}}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(prompt))
    args = ["--input-dir", str(tmp_path), "--output-dir", str(tmp_path / "out")]
    assert main(["run", str(path), *args]) == 2
    err = capsys.readouterr().err
    assert "SoundstageLoadAudio" in err and "corrupt.wav" in err
    prompt["1"]["inputs"]["file"] = "../outside.wav"  # names resolve inside the input folder only
    path.write_text(json.dumps(prompt))
    assert main(["run", str(path), *args]) in (1, 2)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.flac"))


def _python_m_soundstage(args: list[str]) -> list[str]:
    """`python -m soundstage ARGS` for THIS tree: an installed copy may be another checkout."""
    boot = ("import importlib.util, runpy, sys; "
            f"spec = importlib.util.spec_from_file_location('soundstage', {str(REPO / '__init__.py')!r}, "
            f"submodule_search_locations=[{str(REPO)!r}]); "
            "m = importlib.util.module_from_spec(spec); sys.modules['soundstage'] = m; spec.loader.exec_module(m); "
            f"sys.argv = ['soundstage', *{args!r}]; runpy.run_module('soundstage', run_name='__main__')")
    return [sys.executable, "-c", boot]


@needs_espeak
def test_main_job_writes_the_delivery_file(tmp_path):
    """The README's main job: the bundled example runs headless and writes a multi-track mp4."""
    out = tmp_path / "output"
    proc = subprocess.run(_python_m_soundstage(["run", str(MAIN_WORKFLOW), "--output-dir", str(out),
                                                "--set", "1.seconds=1.5", "--set", "1.size=64"]),
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = list(out.rglob("*.mp4"))
    assert len(files) == 1
    import av

    with av.open(str(files[0])) as c:
        titles = [s.metadata.get("title") or s.metadata.get("handler_name") for s in c.streams.audio]
        assert titles == ["Mix", "Dialogue", "Effects", "Music", "M&E"]
        assert abs(float(c.duration) / 1e6 - 1.5) < 0.1
        video = c.streams.video[0]
        assert (video.width, video.height) == (64, 64)
        assert sum(1 for _ in c.decode(video=0)) == round(1.5 * float(video.average_rate))
        for i in range(len(c.streams.audio)):  # every stem spans the clip
            c.seek(0)
            stream = c.streams.audio[i]
            assert abs(sum(f.samples for f in c.decode(audio=i)) / stream.rate - 1.5) < 0.05, stream.metadata
    report = json.loads(proc.stdout)["outputs"]["4"]["text"][0]
    assert "av_align" in report
    assert f"[node 4] {report}" in proc.stderr  # the report in plain text for a person at the terminal


@needs_espeak
def test_synth_and_eval_entries(tmp_path):
    ref = tmp_path / "ref"
    assert main(["synth", "--out", str(ref), "--n", "2", "--seconds", "2.0", "--size", "64"]) == 0
    manifest = json.loads((ref / "manifest.json").read_text())
    pred = tmp_path / "pred"
    pred.mkdir()
    for clip in manifest["clips"]:  # a perfect "prediction": the reference itself
        shutil.copy(ref / clip["video"], pred / f"{clip['id']}.mp4")
        shutil.copy(ref / clip["speech"], pred / f"{clip['id']}_speech.wav")
    assert main(["eval", "--pred", str(pred), "--ref", str(ref), "--out", str(tmp_path / "rep")]) == 0
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    en, fr = report["clips"]
    assert abs(en["sync_offset_frames"]) <= 1 and en["int_corr"] > 0.99 and en["dur_err"] < 0.05
    assert "English only" in fr["skipped"].get("wer", "")
    assert (tmp_path / "rep" / "report.md").read_text().startswith("| clip |")
    assert (tmp_path / "rep" / "sync_offsets.png").stat().st_size > 1000
