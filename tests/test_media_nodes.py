"""Media nodes (nodes/media.py): execute() directly, and small graphs through the headless runner."""
from __future__ import annotations

import os

import av
import numpy as np
import pytest
import torch

from media_factory import frame_index_from_rgb, make_audio, make_video, synth_audio
from soundstage.compat import InputImpl, Types, folder_paths
from soundstage.media.audio_io import load_audio, probe_audio
from soundstage.media.decode import probe_video
from soundstage.media.loudness import integrated_loudness, true_peak_db
from soundstage.nodes import media as nodes


@pytest.fixture
def dirs(tmp_path):
    """Input/output/temp folders for one test, restored afterwards."""
    saved = (folder_paths.get_input_directory(), folder_paths.get_output_directory(),
             folder_paths.get_temp_directory())
    paths = {name: tmp_path / name for name in ("input", "output", "temp")}
    for p in paths.values():
        p.mkdir()
    folder_paths.set_input_directory(str(paths["input"]))
    folder_paths.set_output_directory(str(paths["output"]))
    folder_paths.set_temp_directory(str(paths["temp"]))
    yield paths
    folder_paths.set_input_directory(saved[0])
    folder_paths.set_output_directory(saved[1])
    folder_paths.set_temp_directory(saved[2])


LOAD_VIDEO = dict(fps=0.0, start_time=0.0, max_duration=0.0, max_frames=0, resize="none", width=0, height=0,
                  multiple_of=1)


def audio_dict(kind: str, seconds: float, rate: int = 48000, channels: int = 1, **kw) -> dict:
    return {"waveform": torch.from_numpy(synth_audio(kind, seconds, rate, channels, **kw))[None], "sample_rate": rate}


def test_every_node_has_a_complete_schema():
    for node in nodes.NODES:
        schema = node.GET_SCHEMA()
        assert schema.node_id.startswith("Soundstage") and schema.category == "Soundstage/Media"
        for spec in schema.inputs:
            if spec.get_io_type() in ("INT", "FLOAT"):
                assert None not in (spec.default, spec.min, spec.max, spec.step, spec.tooltip), (schema.node_id, spec.id)
            if spec.get_io_type() in ("COMBO", "STRING", "BOOLEAN"):
                assert spec.tooltip, (schema.node_id, spec.id)


def test_load_video_window_resampled_and_resized(dirs):
    make_video(dirs["input"] / "clip.mp4", seconds=2.0, fps=24, size=(64, 48), audio="clicks")
    out = nodes.LoadVideo.execute("clip.mp4", **{**LOAD_VIDEO, "fps": 12.0, "start_time": 0.5, "max_duration": 1.0,
                                                 "resize": "fit", "width": 32, "multiple_of": 8})
    video, images, audio, fps, count = out.args
    assert images.shape == (12, 24, 32, 3) and count == 12 and fps == 12.0
    assert [frame_index_from_rgb(f.numpy()) for f in images[:3]] == [12, 14, 16]
    assert audio["sample_rate"] == 48000 and audio["waveform"].shape == (1, 2, 48000)
    clicks = (audio["waveform"][0, 0].abs() > 0.2).nonzero().flatten().tolist()
    assert clicks[:2] == [0, 12000]
    components = video.get_components()
    assert components.images.shape == images.shape and float(components.frame_rate) == 12.0


def test_load_video_without_audio_gives_silence_and_accepts_a_video(dirs):
    path = make_video(dirs["input"] / "mute.mp4", seconds=1.0, fps=10, size=(32, 32))
    out = nodes.LoadVideo.execute("", video=InputImpl.VideoFromFile(str(path)), **LOAD_VIDEO)
    audio = out.args[2]
    assert audio["waveform"].shape[-1] == 48000 and float(audio["waveform"].abs().max()) == 0.0
    assert out.args[1].shape[0] == 10


def test_file_names_stay_in_the_input_folder(dirs):
    make_video(dirs["input"].parent / "outside.mp4", seconds=0.5, fps=10, size=(32, 32))
    with pytest.raises(ValueError, match=r"Load Video \(Soundstage\): input 'file': .*outside the input folder"):
        nodes.LoadVideo.execute("../outside.mp4", **LOAD_VIDEO)
    with pytest.raises(ValueError, match=r"Load Audio \(Soundstage\): input 'file': absolute paths"):
        nodes.LoadAudio.execute(str(dirs["input"].parent / "outside.mp4"), 0.0, 0.0, 0, 0, 0)
    assert "outside the input folder" in nodes.LoadAudio.validate_inputs("../outside.mp4")
    (dirs["input"] / "broken.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match=r"Load Video \(Soundstage\): input 'file': .*not a readable media file"):
        nodes.LoadVideo.execute("broken.mp4", **LOAD_VIDEO)


def test_load_audio_resample_channels(dirs):
    make_audio(dirs["input"] / "voice.m4a", seconds=1.0, sample_rate=44100, channels=2, kind="tone")
    audio, duration = nodes.LoadAudio.execute("voice.m4a", 0.25, 0.5, 16000, 1, 0).args
    assert audio["sample_rate"] == 16000 and audio["waveform"].shape == (1, 1, 8000)
    assert duration == pytest.approx(0.5)


def test_video_frames_from_file_and_from_components(dirs):
    path = make_video(dirs["input"] / "v.mp4", seconds=1.0, fps=24, size=(64, 48))
    images, fps, count = nodes.VideoFrames.execute(InputImpl.VideoFromFile(str(path)), 8.0, 1, 0.0, 0.0, 0,
                                                   "crop", 32, 32, 16).args
    assert images.shape == (8, 32, 32, 3) and fps == 8.0 and count == 8
    assert [frame_index_from_rgb(f.numpy()) for f in images] == [0, 3, 6, 9, 12, 15, 18, 1]
    tensors = torch.stack([torch.full((16, 16, 3), i / 30) for i in range(30)])
    clip = InputImpl.VideoFromComponents(Types.VideoComponents(images=tensors, frame_rate=30))
    images, fps, count = nodes.VideoFrames.execute(clip, 0.0, 5, 0.0, 0.0, 0, "none", 0, 0, 1).args
    assert count == 6 and fps == pytest.approx(6.0)
    assert torch.allclose(images[:, 0, 0, 0], torch.tensor([0, 5, 10, 15, 20, 25]) / 30)


def test_fit_audio_to_a_video(dirs):
    path = make_video(dirs["input"] / "v.mp4", seconds=1.2, fps=25, size=(32, 32))
    audio = audio_dict("tone", 2.0, 16000)
    fitted = nodes.FitAudio.execute(audio, "stretch", 5.0, 0, "start", 5.0, video=InputImpl.VideoFromFile(str(path))).args[0]
    assert fitted["waveform"].shape == (1, 1, 19200) and fitted["sample_rate"] == 16000
    with pytest.raises(ValueError, match=r"Fit Audio \(Soundstage\): input 'mode'"):
        nodes.FitAudio.execute(audio, "stretch", 20.0, 0, "start", 5.0)


def test_mix_tracks_node_ducks_normalises_and_returns_stems():
    slots = {
        "track_1": audio_dict("speechlike", 2.0), "role_1": "dialogue", "gain_1": 0.0,
        "track_2": audio_dict("noise", 2.0, amplitude=0.1), "role_2": "effects", "gain_2": -3.0,
        "track_3": audio_dict("tone", 2.0, 24000, 2, freq=220.0), "role_3": "music", "gain_3": -6.0,
    }
    mix, dialogue, effects, music, m_and_e = nodes.MixTracks.execute(
        0, 2, True, -20.0, True, -1.0, True, 12.0, -40.0, 10.0, 100.0, **slots).args
    for a in (mix, dialogue, effects, music, m_and_e):
        assert a["sample_rate"] == 48000 and a["waveform"].shape == (1, 2, 96000)
    wave = mix["waveform"][0]
    assert abs(integrated_loudness(wave, 48000) + 20.0) < 0.5
    assert true_peak_db(wave, 48000) <= -0.95
    assert torch.allclose(wave, (dialogue["waveform"] + effects["waveform"] + music["waveform"])[0], atol=1e-5)
    t = np.arange(96000) / 48000
    talking, pause = (t % 1 > 0.15) & (t % 1 < 0.45), (t % 1 > 0.85)
    level_db = lambda x: 20 * np.log10(x[talking].std() / x[pause].std())
    assert level_db(effects["waveform"][0, 0].numpy()) < -10.0  # ducked under speech in the mix's stem
    assert abs(level_db(m_and_e["waveform"][0, 0].numpy())) < 1.0  # the M&E track is not ducked
    assert true_peak_db(m_and_e["waveform"][0], 48000) <= -0.95
    with pytest.raises(ValueError, match=r"Mix Tracks \(Soundstage\): input 'track_1'"):
        nodes.MixTracks.execute(0, 2, True, -20.0, True, -1.0, False, 12.0, -40.0, 10.0, 100.0)


MUX = dict(fps=25.0, naming="M&E", language="eng", default_track=1, keep_video_audio=False, container="mp4",
           video_codec="h264", audio_codec="aac", crf=23, preset="ultrafast", even_dimensions="pad", align="video",
           audio_bitrate_kbps=128, filename_prefix="deliveries/me")


def test_mux_me_delivery_into_output_folder(dirs):
    images = torch.rand(20, 35, 41, 3)
    stems = {f"track_{k}": audio_dict("tone", 1.0, 48000, 2, freq=200.0 * k) for k in range(1, 5)}
    out = nodes.Mux.execute(images=images, **MUX, **stems, title_4="Score", language_2="fra")
    video = out.args[0]
    saved = out.ui.as_dict()["images"][0]
    assert saved["filename"] == "me_00001_.mp4" and saved["subfolder"] == "deliveries" and saved["type"] == "output"
    path = dirs["output"] / "deliveries" / "me_00001_.mp4"
    assert path.is_file() and video.get_dimensions() == (42, 36)
    info = probe_audio(str(path))
    assert [a.title for a in info] == ["Mix", "Dialogue", "Effects", "Score"]
    assert [a.language for a in info] == ["eng", "fra", "eng", "eng"]
    assert probe_video(str(path)).frame_count == 20
    again = nodes.Mux.execute(images=images, **MUX, track_1=stems["track_1"]).ui.as_dict()["images"][0]
    assert again["filename"] == "me_00002_.mp4"
    with pytest.raises(ValueError, match=r"Mux \(Soundstage\): input 'audio_codec': mp4 takes aac, not opus"):
        nodes.Mux.execute(images=images, **{**MUX, "audio_codec": "opus"}, **stems)
    with pytest.raises(ValueError, match=r"Mux \(Soundstage\): input 'language_2': .*3-letter"):
        nodes.Mux.execute(images=images, **MUX, **stems, language_2="french")
    with pytest.raises(ValueError, match=r"Mux \(Soundstage\): input 'images'"):
        nodes.Mux.execute(**MUX)


def test_mux_streams_a_video_and_keeps_its_audio(dirs):
    src = make_video(dirs["input"] / "src.mp4", seconds=1.0, fps=24, size=(48, 32), audio="tone")
    music = audio_dict("noise", 3.0, 44100, 2, amplitude=0.1)
    out = nodes.Mux.execute(video=InputImpl.VideoFromFile(str(src)), **{**MUX, "container": "mkv", "audio_codec": "flac",
                                                                        "keep_video_audio": True, "default_track": 4},
                            track_4=music)
    path = out.args[0].get_stream_source()
    info = probe_audio(path)
    assert [a.title for a in info] == ["Original", "Music"]
    with av.open(path) as c:
        defaults = [bool(s.disposition & av.stream.Disposition.default) for s in c.streams.audio]
    assert defaults == [False, True]
    music_back, rate = load_audio(path, stream_index=1)
    assert rate == 44100 and music_back.shape[-1] == 44100  # cut to the 1 s video


def test_mux_copies_the_picture_untouched(dirs):
    src = make_video(dirs["input"] / "src.mkv", seconds=1.0, fps=25, size=(48, 32), audio="tone")
    video = InputImpl.VideoFromFile(str(src))
    dub = audio_dict("speechlike", 1.5, 48000, 1)
    out = nodes.Mux.execute(video=video, **{**MUX, "video_codec": "copy", "keep_video_audio": True, "default_track": 1},
                            track_1=dub, title_1="Dub", language_1="fra")
    path = out.args[0].get_stream_source()
    with av.open(path) as c, av.open(str(src)) as s:
        copied = [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]
        original = [bytes(p) for p in s.demux(s.streams.video[0]) if p.size]
    assert copied == original  # bit-exact picture
    info = probe_audio(path)
    assert [(a.title, a.language) for a in info] == [("Original", "eng"), ("Dub", "fra")]
    dub_back, rate = load_audio(path, stream_index=1)
    assert abs(dub_back.shape[-1] - rate) <= 1024  # cut to the 1 s picture
    with pytest.raises(ValueError, match=r"Mux \(Soundstage\): input 'video_codec'"):
        nodes.Mux.execute(images=torch.rand(2, 8, 8, 3), **{**MUX, "video_codec": "copy"}, track_1=dub)
    with pytest.raises(ValueError, match=r"Mux \(Soundstage\): input 'align'"):
        nodes.Mux.execute(video=video, **{**MUX, "video_codec": "copy", "align": "longest"}, track_1=dub)


def test_save_and_preview_audio(dirs):
    audio = audio_dict("tone", 0.5, 44100, 2)
    saved = nodes.SaveAudio.execute(audio, "sfx/take", "mp3", 128).ui.as_dict()["audio"]
    assert saved[0]["filename"] == "take_00001_.mp3"
    back, rate = load_audio(str(dirs["output"] / "sfx" / "take_00001_.mp3"))
    assert rate == 44100 and back.shape == (2, 22050)
    preview = nodes.PreviewAudio.execute(audio).ui.as_dict()["audio"][0]
    assert (dirs["temp"] / preview["subfolder"] / preview["filename"]).is_file()
    with pytest.raises(ValueError, match=r"Save Audio \(Soundstage\): input 'audio'"):
        nodes.SaveAudio.execute({"waveform": torch.zeros(1, 2, 0), "sample_rate": 44100}, "x", "wav", 128)


def test_preview_video(dirs):
    clip = InputImpl.VideoFromComponents(Types.VideoComponents(images=torch.rand(5, 16, 16, 3), frame_rate=5))
    saved = nodes.PreviewVideo.execute(clip).ui.as_dict()["images"][0]
    path = dirs["temp"] / saved["subfolder"] / saved["filename"]
    assert saved["type"] == "temp" and path.is_file()
    info = probe_video(str(path))
    assert (info.width, info.height, info.frame_count) == (16, 16, 5) and info.fps == pytest.approx(5.0)


# ----------------------------------------------------------------------------- graphs through the headless runner
def runner_for(dirs):
    from soundstage.headless import runner as runner_module  # part of the pack: never a skip
    # Only core stand-ins + these nodes: another area's import problem must not fail the media graph.
    return runner_module, runner_module.Runner(input_dir=dirs["input"], output_dir=dirs["output"],
                                               models_dir=dirs["input"].parent / "models", nodes=nodes.NODES)


def test_graph_core_load_video_through_our_nodes_to_core_save_video(dirs):
    runner_module, runner = runner_for(dirs)
    make_video(dirs["input"] / "in.mp4", seconds=2.0, fps=24, size=(64, 48), audio="tone")
    make_audio(dirs["input"] / "music.flac", seconds=3.0, sample_rate=44100, channels=2, kind="noise")
    prompt = {
        "1": {"class_type": "LoadVideo", "inputs": {"file": "in.mp4"}},
        "2": {"class_type": "SoundstageLoadVideo", "inputs": {
            "file": "", "video": ["1", 0], **LOAD_VIDEO, "fps": 12.0, "start_time": 0.5, "max_duration": 1.0}},
        "3": {"class_type": "SoundstageLoadAudio", "inputs": {
            "file": "music.flac", "start_time": 0.0, "max_duration": 0.0, "sample_rate": 48000, "channels": 2,
            "stream_index": 0}},
        "4": {"class_type": "SoundstageMixTracks", "inputs": {
            "track_1": ["2", 2], "role_1": "dialogue", "gain_1": 0.0, "track_2": ["3", 0], "role_2": "music",
            "gain_2": -6.0, "sample_rate": 0, "channels": 2, "normalize": True, "target_lufs": -23.0, "limit": True,
            "true_peak_db": -1.0, "duck": True, "duck_depth_db": 10.0, "duck_threshold_db": -40.0,
            "duck_attack_ms": 20.0, "duck_release_ms": 300.0}},
        "5": {"class_type": "SoundstageMux", "inputs": {
            "video": ["2", 0], **MUX, "track_1": ["4", 0], "track_2": ["4", 1], "track_4": ["4", 3],
            "filename_prefix": "graph/me"}},
        "6": {"class_type": "SaveVideo", "inputs": {"video": ["5", 0], "filename_prefix": "graph/core",
                                                    "format": "auto", "codec": "auto"}},
        "7": {"class_type": "SaveVideo", "inputs": {"video": ["2", 0], "filename_prefix": "graph/clip",
                                                    "format": "auto", "codec": "auto"}},
    }
    result = runner.run(prompt)
    mux_file = dirs["output"] / "graph" / result.outputs["5"]["images"][0]["filename"]
    core_file = dirs["output"] / "graph" / result.outputs["6"]["images"][0]["filename"]
    clip_file = dirs["output"] / "graph" / result.outputs["7"]["images"][0]["filename"]
    assert [a.title for a in probe_audio(str(mux_file))] == ["Mix", "Dialogue", "Music"]
    clip = probe_video(str(clip_file))
    assert clip.frame_count == 12 and clip.fps == pytest.approx(12.0)
    core = probe_video(str(core_file))  # core SaveVideo remuxes our VIDEO untouched
    assert core.frame_count == 12 and len(probe_audio(str(core_file))) == 3
    with pytest.raises(runner_module.ValidationFailed):
        runner.run({**prompt, "3": {**prompt["3"], "inputs": {**prompt["3"]["inputs"], "file": "../escape.flac"}}})


def test_example_workflow_me_delivery(dirs):
    """workflows/media_me_delivery.json: clip + dialogue/effects/music files -> ducked R128 mix + M&E mp4."""
    _, runner = runner_for(dirs)
    make_video(dirs["input"] / "dub_clip.mp4", seconds=2.0, fps=25, size=(64, 48), audio="tone")
    make_audio(dirs["input"] / "dialogue.wav", seconds=2.0, sample_rate=48000, kind="speechlike")
    make_audio(dirs["input"] / "effects.flac", seconds=2.5, sample_rate=44100, channels=2, kind="clicks")
    make_audio(dirs["input"] / "music.mp3", seconds=0.8, sample_rate=44100, channels=2, kind="tone")
    workflow = nodes_workflow("media_me_delivery.json")
    result = runner.run(workflow)
    delivery = dirs["output"] / "soundstage" / result.outputs["8"]["images"][0]["filename"]
    assert delivery.name == "me_delivery_00001_.mp4"
    tracks = probe_audio(str(delivery))
    assert [t.title for t in tracks] == ["Mix", "Dialogue", "Effects", "Music", "M&E"]
    assert all(t.language == "eng" for t in tracks)
    assert probe_video(str(delivery)).frame_count == 50
    for i in range(5):
        wave, rate = load_audio(str(delivery), stream_index=i)
        assert abs(wave.shape[-1] - 2.0 * rate) <= 1024
    music, rate = load_audio(str(delivery), stream_index=3)
    assert float(music[:, int(1.5 * rate):].abs().max()) > 0.01  # 0.8 s of music looped to the 2 s clip
    mix_file = dirs["output"] / "soundstage" / result.outputs["9"]["audio"][0]["filename"]
    mix, rate = load_audio(str(mix_file))
    assert abs(integrated_loudness(mix, rate) + 23.0) < 0.5


def test_example_workflow_me_delivery_keeps_ntsc_rate(dirs):
    """The same delivery from a 29.97 fps clip: 29.97 fps out, every track as long as the frames."""
    from fractions import Fraction

    from helpers import NTSC_30, assert_ntsc_and_in_sync

    _, runner = runner_for(dirs)
    make_video(dirs["input"] / "dub_clip.mp4", seconds=2.0, fps=Fraction(NTSC_30), size=(63, 47), audio="tone",
               pix_fmt="yuv444p")
    make_audio(dirs["input"] / "dialogue.wav", seconds=2.0, sample_rate=48000, kind="speechlike")
    make_audio(dirs["input"] / "effects.flac", seconds=2.5, sample_rate=44100, channels=2, kind="clicks")
    make_audio(dirs["input"] / "music.mp3", seconds=0.8, sample_rate=44100, channels=2, kind="tone")
    result = runner.run(nodes_workflow("media_me_delivery.json"))
    delivery = dirs["output"] / "soundstage" / result.outputs["8"]["images"][0]["filename"]
    info = assert_ntsc_and_in_sync(delivery, expect_frames=60)
    for i in range(5):
        wave, rate = load_audio(str(delivery), stream_index=i)
        assert abs(wave.shape[-1] / rate - info["video_s"]) <= 1024 / rate, i


def nodes_workflow(name: str):
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "workflows", name)
    assert os.path.isfile(path), f"bundled workflow {name} is missing"
    return path


def test_interrupting_a_mux_leaves_no_file(dirs, monkeypatch):
    from soundstage.compat import model_management

    calls = {"n": 0}
    original = model_management.throw_exception_if_processing_interrupted

    def interrupt_at_frame_5():
        calls["n"] += 1
        if calls["n"] > 5:
            model_management.interrupt_current_processing(True)
        original()

    monkeypatch.setattr(model_management, "throw_exception_if_processing_interrupted", interrupt_at_frame_5)
    try:
        with pytest.raises(model_management.InterruptProcessingException):
            nodes.Mux.execute(images=torch.rand(30, 16, 16, 3), **MUX, track_1=audio_dict("tone", 1.0))
    finally:
        model_management.interrupt_current_processing(False)
    assert 5 < calls["n"] < 30  # stopped mid-way, not after the whole encode
    assert not list((dirs["output"] / "deliveries").glob("*.mp4"))


def test_preview_video_lets_cancellation_through(dirs):
    """Cancelling while a VIDEO writes itself stops the run; any other writer failure names node and input."""
    from soundstage.compat import model_management

    class Writer:
        def __init__(self, error):
            self.error = error

        def save_to(self, path, **_):
            raise self.error

    with pytest.raises(model_management.InterruptProcessingException):
        nodes.preview_video(Writer(model_management.InterruptProcessingException()))
    with pytest.raises(ValueError, match="Preview Video \\(Soundstage\\): input 'video': cannot write"):
        nodes.preview_video(Writer(OSError("disk full")))
