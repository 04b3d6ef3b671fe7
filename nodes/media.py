"""Media nodes: load video/audio, pick frames, fit and mix audio, mux multi-track deliveries, save, preview.

Each node's ``execute`` unpacks inputs and calls one function below; the work itself lives in
``media/`` (plain functions, no ComfyUI). Errors name the node and the input they concern.
"""
from __future__ import annotations

import dataclasses
import os
from fractions import Fraction

import torch

from ..compat import InputImpl, Types, folder_paths, io, model_management, ui
from ..media import MediaError
from ..media.audio_io import convert_channels, from_comfy_audio, load_audio, probe_audio, resample, to_comfy_audio
from ..media.decode import (
    DecodedVideo, decode_video, fps_fraction, iter_frames, probe_video, timeline_indices,
)
from ..media.fit import ALIGNS, FIT_MODES, fit_audio
from ..media.mix import ROLES, MixResult, Track, mix_tracks
from ..media.mux import (
    ALIGN_MODES, CONTAINERS, EVEN_MODES, PRESETS, AudioTrack, check_language, image_frames, mux, remux,
)
from ..media.output_files import check_prefix, counted_name, inside, prefix_folder, publish, staged
from ..media.paths import resolve_inside
from ..media.resize import RESIZE_MODES, plan_resize, resize_images
from ..media.save_audio import AUDIO_FORMATS, audio_extension, save_audio
from .errors import node_errors
from .progress import step_callback

CATEGORY = "Soundstage/Media"
MIX_SLOTS = 8
MUX_SLOTS = 6
ME_TITLES = ("Mix", "Dialogue", "Effects", "Music", "M&E")
VIDEO_EXTENSIONS = {".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".gif"}
AUDIO_EXTENSIONS = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".aiff", ".aif", ".wma", ".mka"}
SILENT_RATE = 48000


# ----------------------------------------------------------------------------- shared helpers
def input_files(extensions: set[str]) -> list[str]:
    folder = folder_paths.get_input_directory()
    if not os.path.isdir(folder):
        return []
    return sorted(f for f in os.listdir(folder)
                  if os.path.isfile(os.path.join(folder, f)) and os.path.splitext(f)[1].lower() in extensions)


def resolve_input_file(name: str, node: str, input_name: str) -> str:
    with node_errors(node, input_name):
        return resolve_inside(folder_paths.get_input_directory(), name)


def input_file_fingerprint(name: str, node: str) -> str:
    """``fingerprint_inputs`` of a file loader: the file's SHA-256 as core LoadAudio computes it, so a file
    replaced under the same name runs the node again (and an unchanged one stays cached)."""
    import hashlib

    try:
        path = resolve_input_file(name, node, "file") if name else ""
    except ValueError:
        return f"missing:{name}"  # validation reports it; nothing to hash
    if not path or not os.path.isfile(path):
        return f"missing:{name}"
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def validate_input_file(name, node: str, input_name: str = "file", allow_empty: bool = False):
    """``validate_inputs`` result: True, or the message the prompt validation shows."""
    if allow_empty and not name:
        return True
    try:
        resolve_input_file(name, node, input_name)
    except ValueError as exc:
        return str(exc)
    return True


def video_source(video):
    """A PyAV-openable source for a file-backed VIDEO, or None for tensor-backed ones."""
    if isinstance(video, InputImpl.VideoFromFile) and hasattr(video, "get_stream_source"):
        return video.get_stream_source()
    return None  # tensor-backed (or an older ComfyUI without stream sources): use get_components()


def video_duration(video, node: str, input_name: str) -> float:
    source = video_source(video)
    with node_errors(node, input_name):
        if source is not None:
            info = probe_video(source)
            if info.duration:
                return info.duration
        components = video.get_components()
        if components.images.shape[0] == 0:
            raise MediaError("the VIDEO has no frames")
        return float(components.images.shape[0] / Fraction(components.frame_rate))


def silence(seconds: float, sample_rate: int = SILENT_RATE, channels: int = 1) -> dict:
    return to_comfy_audio(torch.zeros(channels, max(1, int(round(seconds * sample_rate)))), sample_rate)


def resize_options(mode: str, width: int, height: int, multiple_of: int) -> dict | None:
    if mode == "none" and multiple_of <= 1:
        return None
    return {"mode": mode, "width": width, "height": height, "multiple_of": multiple_of}


def write_output(prefix: str, ext: str, writer, node: str, input_name: str = "filename_prefix",
                 folder: str | None = None, width: int = 0, height: int = 0) -> tuple[str, str, str]:
    """``writer(temp_path)`` writes the file; it then gets ComfyUI's ``<prefix>_<counter:05>_.<ext>`` name
    without replacing anything (see ``media.output_files``). Returns (full path, file name, subfolder)."""
    root = folder or folder_paths.get_output_directory()
    with node_errors(node, input_name):
        inside(root, prefix_folder(check_prefix(prefix)))  # before ComfyUI's helper creates any folder
        full_folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(prefix, root, width, height)
        real_folder = inside(root, full_folder, create=True)
    with staged(real_folder, ext) as temp:
        writer(temp)
        model_management.throw_exception_if_processing_interrupted()
        file = publish(temp, real_folder, counted_name(filename, ext), counter)
    return os.path.join(real_folder, file), file, subfolder


def lazy_progress():
    """Per-frame callback whose progress bar opens at the first frame, when the expected total is known."""
    callback = None

    def progress(done: int, total: int) -> None:
        nonlocal callback
        if callback is None:
            callback = step_callback(total)
        callback(done, total)  # also ComfyUI's interruption check

    return progress


def frames_of(video, node: str, input_name: str, fps: float = 0.0, start: float = 0.0, duration: float = 0.0,
              max_frames: int = 0, stride: int = 1, resize: dict | None = None) -> DecodedVideo:
    """A VIDEO's frames over a window: streamed from its file when it has one, else from its tensors."""
    with node_errors(node, input_name):
        source = video_source(video)
        if source is not None:
            return decode_video(source, start, duration, max_frames, fps, stride, resize, callback=lazy_progress())
        components = video.get_components()
        source_fps = float(Fraction(components.frame_rate))
        picks = timeline_indices(int(components.images.shape[0]), source_fps, start, duration, max_frames, fps, stride)
        if not picks:
            raise MediaError(f"no frames in the window start={start} s, duration={duration or 'to end'}")
        images = components.images[picks]
        if resize:
            images = resize_images(images, plan_resize(images.shape[2], images.shape[1], **resize))
        out_fps = (fps if fps > 0 else source_fps) / stride
        return DecodedVideo(images, [i / out_fps for i in range(len(picks))], out_fps, source_fps)


def audio_of_video(video, node: str, input_name: str, start: float, seconds: float) -> dict | None:
    """The VIDEO's soundtrack over [start, start + seconds), or None when it has none."""
    source = video_source(video)
    with node_errors(node, input_name):
        if source is not None:
            if not probe_audio(source):
                return None
            wave, rate = load_audio(source, start, seconds)
            return to_comfy_audio(wave, rate)
        audio = video.get_components().audio
        if audio is None:
            return None
        wave, rate = from_comfy_audio(audio, "the VIDEO's audio")
        begin = int(round(start * rate))
        end = begin + int(round(seconds * rate)) if seconds > 0 else wave.shape[-1]
        return to_comfy_audio(wave[:, begin:end], rate)


# ----------------------------------------------------------------------------- Load Video
def load_video(file: str, video, fps: float, start_time: float, max_duration: float, max_frames: int,
               resize: str, width: int, height: int, multiple_of: int, node: str = "Load Video (Soundstage)"):
    if video is None:
        if not file:
            raise ValueError(f"{node}: input 'file': choose a file or connect 'video'")
        path = resolve_input_file(file, node, "file")
        video = InputImpl.VideoFromFile(path)
        origin = "file"
    else:
        origin = "video"
    decoded = frames_of(video, node, origin, fps, start_time, max_duration, max_frames, 1,
                        resize_options(resize, width, height, multiple_of))
    seconds = decoded.frames.shape[0] / decoded.fps
    audio = audio_of_video(video, node, origin, start_time, seconds)
    if audio is None:
        audio = silence(seconds)  # documented fallback: silent track of the clip's length
    rate = fps_fraction(decoded.fps)
    clip = InputImpl.VideoFromComponents(Types.VideoComponents(images=decoded.frames, audio=audio, frame_rate=rate))
    return clip, decoded.frames, audio, float(decoded.fps), int(decoded.frames.shape[0])


class LoadVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageLoadVideo",
            display_name="Load Video (Soundstage)",
            category=CATEGORY,
            description="Decode a window of a video: frames, its audio and a VIDEO of the clip. Decoding "
                        "seeks to the start and stops at the window's end, so long files load fast.",
            inputs=[
                io.Combo.Input("file", options=input_files(VIDEO_EXTENSIONS), upload=io.UploadType.video,
                               tooltip="Video in the input folder (ignored when 'video' is connected)."),
                io.Video.Input("video", optional=True, tooltip="A VIDEO from another node (e.g. core Load Video)."),
                io.Float.Input("fps", default=0.0, min=0.0, max=240.0, step=0.001,
                               tooltip="Resample the frame timeline to exactly this rate (also VFR input). 0 = source frames."),
                io.Float.Input("start_time", default=0.0, min=0.0, max=86400.0, step=0.01, tooltip="Seconds to skip."),
                io.Float.Input("max_duration", default=0.0, min=0.0, max=86400.0, step=0.01,
                               tooltip="Seconds to load from start_time; 0 = to the end."),
                io.Int.Input("max_frames", default=0, min=0, max=100000, step=1, tooltip="Stop after this many frames; 0 = no limit."),
                io.Combo.Input("resize", options=list(RESIZE_MODES), default="none",
                               tooltip="fit: inside width x height; crop: fill and centre-crop; stretch: exact size."),
                io.Int.Input("width", default=0, min=0, max=8192, step=1, tooltip="Target width; 0 = follow the aspect ratio."),
                io.Int.Input("height", default=0, min=0, max=8192, step=1, tooltip="Target height; 0 = follow the aspect ratio."),
                io.Int.Input("multiple_of", default=1, min=1, max=128, step=1,
                             tooltip="Centre-crop both sides to a multiple of this (8/16/32 for VAEs)."),
            ],
            outputs=[
                io.Video.Output("VIDEO", tooltip="The loaded clip (frames + audio) as a VIDEO."),
                io.Image.Output("IMAGE"),
                io.Audio.Output("AUDIO", tooltip="The clip's audio; silence of the clip's length when the file has none."),
                io.Float.Output("frame_rate"),
                io.Int.Output("frame_count"),
            ],
        )

    @classmethod
    def execute(cls, file, fps, start_time, max_duration, max_frames, resize, width, height, multiple_of,
                video=None) -> io.NodeOutput:
        return io.NodeOutput(*load_video(file, video, fps, start_time, max_duration, max_frames, resize,
                                         width, height, multiple_of))

    @classmethod
    def fingerprint_inputs(cls, file, **_):
        return input_file_fingerprint(file, "Load Video (Soundstage)")

    @classmethod
    def validate_inputs(cls, file):
        # Checked here (not against the combo list) so uploads and sub-folders work; empty = 'video' is used.
        return validate_input_file(file, "Load Video (Soundstage)", allow_empty=True)


# ----------------------------------------------------------------------------- Load Audio
def load_audio_file(file: str, start_time: float, max_duration: float, sample_rate: int, channels: int,
                    stream_index: int, node: str = "Load Audio (Soundstage)") -> tuple[dict, float]:
    path = resolve_input_file(file, node, "file")
    with node_errors(node, "file"):
        wave, rate = load_audio(path, start_time, max_duration, stream_index, sample_rate, channels)
    return to_comfy_audio(wave, rate), wave.shape[-1] / rate


class LoadAudio(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageLoadAudio",
            display_name="Load Audio (Soundstage)",
            category=CATEGORY,
            description="Any file FFmpeg decodes (wav, flac, mp3, ogg/opus, m4a/aac, a video's soundtrack).",
            inputs=[
                io.Combo.Input("file", options=input_files(AUDIO_EXTENSIONS | VIDEO_EXTENSIONS), upload=io.UploadType.audio,
                               tooltip="Audio or video file in the input folder."),
                io.Float.Input("start_time", default=0.0, min=0.0, max=86400.0, step=0.01, tooltip="Seconds to skip."),
                io.Float.Input("max_duration", default=0.0, min=0.0, max=86400.0, step=0.01, tooltip="Seconds to load; 0 = to the end."),
                io.Int.Input("sample_rate", default=0, min=0, max=192000, step=1,
                             tooltip="Resample to this rate (torchaudio sinc); 0 = keep the file's."),
                io.Int.Input("channels", default=0, min=0, max=8, step=1, tooltip="1 = mono, 2 = stereo; 0 = keep."),
                io.Int.Input("stream_index", default=0, min=0, max=63, step=1, tooltip="Which audio track of a multi-track file."),
            ],
            outputs=[io.Audio.Output("AUDIO"), io.Float.Output("duration")],
        )

    @classmethod
    def execute(cls, file, start_time, max_duration, sample_rate, channels, stream_index) -> io.NodeOutput:
        return io.NodeOutput(*load_audio_file(file, start_time, max_duration, sample_rate, channels, stream_index))

    @classmethod
    def fingerprint_inputs(cls, file, **_):
        return input_file_fingerprint(file, "Load Audio (Soundstage)")

    @classmethod
    def validate_inputs(cls, file):
        return validate_input_file(file, "Load Audio (Soundstage)")


# ----------------------------------------------------------------------------- Video Frames
def video_frames(video, fps: float, stride: int, start_time: float, max_duration: float, max_frames: int,
                 resize: str, width: int, height: int, multiple_of: int, node: str = "Video Frames (Soundstage)"):
    decoded = frames_of(video, node, "video", fps, start_time, max_duration, max_frames, stride,
                        resize_options(resize, width, height, multiple_of))
    return decoded.frames, float(decoded.fps), int(decoded.frames.shape[0])


class VideoFrames(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageVideoFrames",
            display_name="Video Frames (Soundstage)",
            category=CATEGORY,
            description="VIDEO -> IMAGE at a chosen rate, stride and size (e.g. 8 fps CLIP frames, 25 fps sync frames).",
            inputs=[
                io.Video.Input("video"),
                io.Float.Input("fps", default=0.0, min=0.0, max=240.0, step=0.001, tooltip="Exact output rate; 0 = source frames."),
                io.Int.Input("stride", default=1, min=1, max=1000, step=1, tooltip="Keep every n-th frame (after fps)."),
                io.Float.Input("start_time", default=0.0, min=0.0, max=86400.0, step=0.01, tooltip="Seconds to skip."),
                io.Float.Input("max_duration", default=0.0, min=0.0, max=86400.0, step=0.01, tooltip="0 = to the end."),
                io.Int.Input("max_frames", default=0, min=0, max=100000, step=1, tooltip="0 = no limit."),
                io.Combo.Input("resize", options=list(RESIZE_MODES), default="none", tooltip="How to reach width x height."),
                io.Int.Input("width", default=0, min=0, max=8192, step=1, tooltip="0 = follow the aspect ratio."),
                io.Int.Input("height", default=0, min=0, max=8192, step=1, tooltip="0 = follow the aspect ratio."),
                io.Int.Input("multiple_of", default=1, min=1, max=128, step=1, tooltip="Centre-crop sides to a multiple of this."),
            ],
            outputs=[io.Image.Output("IMAGE"), io.Float.Output("frame_rate"), io.Int.Output("frame_count")],
        )

    @classmethod
    def execute(cls, video, fps, stride, start_time, max_duration, max_frames, resize, width, height,
                multiple_of) -> io.NodeOutput:
        return io.NodeOutput(*video_frames(video, fps, stride, start_time, max_duration, max_frames, resize,
                                           width, height, multiple_of))


# ----------------------------------------------------------------------------- Fit Audio
def fit_audio_node(audio: dict, mode: str, duration: float, video, sample_rate: int, align: str, fade_ms: float,
                   node: str = "Fit Audio (Soundstage)") -> dict:
    with node_errors(node, "audio"):
        wave, rate = from_comfy_audio(audio)
    if sample_rate:
        with node_errors(node, "sample_rate"):
            wave, rate = resample(wave, rate, sample_rate), sample_rate
    seconds = video_duration(video, node, "video") if video is not None else duration
    if seconds <= 0:
        raise ValueError(f"{node}: input 'duration': give a duration > 0 s or connect a VIDEO")
    with node_errors(node, "mode"):
        return to_comfy_audio(fit_audio(wave, rate, int(round(seconds * rate)), mode, align, fade_ms), rate)


class FitAudio(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageFitAudio",
            display_name="Fit Audio (Soundstage)",
            category=CATEGORY,
            description="Make audio exactly a duration (or a VIDEO's): trim/pad, loop, stretch keeping pitch, or change speed.",
            inputs=[
                io.Audio.Input("audio"),
                io.Combo.Input("mode", options=list(FIT_MODES), default="trim_pad",
                               tooltip="trim_pad: cut or add silence; loop: repeat with crossfades; "
                                       "stretch: WSOLA time-stretch (pitch kept); speed: resample (pitch follows)."),
                io.Float.Input("duration", default=5.0, min=0.0, max=86400.0, step=0.001,
                               tooltip="Target seconds (ignored when 'video' is connected)."),
                io.Video.Input("video", optional=True, tooltip="Fit to this VIDEO's duration."),
                io.Int.Input("sample_rate", default=0, min=0, max=192000, step=1, tooltip="Resample first; 0 = keep."),
                io.Combo.Input("align", options=list(ALIGNS), default="start",
                               tooltip="For trim_pad: which part is kept / where silence goes."),
                io.Float.Input("fade_ms", default=5.0, min=0.0, max=5000.0, step=0.5,
                               tooltip="Fade at cut points and loop seams, so no click is heard."),
            ],
            outputs=[io.Audio.Output("AUDIO")],
        )

    @classmethod
    def execute(cls, audio, mode, duration, sample_rate, align, fade_ms, video=None) -> io.NodeOutput:
        return io.NodeOutput(fit_audio_node(audio, mode, duration, video, sample_rate, align, fade_ms))


# ----------------------------------------------------------------------------- Mix Tracks
def mix_tracks_node(tracks: list[tuple[int, dict, float, str]], sample_rate: int, channels: int, normalize: bool,
                    target_lufs: float, true_peak_db: float, limit: bool, duck: bool, duck_depth_db: float,
                    duck_threshold_db: float, duck_attack_ms: float, duck_release_ms: float,
                    node: str = "Mix Tracks (Soundstage)") -> MixResult:
    if not tracks:
        raise ValueError(f"{node}: input 'track_1': connect at least one AUDIO track")
    items = []
    for slot, audio, gain, role in tracks:
        with node_errors(node, f"track_{slot}"):
            wave, rate = from_comfy_audio(audio, f"track {slot}")
        items.append(Track(wave, rate, gain, role, name=f"track_{slot}"))
    ducking = ({"depth_db": duck_depth_db, "threshold_db": duck_threshold_db, "attack_ms": duck_attack_ms,
                "release_ms": duck_release_ms} if duck else None)
    with node_errors(node, "tracks"):
        return mix_tracks(items, sample_rate, channels, target_lufs if normalize else None,
                          true_peak_db if limit else None, ducking)


class MixTracks(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        slots = []
        for k in range(1, MIX_SLOTS + 1):
            slots += [
                io.Audio.Input(f"track_{k}", optional=True, tooltip=f"Audio track {k}."),
                io.Float.Input(f"gain_{k}", default=0.0, min=-48.0, max=48.0, step=0.1, optional=True,
                               tooltip=f"Gain of track {k} in dB."),
                io.Combo.Input(f"role_{k}", options=list(ROLES), default=ROLES[min(k - 1, 2)], optional=True,
                               tooltip="dialogue ducks effects/music; each role sums into its stem."),
            ]
        return io.Schema(
            node_id="SoundstageMixTracks",
            display_name="Mix Tracks (Soundstage)",
            category=CATEGORY,
            description="Dialogue + effects + music: gains, sidechain ducking under dialogue, EBU R128 loudness "
                        "and true-peak limiting. Stems share the mix's gains, so mix = dialogue + effects + music; "
                        "m_and_e is the un-ducked music & effects track for re-dubbing.",
            inputs=slots + [
                io.Int.Input("sample_rate", default=0, min=0, max=192000, step=1, tooltip="0 = highest rate among the tracks."),
                io.Int.Input("channels", default=2, min=1, max=8, step=1, tooltip="Output channels."),
                io.Boolean.Input("normalize", default=True, tooltip="EBU R128 integrated loudness normalisation."),
                io.Float.Input("target_lufs", default=-23.0, min=-70.0, max=0.0, step=0.5,
                               tooltip="-23 LUFS: EBU R128 broadcast; -16 to -14: streaming platforms."),
                io.Boolean.Input("limit", default=True, tooltip="True-peak limiter (4x oversampled peaks)."),
                io.Float.Input("true_peak_db", default=-1.0, min=-20.0, max=0.0, step=0.1, tooltip="Ceiling in dBTP."),
                io.Boolean.Input("duck", default=False, tooltip="Lower effects and music while dialogue plays."),
                io.Float.Input("duck_depth_db", default=10.0, min=0.0, max=60.0, step=0.5, tooltip="How far to lower them."),
                io.Float.Input("duck_threshold_db", default=-40.0, min=-90.0, max=0.0, step=1.0,
                               tooltip="Dialogue RMS (dBFS) that counts as speech."),
                io.Float.Input("duck_attack_ms", default=20.0, min=0.0, max=2000.0, step=1.0, tooltip="Time to duck."),
                io.Float.Input("duck_release_ms", default=300.0, min=0.0, max=10000.0, step=1.0, tooltip="Time to recover."),
            ],
            outputs=[io.Audio.Output("mix"), io.Audio.Output("dialogue"), io.Audio.Output("effects"),
                     io.Audio.Output("music"), io.Audio.Output("m_and_e", tooltip="Music & effects for international versions: "
                                                   "no dialogue and no ducking, same loudness gain as the mix.")],
        )

    @classmethod
    def execute(cls, sample_rate, channels, normalize, target_lufs, limit, true_peak_db, duck, duck_depth_db,
                duck_threshold_db, duck_attack_ms, duck_release_ms, **slots) -> io.NodeOutput:
        tracks = [(k, slots[f"track_{k}"], slots.get(f"gain_{k}", 0.0), slots.get(f"role_{k}", ROLES[min(k - 1, 2)]))
                  for k in range(1, MIX_SLOTS + 1) if slots.get(f"track_{k}") is not None]
        result = mix_tracks_node(tracks, sample_rate, channels, normalize, target_lufs, true_peak_db, limit, duck,
                                 duck_depth_db, duck_threshold_db, duck_attack_ms, duck_release_ms)
        stems = result.stems
        rate = result.sample_rate
        return io.NodeOutput(to_comfy_audio(result.mix, rate), *(to_comfy_audio(stems[r], rate) for r in ROLES),
                             to_comfy_audio(result.m_and_e, rate))


# ----------------------------------------------------------------------------- Mux
def mux_node(images, video, fps: float, tracks: list[tuple[int, dict, str, str]], naming: str, language: str,
             default_track: int, keep_video_audio: bool, container: str, video_codec: str, audio_codec: str,
             crf: int, preset: str, even: str, align: str, audio_bitrate_kbps: int, filename_prefix: str,
             node: str = "Mux (Soundstage)"):
    if images is None and video is None:
        raise ValueError(f"{node}: input 'images': connect IMAGE frames or a VIDEO")
    copy = video_codec == "copy"
    if copy and (images is not None or video is None or video_source(video) is None):
        raise ValueError(f"{node}: input 'video_codec': 'copy' needs a file-backed VIDEO (e.g. from a Load Video "
                         "node's file) and no 'images'")
    if copy and align != "video":
        raise ValueError(f"{node}: input 'align': a copied video keeps its length; use align 'video'")
    allowed = CONTAINERS.get(container, {"video": (), "audio": ()})
    if audio_codec not in allowed["audio"]:
        raise ValueError(f"{node}: input 'audio_codec': {container} takes {', '.join(allowed['audio'])}, "
                         f"not {audio_codec}")
    frame_count = None
    if copy:
        frames, rate = None, 0.0
    elif images is not None:
        if fps <= 0:
            raise ValueError(f"{node}: input 'fps': frames need a rate > 0")
        frames, rate = images, fps
    else:
        source = video_source(video)
        if source is not None:
            with node_errors(node, "video"):
                info = probe_video(source)
            frames, rate, frame_count = iter_frames(source), info.fps, info.frame_count
        else:
            components = video.get_components()
            frames, rate = components.images, float(Fraction(components.frame_rate))
    audio_tracks = []
    if keep_video_audio and video is not None:
        original = audio_of_video(video, node, "video", 0.0, 0.0)
        if original is not None:
            tracks = [(0, original, "Original", "")] + tracks
    for slot, audio, title, lang in tracks:
        name = f"track_{slot}" if slot else "video"
        with node_errors(node, name):
            wave, sr = from_comfy_audio(audio, name)
            if audio_codec == "opus" and wave.shape[0] > 2:
                wave = convert_channels(wave, 2)
        if not title:
            title = (ME_TITLES[slot - 1] if naming == "M&E" and 0 < slot <= len(ME_TITLES) else f"Track {slot}")
        with node_errors(node, f"language_{slot}" if lang else "language"):
            lang = check_language(lang or language)
        audio_tracks.append(AudioTrack(wave, sr, title, lang, default=(slot == default_track)))
    if audio_tracks and not any(t.default for t in audio_tracks):
        audio_tracks[0].default = True
    results = []

    def write(temp: str) -> None:
        if copy:
            with node_errors(node, "video"):
                results.append(remux(temp, video_source(video), audio_tracks, container, audio_codec,
                                     audio_bitrate_kbps))
            return
        progress = step_callback(max(1, frame_count or (images.shape[0] if images is not None else 1)))
        counted = _counting(frames, progress)
        with node_errors(node, "options"):
            results.append(mux(temp, counted, rate, audio_tracks, container, video_codec, audio_codec, crf, preset,
                               even, align, audio_bitrate_kbps,
                               frame_count=frame_count or (int(images.shape[0]) if images is not None else None)))

    path, file, subfolder = write_output(filename_prefix, container, write, node)
    result = dataclasses.replace(results[0], path=path)
    return InputImpl.VideoFromFile(path), ui.SavedResult(file, subfolder, io.FolderType.output), result


def _counting(frames, progress):
    """Frames passed through with a progress step (and the interruption check) per frame."""
    if torch.is_tensor(frames):
        total = int(frames.shape[0])
        frames = image_frames(frames)
    else:
        total = 0
    for i, frame in enumerate(frames, start=1):
        progress(i, max(total, i))  # also the interruption check
        yield frame


class Mux(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        slots = []
        for k in range(1, MUX_SLOTS + 1):
            slots += [
                io.Audio.Input(f"track_{k}", optional=True, tooltip=f"Audio track {k}."),
                io.String.Input(f"title_{k}", default="", optional=True,
                                tooltip=f"Name of track {k} in players; empty = from 'naming'."),
                io.String.Input(f"language_{k}", default="", optional=True,
                                tooltip="ISO 639-2 code (eng, fra, deu, ...); empty = 'language'."),
            ]
        return io.Schema(
            node_id="SoundstageMux",
            display_name="Mux Video + Tracks (Soundstage)",
            category=CATEGORY,
            is_output_node=True,
            description="Frames or a VIDEO plus named audio tracks into one mp4/mkv with title and language "
                        "tags, a default track and exact A/V durations. With naming 'M&E', wire Mix Tracks' "
                        "outputs mix, dialogue, effects, music, m_and_e to tracks 1-5 for a dubbing delivery.",
            inputs=[
                io.Image.Input("images", optional=True, tooltip="Frames (use this or 'video')."),
                io.Video.Input("video", optional=True, tooltip="A VIDEO; its frames are streamed, not loaded whole."),
                io.Float.Input("fps", default=25.0, min=0.01, max=240.0, step=0.001, tooltip="Rate of 'images'."),
            ] + slots + [
                io.Combo.Input("naming", options=["M&E", "numbered"], default="M&E",
                               tooltip="Titles of untitled tracks 1-5: M&E = Mix, Dialogue, Effects, Music, M&E; numbered = Track k."),
                io.String.Input("language", default="und", tooltip="Language of tracks without their own."),
                io.Int.Input("default_track", default=1, min=1, max=MUX_SLOTS, step=1, tooltip="Track players pick first."),
                io.Boolean.Input("keep_video_audio", default=False,
                                 tooltip="Also carry the VIDEO's own audio, as the first track 'Original'."),
                io.Combo.Input("container", options=list(CONTAINERS), default="mp4",
                               tooltip="mp4: H.264/H.265 + AAC; mkv: also Opus or FLAC audio."),
                io.Combo.Input("video_codec", options=["h264", "h265", "copy"], default="h264",
                               tooltip="H.264 plays everywhere. copy: keep a file VIDEO's H.264 stream untouched "
                                       "(fast, lossless) and only add the tracks, like ffmpeg -c:v copy."),
                io.Combo.Input("audio_codec", options=["aac", "opus", "flac"], default="aac",
                               tooltip="mp4 takes aac; mkv takes all three."),
                io.Int.Input("crf", default=18, min=0, max=51, step=1, tooltip="Quality: lower is better (18 ~ visually lossless)."),
                io.Combo.Input("preset", options=list(PRESETS), default="medium", tooltip="Encoder speed/size trade-off."),
                io.Combo.Input("even_dimensions", options=list(EVEN_MODES), default="pad",
                               tooltip="4:2:0 needs even sizes: pad repeats the edge pixel, crop drops it, scale resizes."),
                io.Combo.Input("align", options=list(ALIGN_MODES), default="video",
                               tooltip="video: audio cut/padded to the video; shortest / longest of all."),
                io.Int.Input("audio_bitrate_kbps", default=192, min=32, max=512, step=8, tooltip="For aac/opus."),
                io.String.Input("filename_prefix", default="soundstage/delivery", tooltip="Output file prefix."),
            ],
            outputs=[io.Video.Output("VIDEO")],
        )

    @classmethod
    def execute(cls, fps, naming, language, default_track, keep_video_audio, container, video_codec, audio_codec,
                crf, preset, even_dimensions, align, audio_bitrate_kbps, filename_prefix, images=None, video=None,
                **slots) -> io.NodeOutput:
        tracks = [(k, slots[f"track_{k}"], slots.get(f"title_{k}") or "", slots.get(f"language_{k}") or "")
                  for k in range(1, MUX_SLOTS + 1) if slots.get(f"track_{k}") is not None]
        out, saved, _ = mux_node(images, video, fps, tracks, naming, language, default_track, keep_video_audio,
                                 container, video_codec, audio_codec, crf, preset, even_dimensions, align,
                                 audio_bitrate_kbps, filename_prefix)
        return io.NodeOutput(out, ui=ui.PreviewVideo([saved]))


# ----------------------------------------------------------------------------- Save / preview
def save_audio_node(audio: dict, filename_prefix: str, fmt: str, bitrate_kbps: int, folder: str | None = None,
                    node: str = "Save Audio (Soundstage)") -> list:
    with node_errors(node, "format"):
        ext = audio_extension(fmt)
    waveform = audio.get("waveform") if isinstance(audio, dict) else None
    if waveform is None:
        raise ValueError(f"{node}: input 'audio': not an AUDIO value")
    results = []
    for b in range(max(1, waveform.shape[0] if waveform.ndim == 3 else 1)):
        item = {"waveform": waveform[b:b + 1] if waveform.ndim == 3 else waveform, "sample_rate": audio["sample_rate"]}
        with node_errors(node, "audio"):
            wave, rate = from_comfy_audio(item)
        if fmt in ("opus", "mp3") and wave.shape[0] > 2:
            wave = convert_channels(wave, 2)  # as Mux does: these codecs carry mono or stereo only

        def write(temp: str, wave=wave, rate=rate) -> None:
            with node_errors(node, "audio"):
                save_audio(temp, wave, rate, fmt, bitrate_kbps,
                           check=model_management.throw_exception_if_processing_interrupted)

        _, file, subfolder = write_output(filename_prefix, ext, write, node, folder=folder)
        results.append(ui.SavedResult(file, subfolder, io.FolderType.output if folder is None else io.FolderType.temp))
    return results


class SaveAudio(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageSaveAudio",
            display_name="Save Audio (Soundstage)",
            category=CATEGORY,
            description="Writes the audio to the output folder (wav, flac, opus or mp3) and shows a player.",
            is_output_node=True,
            inputs=[
                io.Audio.Input("audio"),
                io.String.Input("filename_prefix", default="soundstage/audio", tooltip="Output file prefix."),
                io.Combo.Input("format", options=list(AUDIO_FORMATS), default="flac",
                               tooltip="wav 16/24-bit or float, flac, opus (48 kHz), mp3."),
                io.Int.Input("bitrate_kbps", default=192, min=32, max=512, step=8, tooltip="For opus and mp3."),
            ],
            outputs=[],
        )

    @classmethod
    def execute(cls, audio, filename_prefix, format, bitrate_kbps) -> io.NodeOutput:
        return io.NodeOutput(ui=ui.SavedAudios(save_audio_node(audio, filename_prefix, format, bitrate_kbps)))


class PreviewAudio(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstagePreviewAudio",
            display_name="Preview Audio (Soundstage)",
            category=CATEGORY,
            description="Plays the audio on the node without saving it to the output folder.",
            is_output_node=True,
            inputs=[io.Audio.Input("audio")],
            outputs=[],
        )

    @classmethod
    def execute(cls, audio) -> io.NodeOutput:
        with node_errors("Preview Audio (Soundstage)", "audio"):
            from_comfy_audio(audio)
        return io.NodeOutput(ui=ui.PreviewAudio(audio, cls=cls))


def preview_video(video, node: str = "Preview Video (Soundstage)"):
    def write(temp: str) -> None:
        try:
            video.save_to(temp)
        except model_management.InterruptProcessingException:
            raise
        except Exception as exc:  # the VIDEO's own writer: report it against this node's input
            raise ValueError(f"{node}: input 'video': cannot write a preview ({exc})") from exc

    _, file, subfolder = write_output("soundstage_preview", "mp4", write, node, "video",
                                      folder=folder_paths.get_temp_directory())
    return ui.SavedResult(file, subfolder, io.FolderType.temp)


class PreviewVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstagePreviewVideo",
            display_name="Preview Video (Soundstage)",
            category=CATEGORY,
            description="Plays the video (with its audio) on the node without saving it to the output folder.",
            is_output_node=True,
            inputs=[io.Video.Input("video")],
            outputs=[],
        )

    @classmethod
    def execute(cls, video) -> io.NodeOutput:
        return io.NodeOutput(ui=ui.PreviewVideo([preview_video(video)]))


NODES: list[type[io.ComfyNode]] = [LoadVideo, LoadAudio, VideoFrames, FitAudio, MixTracks, Mux, SaveAudio,
                                   PreviewAudio, PreviewVideo]
