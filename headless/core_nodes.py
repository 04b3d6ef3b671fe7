"""Headless stand-ins for the ComfyUI core nodes Soundstage workflows use.

Same node ids, inputs (names, types, defaults, order) and outputs as ComfyUI's
comfy_extras/nodes_video.py, nodes_audio.py, nodes_primitive.py and nodes.py, so example
workflows are ordinary ComfyUI graphs. Registered by the runner only when ComfyUI is absent.
"""
from __future__ import annotations

import hashlib
import os
import sys
from contextlib import contextmanager
from fractions import Fraction

import av
import numpy as np
import torch

from ..media.errors import MediaError
from ..media.memory import require
from ..media.paths import resolve_inside
from ..media.source import decoder_of
from .stubs import InputImpl, Types, folder_paths, io, model_management, ui


@contextmanager
def _input_errors(node: str, input_name: str):
    """Decoder and file errors re-raised as ValueError naming the node and the input."""
    try:
        yield
    except model_management.InterruptProcessingException:
        raise
    except (ValueError, OSError, EOFError, av.error.FFmpegError, MemoryError) as exc:
        raise ValueError(f"{node}: input '{input_name}': {exc}") from exc


@contextmanager
def _save_errors(node: str, data_input: str):
    """A refused ``filename_prefix`` names that input; encoder failures name the data input."""
    try:
        yield
    except model_management.InterruptProcessingException:
        raise
    except MediaError as exc:
        raise ValueError(f"{node}: input 'filename_prefix': {exc}") from exc
    except (ValueError, OSError, av.error.FFmpegError) as exc:
        raise ValueError(f"{node}: input '{data_input}': {exc}") from exc


def input_path(name) -> str:
    """The file a loader's combo names: inside the input folder (or the folder its ``[output]``/``[temp]``
    suffix names) after resolving links, and a regular file (no devices, FIFOs or folders)."""
    if not isinstance(name, str):
        raise MediaError(f"expected a file name, got {type(name).__name__}")
    stripped, base = folder_paths.annotated_filepath(name)
    return resolve_inside(base or folder_paths.get_input_directory(), stripped)


def _check_input(name, kind: str):
    try:
        input_path(name)
    except MediaError as exc:
        return f"Invalid {kind} file: {name} ({exc})"  # ComfyUI's words first, then why
    return True


def _file_digest(name) -> str:
    try:
        path = input_path(name)
    except MediaError:
        return ""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _input_files(content_types: list[str]) -> list[str]:
    input_dir = folder_paths.get_input_directory()
    if not os.path.isdir(input_dir):
        return []
    files = [f for f in os.listdir(input_dir) if os.path.isfile(os.path.join(input_dir, f))]
    return sorted(folder_paths.filter_files_content_types(files, content_types))


def load_audio_file(path: str) -> tuple[torch.Tensor, int]:
    """``[C, S]`` float32 and the sample rate, decoded with PyAV as ComfyUI's LoadAudio does."""
    with av.open(path) as container:
        if not container.streams.audio:
            raise ValueError("No audio stream found in the file.")
        stream = container.streams.audio[0]
        sample_rate = decoder_of(stream, os.path.basename(path)).sample_rate
        channels = stream.channels
        frames = []
        for frame in container.decode(streams=stream.index):
            buf = torch.from_numpy(frame.to_ndarray())
            if buf.shape[0] != channels:  # packed formats come back as [1, S*C]
                buf = buf.view(-1, channels).t()
            frames.append(buf)
        if not frames:
            raise ValueError("No audio frames decoded.")
        wav = torch.cat(frames, dim=1)
    if wav.dtype.is_floating_point:
        return wav.float(), sample_rate
    if wav.dtype == torch.int16:
        return wav.float() / (2 ** 15), sample_rate
    if wav.dtype == torch.int32:
        return wav.float() / (2 ** 31), sample_rate
    raise ValueError(f"Unsupported wav dtype: {wav.dtype}")


class LoadVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LoadVideo",
            display_name="Load Video",
            category="image/video",
            inputs=[io.Combo.Input("file", options=_input_files(["video"]), upload=io.UploadType.video)],
            outputs=[io.Video.Output()],
        )

    @classmethod
    def execute(cls, file) -> io.NodeOutput:
        with _input_errors("Load Video", "file"):
            path = input_path(file)
            with av.open(path) as container:  # fail here, naming this input, rather than in a later node
                if not container.streams.video:
                    raise MediaError(f"{file!r} has no video stream")
        return io.NodeOutput(InputImpl.VideoFromFile(path))

    @classmethod
    def fingerprint_inputs(cls, file):
        try:
            return os.path.getmtime(input_path(file))
        except MediaError:
            return ""

    @classmethod
    def validate_inputs(cls, file):
        return _check_input(file, "video")


class SaveVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SaveVideo",
            display_name="Save Video",
            category="image/video",
            description="Saves the input images to your ComfyUI output directory.",
            inputs=[
                io.Video.Input("video", tooltip="The video to save."),
                io.String.Input("filename_prefix", default="video/ComfyUI",
                                tooltip="The prefix for the file to save."),
                io.Combo.Input("format", options=Types.VideoContainer.as_input(), default="auto",
                               tooltip="The format to save the video as."),
                io.Combo.Input("codec", options=Types.VideoCodec.as_input(), default="auto",
                               tooltip="The codec to use for the video."),
            ],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, video, filename_prefix, format, codec) -> io.NodeOutput:
        with _save_errors("Save Video", "video"):
            width, height = video.get_dimensions()
            folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(
                filename_prefix, folder_paths.get_output_directory(), width, height)
        metadata = {}
        if cls.hidden.extra_pnginfo is not None:
            metadata.update(cls.hidden.extra_pnginfo)
        if cls.hidden.prompt is not None:
            metadata["prompt"] = cls.hidden.prompt
        with _save_errors("Save Video", "video"):
            file, _ = ui.write_counted(folder, filename, counter, Types.VideoContainer.get_extension(format),
                                       lambda temp: video.save_to(temp, format=Types.VideoContainer(format),
                                                                  codec=codec, metadata=metadata or None))
        return io.NodeOutput(ui=ui.PreviewVideo([ui.SavedResult(file, subfolder, io.FolderType.output)]))


class CreateVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CreateVideo",
            display_name="Create Video",
            category="image/video",
            description="Create a video from images.",
            inputs=[
                io.Image.Input("images", tooltip="The images to create a video from."),
                io.Float.Input("fps", default=30.0, min=1.0, max=120.0, step=1.0),
                io.Audio.Input("audio", optional=True, tooltip="The audio to add to the video."),
            ],
            outputs=[io.Video.Output()],
        )

    @classmethod
    def execute(cls, images, fps, audio=None) -> io.NodeOutput:
        return io.NodeOutput(InputImpl.VideoFromComponents(
            Types.VideoComponents(images=images, audio=audio, frame_rate=Fraction(fps))))


class GetVideoComponents(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GetVideoComponents",
            display_name="Get Video Components",
            category="image/video",
            description="Extracts all components from a video: frames, audio, and framerate.",
            inputs=[io.Video.Input("video", tooltip="The video to extract components from.")],
            outputs=[io.Image.Output(display_name="images"), io.Audio.Output(display_name="audio"),
                     io.Float.Output(display_name="fps")],
        )

    @classmethod
    def execute(cls, video) -> io.NodeOutput:
        with _input_errors("Get Video Components", "video"):
            _check_decode_memory(video)
            components = video.get_components()
        return io.NodeOutput(components.images, components.audio, float(components.frame_rate))


def _check_decode_memory(video) -> None:
    """A file VIDEO decodes whole to float32: refuse before decoding when that cannot fit."""
    if not isinstance(video, InputImpl.VideoFromFile):
        return
    with av.open(video.get_stream_source()) as container:
        if not container.streams.video:
            raise MediaError("the VIDEO has no video stream")
        stream = container.streams.video[0]
        decoder_of(stream, "the VIDEO")
        frames = stream.frames or 0
        if not frames and stream.duration is not None and stream.average_rate:
            frames = int(float(stream.duration * stream.time_base) * float(stream.average_rate)) + 1
        elif not frames and container.duration is not None and stream.average_rate:
            frames = int(container.duration / av.time_base * float(stream.average_rate)) + 1
        width, height = stream.codec_context.width, stream.codec_context.height
    require(frames * width * height * 3 * 4 * 2, f"decoding {frames} frames of {width}x{height} as float32")


class LoadAudio(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LoadAudio",
            display_name="Load Audio",
            category="audio",
            inputs=[io.Combo.Input("audio", upload=io.UploadType.audio, options=_input_files(["audio", "video"]))],
            outputs=[io.Audio.Output()],
        )

    @classmethod
    def execute(cls, audio) -> io.NodeOutput:
        with _input_errors("Load Audio", "audio"):
            waveform, sample_rate = load_audio_file(input_path(audio))
        return io.NodeOutput({"waveform": waveform.unsqueeze(0), "sample_rate": sample_rate})

    @classmethod
    def fingerprint_inputs(cls, audio):
        return _file_digest(audio)

    @classmethod
    def validate_inputs(cls, audio):
        return _check_input(audio, "audio")


class LoadImage(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LoadImage",
            display_name="Load Image",
            category="image",
            inputs=[io.Combo.Input("image", options=_input_files(["image"]), upload=io.UploadType.image)],
            outputs=[io.Image.Output(), io.Mask.Output()],
        )

    @classmethod
    def execute(cls, image) -> io.NodeOutput:
        from PIL import Image, UnidentifiedImageError

        with _input_errors("Load Image", "image"):
            try:
                return io.NodeOutput(*load_image_file(input_path(image)))
            except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
                raise MediaError(str(exc)) from exc

    @classmethod
    def fingerprint_inputs(cls, image):
        return _file_digest(image)

    @classmethod
    def validate_inputs(cls, image):
        return _check_input(image, "image")


def load_image_file(path: str) -> tuple[torch.Tensor, torch.Tensor]:
    """IMAGE ``[N,H,W,3]`` and MASK ``[N,H,W]`` (1 = transparent) as ComfyUI's LoadImage reads them."""
    from PIL import Image, ImageOps, ImageSequence

    img = Image.open(path)
    images, masks = [], []
    size = None
    for frame in ImageSequence.Iterator(img):
        frame = ImageOps.exif_transpose(frame)
        if frame.mode == "I":
            frame = frame.point(lambda v: v * (1 / 255))
        rgb = frame.convert("RGB")
        if size is None:
            size = rgb.size
        if rgb.size != size:  # ComfyUI keeps only the frames matching the first one's size
            continue
        images.append(torch.from_numpy(np.array(rgb).astype(np.float32) / 255.0)[None])
        if "A" in frame.getbands():
            mask = 1.0 - torch.from_numpy(np.array(frame.getchannel("A")).astype(np.float32) / 255.0)
        elif frame.mode == "P" and "transparency" in frame.info:
            alpha = frame.convert("RGBA").getchannel("A")
            mask = 1.0 - torch.from_numpy(np.array(alpha).astype(np.float32) / 255.0)
        else:
            mask = torch.zeros((64, 64), dtype=torch.float32)  # ComfyUI's placeholder for "no alpha"
        masks.append(mask.unsqueeze(0))
    if len(images) > 1 and img.format != "MPO":
        return torch.cat(images, dim=0), torch.cat(masks, dim=0)
    return images[0], masks[0]


def _save_audio_schema(node_id: str, display_name: str, quality: list[str] | None = None,
                       default_quality: str | None = None) -> io.Schema:
    inputs = [io.Audio.Input("audio"), io.String.Input("filename_prefix", default="audio/ComfyUI")]
    if quality is not None:
        inputs.append(io.Combo.Input("quality", options=quality, default=default_quality))
    return io.Schema(node_id=node_id, display_name=display_name, category="audio", inputs=inputs,
                     outputs=[io.Audio.Output(display_name="audio")],
                     hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
                     is_output_node=True)


def _save_audio(cls, audio, filename_prefix, format, quality="128k") -> io.NodeOutput:
    if audio is None:
        raise ValueError(f"{cls.__name__}: input audio is None (source video may have no audio track).")
    with _save_errors(cls.GET_SCHEMA().display_name, "audio"):
        saved = ui.AudioSaveHelper.get_save_audio_ui(audio, filename_prefix=filename_prefix, cls=cls, format=format,
                                                     quality=quality)
    return io.NodeOutput(audio, ui=saved)


class SaveAudio(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return _save_audio_schema("SaveAudio", "Save Audio (FLAC)")

    @classmethod
    def execute(cls, audio, filename_prefix="ComfyUI", format="flac") -> io.NodeOutput:
        return _save_audio(cls, audio, filename_prefix, format)


class SaveAudioMP3(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return _save_audio_schema("SaveAudioMP3", "Save Audio (MP3)", ["V0", "128k", "320k"], "V0")

    @classmethod
    def execute(cls, audio, filename_prefix="ComfyUI", format="mp3", quality="128k") -> io.NodeOutput:
        return _save_audio(cls, audio, filename_prefix, format, quality)


class SaveAudioOpus(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return _save_audio_schema("SaveAudioOpus", "Save Audio (Opus)", ["64k", "96k", "128k", "192k", "320k"],
                                  "128k")

    @classmethod
    def execute(cls, audio, filename_prefix="ComfyUI", format="opus", quality="128k") -> io.NodeOutput:
        return _save_audio(cls, audio, filename_prefix, format, quality)


class SaveAudioAdvanced(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SaveAudioAdvanced",
            display_name="Save Audio",
            category="audio",
            inputs=[
                io.Audio.Input("audio", tooltip="The audio to save."),
                io.String.Input("filename_prefix", default="audio/ComfyUI",
                                tooltip="The prefix for the file to save."),
                io.DynamicCombo.Input("format", options=[
                    io.DynamicCombo.Option("flac", []),
                    io.DynamicCombo.Option("mp3", [io.Combo.Input("quality", options=["V0", "128k", "320k"],
                                                                  default="V0")]),
                    io.DynamicCombo.Option("opus", [io.Combo.Input(
                        "quality", options=["64k", "96k", "128k", "192k", "320k"], default="128k")]),
                ], tooltip="The file format in which to save the audio."),
            ],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
            is_output_node=True,
            outputs=[io.Audio.Output(display_name="audio", tooltip="The saved audio.")],
        )

    @classmethod
    def execute(cls, audio, filename_prefix: str, format: dict) -> io.NodeOutput:
        if audio is None:
            return io.NodeOutput(None)
        chosen = format.get("format", "flac") if isinstance(format, dict) else format
        quality = format.get("quality") if isinstance(format, dict) else None
        return _save_audio(cls, audio, filename_prefix, chosen, quality or "128k")


class PreviewAudio(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PreviewAudio",
            display_name="Preview Audio",
            category="audio",
            inputs=[io.Audio.Input("audio")],
            # Recent ComfyUI passes the audio through (its saved workflows show this output).
            outputs=[io.Audio.Output(display_name="audio")],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, audio) -> io.NodeOutput:
        return io.NodeOutput(audio, ui=ui.PreviewAudio(audio, cls=cls))


class SaveImage(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SaveImage",
            display_name="Save Image",
            category="image",
            description="Saves the input images to your ComfyUI output directory.",
            inputs=[
                io.Image.Input("images", tooltip="The images to save."),
                io.String.Input("filename_prefix", default="ComfyUI", tooltip="The prefix for the file to save."),
            ],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, images, filename_prefix="ComfyUI") -> io.NodeOutput:
        with _save_errors("Save Image", "images"):
            return io.NodeOutput(ui=ui.ImageSaveHelper.get_save_images_ui(images, filename_prefix, cls=cls))


class PreviewImage(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PreviewImage",
            display_name="Preview Image",
            category="image",
            description="Saves the input images to your ComfyUI output directory.",
            inputs=[io.Image.Input("images")],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, images) -> io.NodeOutput:
        return io.NodeOutput(ui=ui.PreviewImage(images, cls=cls))


def _primitive(node_id: str, display_name: str, kind, **input_options):
    class Primitive(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id=node_id, display_name=display_name, category="utils/primitive",
                             inputs=[kind.Input("value", **input_options)], outputs=[kind.Output()])

        @classmethod
        def execute(cls, value) -> io.NodeOutput:
            return io.NodeOutput(value)

    Primitive.__name__ = Primitive.__qualname__ = node_id
    return Primitive


PrimitiveString = _primitive("PrimitiveString", "String", io.String)
PrimitiveStringMultiline = _primitive("PrimitiveStringMultiline", "String (Multiline)", io.String, multiline=True)
PrimitiveInt = _primitive("PrimitiveInt", "Int", io.Int, min=-sys.maxsize, max=sys.maxsize,
                          control_after_generate=True)
PrimitiveFloat = _primitive("PrimitiveFloat", "Float", io.Float, min=-sys.maxsize, max=sys.maxsize)
PrimitiveBoolean = _primitive("PrimitiveBoolean", "Boolean", io.Boolean)

CORE_NODES = [
    LoadVideo, SaveVideo, CreateVideo, GetVideoComponents, LoadAudio, LoadImage, SaveAudio, SaveAudioMP3, SaveAudioOpus,
    SaveAudioAdvanced, PreviewAudio, SaveImage, PreviewImage, PrimitiveString, PrimitiveStringMultiline,
    PrimitiveInt, PrimitiveFloat, PrimitiveBoolean,
]
