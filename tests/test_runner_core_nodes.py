"""Headless stand-ins for ComfyUI core nodes, run through the runner as UI-format workflows."""
from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from media_factory import frame_index_from_rgb, make_audio, make_video

from soundstage.headless.core_nodes import load_audio_file
from soundstage.headless.runner import Runner, ValidationFailed
from soundstage.headless.stubs import InputImpl


def _node(node_id, node_type, widgets, inputs=(), outputs=()):
    return {"id": node_id, "type": node_type, "mode": 0, "pos": [0, 0], "size": [200, 80], "flags": {},
            "order": node_id, "properties": {}, "widgets_values": widgets, "inputs": list(inputs),
            "outputs": list(outputs)}


def _link(link_id, src, src_slot, dst, dst_slot, kind):
    return [link_id, src, src_slot, dst, dst_slot, kind]


@pytest.fixture
def dirs(tmp_path):
    (tmp_path / "in").mkdir()
    return tmp_path / "in", tmp_path / "out"


def test_video_round_trip_workflow(dirs):
    input_dir, output_dir = dirs
    make_video(input_dir / "clip.mp4", seconds=0.5, fps=12, size=(64, 48), audio="tone", sample_rate=16000)
    workflow = {
        "version": 0.4, "last_node_id": 4, "last_link_id": 4, "groups": [], "config": {}, "extra": {},
        "nodes": [
            _node(1, "LoadVideo", ["clip.mp4", "image"], outputs=[{"name": "VIDEO", "type": "VIDEO", "links": [1]}]),
            _node(2, "GetVideoComponents", [], inputs=[{"name": "video", "type": "VIDEO", "link": 1}],
                  outputs=[{"name": "images", "type": "IMAGE", "links": [2]},
                           {"name": "audio", "type": "AUDIO", "links": [3]},
                           {"name": "fps", "type": "FLOAT", "links": [4]}]),
            _node(3, "CreateVideo", [30.0], inputs=[
                {"name": "images", "type": "IMAGE", "link": 2},
                {"name": "fps", "type": "FLOAT", "link": 4, "widget": {"name": "fps"}},
                {"name": "audio", "type": "AUDIO", "link": 3}],
                outputs=[{"name": "VIDEO", "type": "VIDEO", "links": [5]}]),
            _node(4, "SaveVideo", ["video/copy", "auto", "auto"], inputs=[{"name": "video", "type": "VIDEO",
                                                                            "link": 5}]),
        ],
        "links": [_link(1, 1, 0, 2, 0, "VIDEO"), _link(2, 2, 0, 3, 0, "IMAGE"), _link(3, 2, 1, 3, 2, "AUDIO"),
                  _link(4, 2, 2, 3, 1, "FLOAT"), _link(5, 3, 0, 4, 0, "VIDEO")],
    }
    runner = Runner(input_dir=input_dir, output_dir=output_dir, nodes=[])
    result = runner.run(workflow)
    saved = result.outputs["4"]["images"][0]
    assert saved == {"filename": "copy_00001_.mp4", "subfolder": "video", "type": "output"}
    assert result.outputs["4"]["animated"] == [True]
    out = InputImpl.VideoFromFile(str(output_dir / "video" / saved["filename"]))
    parts = out.get_components()
    assert parts.images.shape == (6, 48, 64, 3) and out.get_frame_rate() == 12
    assert [frame_index_from_rgb(f.numpy()) for f in parts.images] == list(range(6))
    assert parts.audio["sample_rate"] == 16000
    with av.open(str(output_dir / "video" / saved["filename"])) as container:
        assert "prompt" in container.metadata and "workflow" in container.metadata
    # Second run: everything cached, nothing rewritten.
    again = runner.run(workflow)
    assert again.executed == [] and again.outputs["4"]["images"][0]["filename"] == "copy_00001_.mp4"


def test_audio_workflow_saves_and_previews(dirs):
    input_dir, output_dir = dirs
    make_audio(input_dir / "voice.wav", seconds=0.25, sample_rate=16000, channels=1, kind="tone")
    prompt = {
        "1": {"class_type": "LoadAudio", "inputs": {"audio": "voice.wav"}},
        "2": {"class_type": "SaveAudioAdvanced", "inputs": {"audio": ["1", 0], "filename_prefix": "audio/take",
                                                            "format": "mp3", "format.quality": "320k"}},
        "3": {"class_type": "PreviewAudio", "inputs": {"audio": ["1", 0]}},
        "4": {"class_type": "SaveAudio", "inputs": {"audio": ["1", 0], "filename_prefix": "audio/take"}},
    }
    result = Runner(input_dir=input_dir, output_dir=output_dir, nodes=[]).run(prompt)
    loaded = result.values["1"][0]
    assert loaded["waveform"].shape == (1, 1, 4000) and loaded["sample_rate"] == 16000
    assert result.outputs["2"]["audio"] == [{"filename": "take_00001_.mp3", "subfolder": "audio", "type": "output"}]
    assert result.outputs["4"]["audio"][0]["filename"] == "take_00002_.flac"  # shared counter per prefix
    assert result.outputs["3"]["audio"][0]["type"] == "temp"
    flac, rate = load_audio_file(str(output_dir / "audio" / "take_00002_.flac"))
    assert rate == 16000 and torch.allclose(flac, loaded["waveform"][0], atol=1e-4)  # lossless
    with av.open(str(output_dir / "audio" / "take_00001_.mp3")) as container:
        assert container.streams.audio[0].codec_context.name.startswith("mp3")


def test_missing_input_file_fails_custom_validation(dirs):
    input_dir, output_dir = dirs
    prompt = {"1": {"class_type": "LoadAudio", "inputs": {"audio": "absent.wav"}},
              "2": {"class_type": "PreviewAudio", "inputs": {"audio": ["1", 0]}}}
    with pytest.raises(ValidationFailed) as info:
        Runner(input_dir=input_dir, output_dir=output_dir, nodes=[]).run(prompt)
    error = info.value.response["node_errors"]["1"]["errors"][0]
    assert error["type"] == "custom_validation_failed" and "Invalid audio file: absent.wav" in error["details"]


def test_image_load_save_preview(dirs):
    from PIL import Image

    input_dir, output_dir = dirs
    rgba = np.zeros((8, 12, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:, :6, 3] = 255  # left half opaque, right half transparent
    Image.fromarray(rgba, "RGBA").save(input_dir / "pic.png")
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": "pic.png"}},
              "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "img/x"}},
              "3": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    result = Runner(input_dir=input_dir, output_dir=output_dir, nodes=[]).run(prompt)
    image, mask = result.values["1"]
    assert image.shape == (1, 8, 12, 3) and mask.shape == (1, 8, 12)
    assert torch.allclose(image[0, 0, 0], torch.tensor([200 / 255, 0.0, 0.0]))
    assert mask[0, :, :6].sum() == 0 and torch.all(mask[0, :, 6:] == 1)
    assert result.outputs["2"]["images"] == [{"filename": "x_00001_.png", "subfolder": "img", "type": "output"}]
    assert result.outputs["3"]["images"][0]["type"] == "temp"
    saved = np.array(Image.open(output_dir / "img" / "x_00001_.png"))
    assert saved.shape == (8, 12, 3) and saved[0, 0, 0] == 200
