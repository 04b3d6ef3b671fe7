"""Issue 'nothing lost, nothing escapes': concurrent runs, output paths, interruption, hostile inputs.

Each test pins one finding of the fuzz campaign (tests/fuzz) and fails on the code before the fix.
"""
from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from helpers import runner_folders
from media_factory import make_audio, make_video

from soundstage.headless.runner import ExecutionInterrupted, NodeExecutionError, Runner, ValidationFailed
from soundstage.media import MediaError

REPO = Path(__file__).resolve().parents[1]


def _save_prompt(prefix: str, file: str = "in.wav", fmt: str = "flac") -> dict:
    return {"1": {"class_type": "SoundstageLoadAudio",
                  "inputs": {"file": file, "start_time": 0.0, "max_duration": 0.0, "sample_rate": 0, "channels": 0,
                             "stream_index": 0}},
            "2": {"class_type": "SoundstageSaveAudio",
                  "inputs": {"audio": ["1", 0], "filename_prefix": prefix, "format": fmt, "bitrate_kbps": 192}}}


def _node(class_type: str, **inputs) -> dict:
    """A prompt node with every required widget at its default, then ``inputs``."""
    from soundstage.headless.registry import build_registry
    from soundstage.headless.schema import input_specs

    values = {}
    for spec in input_specs(build_registry(include_pack=True)[class_type]):
        if spec.is_widget and spec.category == "required":
            values[spec.name] = spec.options.get("default", (spec.combo_options or [None])[0])
    return {"class_type": class_type, "inputs": values | inputs}


def _folders(root: Path) -> tuple[Path, Path]:
    root.mkdir(parents=True, exist_ok=True)
    return runner_folders(root)


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# ----------------------------------------------------------------------------- 1. concurrent runs
def test_two_runners_in_two_threads_keep_their_folders_names_and_interrupts(tmp_path):
    a_in, a_out = _folders(tmp_path / "a")
    b_in, b_out = _folders(tmp_path / "b")
    make_audio(a_in / "in.wav", 20.0, 48000, channels=2)  # long: still writing when interrupted
    make_audio(b_in / "in.wav", 0.5, 16000)
    shared = tmp_path / "shared"
    runs = {"a": Runner(input_dir=a_in, output_dir=a_out), "b": Runner(input_dir=b_in, output_dir=b_out),
            "c": Runner(input_dir=b_in, output_dir=shared), "d": Runner(input_dir=b_in, output_dir=shared)}
    results = {}

    def go(name):
        try:
            results[name] = runs[name].run(_save_prompt("take/x"))
        except Exception as exc:  # judged below
            results[name] = exc

    threads = {n: threading.Thread(target=go, args=(n,)) for n in runs}
    for t in threads.values():
        t.start()
    time.sleep(0.3)
    runs["a"].interrupt()
    for t in threads.values():
        t.join(120)
    assert isinstance(results["a"], ExecutionInterrupted) or not isinstance(results["a"], Exception), results["a"]
    for name in "bcd":
        assert not isinstance(results[name], Exception), (name, results[name])  # a's interrupt was a's alone
    assert _files(b_out) == ["take/x_00001_.flac"]
    # a wrote nothing into b's folder, b nothing into a's; two runs sharing one folder got two names
    assert all(not f.startswith(".") for f in _files(a_out)) and len(_files(a_out)) <= 1
    assert _files(shared) == ["take/x_00001_.flac", "take/x_00002_.flac"]


def test_validation_uses_the_runs_own_input_folder(tmp_path):
    a_in, a_out = _folders(tmp_path / "a")
    b_in, b_out = _folders(tmp_path / "b")
    make_audio(a_in / "only_in_a.wav", 0.2, 16000)
    Runner(input_dir=a_in, output_dir=a_out)  # constructing a runner must not change another's folders
    runner_b = Runner(input_dir=b_in, output_dir=b_out)
    Runner(input_dir=a_in, output_dir=a_out).validate(_save_prompt("x", "only_in_a.wav"))
    with pytest.raises(ValidationFailed, match="only_in_a.wav"):
        runner_b.validate(_save_prompt("x", "only_in_a.wav"))


# ----------------------------------------------------------------------------- 2. saves never overwrite
@pytest.mark.parametrize("prefix", ["victim.flac\x00", "", "take/", "a\nb", "../x", "/abs/x", "a/./b"])
def test_bad_prefixes_are_refused_naming_the_input(tmp_path, prefix):
    inp, out = runner_folders(tmp_path)
    make_audio(inp / "in.wav", 0.2, 16000)
    (out / "victim.flac").write_bytes(b"precious")
    (out / "_00001_.flac").write_bytes(b"precious")
    with pytest.raises(NodeExecutionError, match="input 'filename_prefix'"):
        Runner(input_dir=inp, output_dir=out).run(_save_prompt(prefix))
    assert (out / "victim.flac").read_bytes() == b"precious" and (out / "_00001_.flac").read_bytes() == b"precious"
    assert _files(out) == ["_00001_.flac", "victim.flac"]
    assert not any((tmp_path).glob("x*")) and not Path("/abs/x_00001_.flac").exists()


def test_publish_never_replaces_a_file_even_with_a_stale_counter(tmp_path):
    from soundstage.media.output_files import publish, staged

    (tmp_path / "x_00001_.wav").write_bytes(b"old")
    (tmp_path / "x_00002_.wav").write_bytes(b"old")
    with staged(str(tmp_path), "wav") as temp:
        Path(temp).write_bytes(b"new")
        name = publish(temp, str(tmp_path), lambda n: f"x_{n:05}_.wav", 1)
    assert name == "x_00003_.wav" and (tmp_path / name).read_bytes() == b"new"
    assert (tmp_path / "x_00001_.wav").read_bytes() == b"old" and _files(tmp_path) == [
        "x_00001_.wav", "x_00002_.wav", "x_00003_.wav"]


def test_core_save_audio_with_batch_placeholder_does_not_rewrite(tmp_path):
    inp, out = runner_folders(tmp_path)
    make_audio(inp / "in.wav", 0.2, 16000)
    prompt = {"1": {"class_type": "LoadAudio", "inputs": {"audio": "in.wav"}},
              "2": {"class_type": "SaveAudio", "inputs": {"audio": ["1", 0], "filename_prefix": "a%batch_num%"}}}
    runner = Runner(input_dir=inp, output_dir=out, nodes=[])
    runner.run(prompt)
    runner.clear_cache()
    runner.run(prompt)
    assert _files(out) == ["a0_00001_.flac", "a0_00002_.flac"]


def test_check_prefix_accepts_ordinary_prefixes():
    from soundstage.media.output_files import check_prefix

    for prefix in ("audio/ComfyUI", "take", "a/b/c-1_x", "%year%/x"):
        assert check_prefix(prefix) == prefix
    with pytest.raises(MediaError, match="control character"):
        check_prefix("a\x00")


# ----------------------------------------------------------------------------- 3. containment
def test_save_into_a_symlinked_subfolder_is_refused(tmp_path):
    inp, out = runner_folders(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (out / "link").symlink_to(outside, target_is_directory=True)
    make_audio(inp / "in.wav", 0.2, 16000)
    for prompt in (_save_prompt("link/x"),
                   {"1": {"class_type": "LoadAudio", "inputs": {"audio": "in.wav"}},
                    "2": {"class_type": "SaveAudio", "inputs": {"audio": ["1", 0], "filename_prefix": "link/new/x"}}}):
        with pytest.raises(NodeExecutionError, match="filename_prefix"):
            Runner(input_dir=inp, output_dir=out).run(prompt)
    assert list(outside.iterdir()) == []


def _reader(class_type: str, name: str) -> dict:
    key = {"LoadAudio": "audio", "LoadImage": "image", "LoadVideo": "file"}[class_type]
    prompt = {"1": {"class_type": class_type, "inputs": {key: name}}}
    if class_type == "LoadVideo":
        prompt["2"] = {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}}
        prompt["3"] = {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}
    elif class_type == "LoadAudio":
        prompt["2"] = {"class_type": "PreviewAudio", "inputs": {"audio": ["1", 0]}}
    else:
        prompt["2"] = {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}
    return prompt


@pytest.mark.parametrize("class_type,ext", [("LoadAudio", "wav"), ("LoadVideo", "mp4"), ("LoadImage", "png")])
def test_core_loaders_stay_inside_the_input_folder(tmp_path, class_type, ext):
    from PIL import Image

    inp, out = runner_folders(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / f"secret.{ext}"
    {"wav": lambda p: make_audio(p, 0.2, 16000), "mp4": lambda p: make_video(p, 0.3, 10, (32, 24)),
     "png": lambda p: Image.new("RGB", (4, 4)).save(p)}[ext](secret)
    (inp / f"link.{ext}").symlink_to(secret)
    (inp / f"zero.{ext}").symlink_to("/dev/zero")
    os.mkfifo(inp / f"fifo.{ext}")
    names = [f"../outside/secret.{ext}", str(secret), f"link.{ext}", f"../outside/secret.{ext} [input]",
             f"zero.{ext}", "/dev/zero", f"fifo.{ext}", f"in.{ext}\x00x"]
    runner = Runner(input_dir=inp, output_dir=out, nodes=[])
    for name in names:
        done = threading.Event()

        def attempt():
            try:
                with pytest.raises(ValidationFailed, match=f"Invalid {ext_kind(ext)} file"):
                    runner.run(_reader(class_type, name))
            finally:
                done.set()

        thread = threading.Thread(target=attempt, daemon=True)
        thread.start()
        assert done.wait(30), f"{class_type} hung on {name!r}"
        thread.join()


def ext_kind(ext: str) -> str:
    return {"wav": "audio", "mp4": "video", "png": "image"}[ext]


# ----------------------------------------------------------------------------- 4. interruption
def test_interrupt_during_save_audio_leaves_no_file(tmp_path, monkeypatch):
    inp, out = runner_folders(tmp_path)
    make_audio(inp / "in.wav", 10.0, 48000, channels=2)
    runner = Runner(input_dir=inp, output_dir=out)
    from soundstage.media import encode

    original = encode.audio_frame
    calls = []

    def counting(samples, layout):  # interrupt once the writer is well into the file
        calls.append(1)
        if len(calls) == 20:
            runner.interrupt()
        return original(samples, layout)

    monkeypatch.setattr(encode, "audio_frame", counting)
    with pytest.raises(ExecutionInterrupted):
        runner.run(_save_prompt("take/x", fmt="wav"))
    assert 20 <= len(calls) < 100  # stopped in the loop, not after writing the whole file
    assert _files(out) == []  # neither a truncated file nor its temporary


def test_interrupt_during_core_save_video_leaves_no_file(tmp_path, monkeypatch):
    inp, out = runner_folders(tmp_path)
    make_video(inp / "in.mp4", 2.0, 25, (64, 48))
    runner = Runner(input_dir=inp, output_dir=out, nodes=[])
    prompt = {"1": {"class_type": "LoadVideo", "inputs": {"file": "in.mp4"}},
              "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
              "3": {"class_type": "CreateVideo", "inputs": {"images": ["2", 0], "fps": 25.0}},
              "4": {"class_type": "SaveVideo", "inputs": {"video": ["3", 0], "filename_prefix": "v/x",
                                                          "format": "mp4", "codec": "h264"}}}
    from soundstage.headless.stubs import _video

    original = _video._check_interrupted
    seen = []

    def check():
        seen.append(1)
        if len(seen) == 10:
            runner.interrupt()
        original()

    monkeypatch.setattr(_video, "_check_interrupted", check)
    with pytest.raises(ExecutionInterrupted):
        runner.run(prompt)
    assert len(seen) == 10 and _files(out) == []


@pytest.mark.skipif(sys.platform != "linux", reason="POSIX signals")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_exits_cleanly_on_signals(tmp_path, sig):
    inp, out = runner_folders(tmp_path)
    make_audio(inp / "in.wav", 120.0, 48000, channels=2)
    workflow = tmp_path / "wf.json"
    workflow.write_text(json.dumps(_save_prompt("take/x", fmt="wav")))
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "soundstage").symlink_to(REPO, target_is_directory=True)
    env = dict(os.environ, PYTHONPATH=str(pkg), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "soundstage", "run", str(workflow), "--input-dir", str(inp),
                             "--output-dir", str(out)], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not any(out.rglob(".soundstage-*")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)  # wait until the writer has started its temporary file
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, (proc.returncode, stderr[-2000:])
    assert "Traceback" not in stderr and f"interrupted by {sig.name}" in stderr
    assert _files(out) == []


# ----------------------------------------------------------------------------- 5. memory
def test_load_video_refuses_a_decode_that_cannot_fit(tmp_path, monkeypatch):
    inp, out = runner_folders(tmp_path)
    make_video(inp / "in.mp4", 1.0, 10, (64, 48))
    from soundstage.media import memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 1_000_000)
    prompt = {"1": _node("SoundstageLoadVideo", file="in.mp4", resize="stretch", width=4096, height=4096,
                         multiple_of=1),
              "2": _node("SoundstageMux", images=["1", 1], filename_prefix="x")}
    with pytest.raises(NodeExecutionError) as info:
        Runner(input_dir=inp, output_dir=out).run(prompt)
    message = str(info.value.exception)
    assert "Load Video (Soundstage): input 'file'" in message and "4096x4096" in message and "GiB" in message


def test_synthetic_clip_refuses_widgets_that_cannot_fit(tmp_path, monkeypatch):
    from soundstage.media import memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 2 * 1024 ** 3)
    prompt = {"1": {"class_type": "SoundstageSynthClip", "inputs": {
        "seed": 0, "seconds": 30.0, "size": 512, "fps": 60, "language": "en", "speaker": "spk0", "line": 0,
        "balls": 1, "speech": False, "sample_rate": 16000}},
        "2": {"class_type": "SoundstagePreviewAudio", "inputs": {"audio": ["1", 2]}}}
    with pytest.raises(NodeExecutionError, match=r"input 'seconds'.*1800 frames of 512x512 needs about 6\.6 GiB"):
        Runner(output_dir=tmp_path).run(prompt)


def test_open_clip_config_is_checked_against_the_weights_before_building():
    from soundstage.models.audiogen_omni.visual import open_clip_from_config
    from soundstage.models.common.checkpoint import CheckpointError

    config = {"embed_dim": 8, "vision_cfg": {"width": 16384, "layers": 48, "patch_size": 14, "image_size": 224},
              "text_cfg": {"width": 16384, "layers": 48, "heads": 8}}
    with pytest.raises(CheckpointError, match="width 16384 and 48 layers"):
        open_clip_from_config(config, {"visual.conv1.weight": torch.zeros(1)})


# ----------------------------------------------------------------------------- 6. malformed documents
@pytest.mark.parametrize("doc,path", [
    ({"nodes": [{"id": 1, "type": "X"}, {"id": 2, "type": "Y"}, {"id": 3, "type": "Z"},
                {"id": 4, "type": "W", "inputs": 5}], "links": []}, "nodes[3].inputs"),
    ({"nodes": [{"id": 1, "type": "X", "inputs": [{"name": "a", "link": [1]}]}], "links": []}, "nodes[0].inputs[0].link"),
    ({"nodes": [], "links": [[1, 2, 0]]}, "links[0]"),
    ({"1": {"class_type": "PrimitiveFloat", "inputs": [1, 2]}}, "1.inputs"),
    ({"1": "PrimitiveFloat"}, "1"),
    ({"prompt": {"1": {"class_type": 5}}}, "prompt.1.class_type"),
])
def test_malformed_documents_get_a_validation_error_with_a_path(doc, path):
    with pytest.raises(ValidationFailed) as info:
        Runner(nodes=[]).validate(doc)
    error = info.value.response["error"]
    assert error["type"] == "invalid_prompt" and error["extra_info"]["path"] == path
    assert error["details"].startswith(path + ":")


def test_cli_json_string_document_is_not_a_path(tmp_path, capsys):
    from soundstage.cli import main

    other = tmp_path / "other.json"
    other.write_text(json.dumps({"1": {"class_type": "PrimitiveFloat", "inputs": {"value": 1.0}}}))
    workflow = tmp_path / "wf.json"
    workflow.write_text(json.dumps(str(other)))
    assert main(["validate", str(workflow), "--output-dir", str(tmp_path)]) == 1
    body = json.loads(capsys.readouterr().out)
    assert body["error"]["type"] == "invalid_prompt" and "got a string" in body["error"]["message"]


def test_cli_internal_error_has_its_own_exit_code(tmp_path, capsys, monkeypatch):
    from soundstage import cli
    from soundstage.headless import runner as runner_mod

    def broken(self, *args, **kwargs):
        raise TypeError("a bug")

    monkeypatch.setattr(runner_mod.Runner, "validate", broken)
    workflow = tmp_path / "wf.json"
    workflow.write_text("{}")
    assert cli.main(["validate", str(workflow)]) == cli.EXIT_INTERNAL == 3
    err = capsys.readouterr().err
    assert "internal error (TypeError: a bug)" in err and "Traceback" not in err


@pytest.mark.parametrize("ui", [False, True])
def test_long_chains_validate_without_a_recursion_limit(ui):
    n = max(1200, sys.getrecursionlimit() + 200)
    if ui:
        nodes = [{"id": 1, "type": "PrimitiveFloat", "mode": 0, "inputs": [], "widgets_values": [2.5]}]
        links = []
        for i in range(2, n):
            nodes.append({"id": i, "type": "Reroute", "mode": 0, "inputs": [{"name": "", "type": "*", "link": i - 1}]})
            links.append([i - 1, i - 1, 0, i, 0, "*"])
        nodes.append({"id": n, "type": "PreviewAny", "mode": 0, "inputs": [{"name": "source", "type": "*", "link": n - 1}]})
        links.append([n - 1, n - 1, 0, n, 0, "*"])
        doc = {"nodes": nodes, "links": links, "version": 0.4}
    else:
        doc = {"0": {"class_type": "PrimitiveFloat", "inputs": {"value": 1.0}}}
        doc.update({str(i): {"class_type": "Chain", "inputs": {"value": [str(i - 1), 0]}} for i in range(1, n)})
        doc[str(n)] = {"class_type": "PreviewAny", "inputs": {"source": [str(n - 1), 0]}}

    class Chain:
        @classmethod
        def INPUT_TYPES(cls):  # noqa: N802
            return {"required": {"value": ("FLOAT",)}}

        RETURN_TYPES = ("FLOAT",)
        FUNCTION = "run"

        def run(self, value):
            return (value + 1,)

    class PreviewAny:
        @classmethod
        def INPUT_TYPES(cls):  # noqa: N802
            return {"required": {"source": ("*",)}}

        RETURN_TYPES = ()
        FUNCTION = "run"
        OUTPUT_NODE = True

        def run(self, source):
            return {"ui": {"text": [source]}}

    runner = Runner(nodes={"Chain": Chain, "PreviewAny": PreviewAny})
    runner.validate(doc)
    result = runner.run(doc)
    assert result.outputs[str(n)]["text"] == [2.5 if ui else 1.0 + n - 1]


# ----------------------------------------------------------------------------- 7. errors that name something
def _wav(fmt: int, bits: int) -> bytes:
    data = bytes(64)
    chunk = struct.pack("<HHIIHH", fmt, 1, 16000, 32000, 2, bits)
    return b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + chunk + \
        b"data" + struct.pack("<I", len(data)) + data


@pytest.mark.parametrize("fmt,bits", [(0x1234, 16), (1, 0)])
def test_probe_of_a_stream_without_decoder_names_the_file(tmp_path, fmt, bits):
    from soundstage.media.audio_io import load_audio, probe_audio

    path = tmp_path / "odd.wav"
    path.write_bytes(_wav(fmt, bits))
    for call in (probe_audio, load_audio):
        with pytest.raises(MediaError, match="odd.wav"):
            call(str(path))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_inf_are_refused_at_validation(tmp_path, value):
    inp, out = runner_folders(tmp_path)
    make_audio(inp / "in.wav", 0.2, 16000)
    prompt = _save_prompt("x")
    prompt["1"]["inputs"]["start_time"] = value
    with pytest.raises(ValidationFailed) as info:
        Runner(input_dir=inp, output_dir=out).validate(prompt)
    (error,) = info.value.response["node_errors"]["1"]["errors"]
    assert error["type"] == "invalid_input_type" and error["extra_info"]["input_name"] == "start_time"


@pytest.mark.parametrize("container,codec", [("mp4", "aac"), ("mkv", "flac"), ("mkv", "opus")])
def test_mix_tracks_eight_channels_into_mux(tmp_path, container, codec):
    inp, out = runner_folders(tmp_path)
    make_audio(inp / "in.wav", 0.5, 16000)
    make_video(inp / "in.mp4", 0.5, 10, (32, 24))
    prompt = _save_prompt("x")
    prompt["3"] = _node("SoundstageMixTracks", track_1=["1", 0], channels=8)
    prompt["2"] = _node("SoundstageMux", images=["4", 1], track_1=["3", 0], container=container, audio_codec=codec,
                        filename_prefix="m")
    prompt["4"] = _node("SoundstageLoadVideo", file="in.mp4")
    result = Runner(input_dir=inp, output_dir=out).run(prompt)
    assert result.outputs["2"]["images"][0]["filename"] == f"m_00001_.{container}"


class Sink:
    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802
        return {"required": {"value": ("*",)}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    def run(self, value):
        return {}


@pytest.mark.parametrize("blob,words", [
    (b"\x00" * 3, "cannot be loaded"),
    (b"not a pickle", "cannot be loaded"),
])
def test_loader_failures_name_the_model_input(tmp_path, blob, words):
    models = tmp_path / "models"
    (models / "vae").mkdir(parents=True)
    (models / "vae" / "bad.safetensors").write_bytes(blob)
    (models / "vae" / "bad.pth").write_bytes(blob)
    for name in ("bad.safetensors", "bad.pth"):
        prompt = {"1": _node("SoundstageCogVideoXVAELoader", vae_name=name),
                  "2": {"class_type": "Sink", "inputs": {"value": ["1", 0]}}}
        runner = Runner(output_dir=tmp_path / "out", models_dir=models, nodes={"Sink": Sink}, include_pack=True)
        with pytest.raises(NodeExecutionError) as info:
            runner.run(prompt)
        message = str(info.value.exception)
        assert "input 'vae_name'" in message and words in message and name in message
        assert not isinstance(info.value.exception.__cause__, ValueError) or "SafetensorError" not in message


def test_complex_weights_are_refused_for_real_parameters(tmp_path):
    from safetensors.torch import save_file

    from soundstage.models.common.checkpoint import CheckpointError, load_file, load_strict

    torch.save({"w": torch.zeros(2, dtype=torch.complex64)}, tmp_path / "c.pt")
    save_file({"w": torch.zeros(2, dtype=torch.complex64)}, str(tmp_path / "c.safetensors"))
    for name in ("c.pt", "c.safetensors"):  # refused at the file, before any conversion drops the imaginary part
        with pytest.raises(CheckpointError, match="complex tensors"):
            load_file(tmp_path / name)

    module = torch.nn.Linear(2, 2)
    sd = {"weight": torch.zeros(2, 2, dtype=torch.complex64), "bias": torch.zeros(2)}
    with pytest.raises(CheckpointError, match="complex tensors for real parameters: weight"):
        load_strict(module, sd, context="test")


def test_ltx2_text_encoder_refuses_a_t5_folder(tmp_path):
    from soundstage.models.common.checkpoint import CheckpointError
    from soundstage.models.just_dub_it.gemma_file import _config_beside

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5", "d_model": 8}))
    with pytest.raises(CheckpointError, match="'t5' model"):
        _config_beside(tmp_path / "model.safetensors")
