"""Load Video / Load Audio fingerprint their file as core LoadAudio does: an unchanged file stays cached,
a file replaced under the same name runs again (headless runner cache, ComfyUI's semantics)."""
from __future__ import annotations

import os

from media_factory import make_audio, make_video
from soundstage.compat import folder_paths
from soundstage.nodes import media as nodes

LOAD_AUDIO = dict(start_time=0.0, max_duration=0.0, sample_rate=0, channels=0, stream_index=0)
LOAD_VIDEO = dict(fps=0.0, start_time=0.0, max_duration=0.0, max_frames=0, resize="none", width=0, height=0,
                  multiple_of=1)


def _runner(tmp_path):
    from soundstage.headless.runner import Runner

    inputs, outputs = tmp_path / "input", tmp_path / "output"
    inputs.mkdir(exist_ok=True)
    saved = folder_paths.get_input_directory(), folder_paths.get_output_directory()
    # Runs own their folders; the direct fingerprint_inputs calls below read the process default.
    folder_paths.set_input_directory(str(inputs))
    return Runner(input_dir=inputs, output_dir=outputs, models_dir=tmp_path / "models", nodes=nodes.NODES), saved


def _restore(saved):
    folder_paths.set_input_directory(saved[0])
    folder_paths.set_output_directory(saved[1])


def test_replaced_audio_file_reruns_and_unchanged_stays_cached(tmp_path):
    runner, saved = _runner(tmp_path)
    try:
        path = tmp_path / "input" / "voice.wav"
        make_audio(path, seconds=0.5, sample_rate=16000, kind="speechlike")
        prompt = {"1": {"class_type": "SoundstageLoadAudio", "inputs": {"file": "voice.wav", **LOAD_AUDIO}},
                  "2": {"class_type": "PreviewAudio", "inputs": {"audio": ["1", 0]}}}
        first = runner.run(prompt)
        assert "1" in first.executed
        again = runner.run(prompt)
        assert "1" in again.cached and "1" not in again.executed
        stat = path.stat()
        make_audio(path, seconds=0.7, sample_rate=16000, kind="speechlike")  # same name, new content
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even with the old timestamp
        replaced = runner.run(prompt)
        assert "1" in replaced.executed
        assert replaced.values["1"][1] > first.values["1"][1]  # the new, longer file was read
    finally:
        _restore(saved)


def test_load_video_fingerprint_follows_the_content(tmp_path):
    runner, saved = _runner(tmp_path)
    try:
        path = tmp_path / "input" / "clip.mp4"
        make_video(path, seconds=0.5, fps=8, size=(32, 32))
        one = nodes.LoadVideo.fingerprint_inputs("clip.mp4", **LOAD_VIDEO)
        assert one == nodes.LoadVideo.fingerprint_inputs("clip.mp4", **LOAD_VIDEO)
        make_video(path, seconds=1.0, fps=8, size=(32, 32))
        assert nodes.LoadVideo.fingerprint_inputs("clip.mp4", **LOAD_VIDEO) != one
        assert nodes.LoadVideo.fingerprint_inputs("", **LOAD_VIDEO) == "missing:"  # 'video' connected instead
    finally:
        _restore(saved)
