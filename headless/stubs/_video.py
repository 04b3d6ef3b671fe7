"""Headless stand-in for ComfyUI's video API (``Input.Video``, ``InputImpl.VideoFrom*``, ``Types.Video*``).

Decoding and encoding follow ComfyUI core (comfy_api/latest/_input_impl/video_types.py): frames
become float32 ``[T,H,W,3]`` in 0..1 (planar float for YUV sources, rgb24/255 for full-range or RGB
ones), audio is resampled to planar float and returned as an AUDIO dict ``[1,C,S]``; writing uses
H.264/yuv420p video and AAC audio cut to the video's length in an MP4 with metadata tags.
"""
from __future__ import annotations

import io
import json
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from typing import IO, Optional, Union

import numpy as np
import torch


def _av():
    """PyAV, imported on first use: the stubs (and the nodes importing them) load without it."""
    import av

    return av


class VideoCodec(str, Enum):
    AUTO = "auto"
    H264 = "h264"

    @classmethod
    def as_input(cls) -> list[str]:
        return [member.value for member in cls]


class VideoContainer(str, Enum):
    AUTO = "auto"
    MP4 = "mp4"

    @classmethod
    def as_input(cls) -> list[str]:
        return [member.value for member in cls]

    @classmethod
    def get_extension(cls, value) -> str:
        if isinstance(value, str):
            value = cls(value)
        if value in (VideoContainer.MP4, VideoContainer.AUTO):
            return "mp4"
        return ""


@dataclass
class VideoComponents:
    images: torch.Tensor
    frame_rate: Fraction
    audio: Optional[dict] = None
    metadata: Optional[dict] = None


class VideoInput(ABC):
    @abstractmethod
    def get_components(self) -> VideoComponents:
        ...

    @abstractmethod
    def save_to(self, path: Union[str, IO[bytes]], format: VideoContainer = VideoContainer.AUTO,
                codec: VideoCodec = VideoCodec.AUTO, metadata: Optional[dict] = None):
        ...

    def get_stream_source(self) -> Union[str, io.BytesIO]:
        buffer = io.BytesIO()
        self.save_to(buffer)
        buffer.seek(0)
        return buffer

    def get_dimensions(self) -> tuple[int, int]:
        """(width, height)."""
        images = self.get_components().images
        return images.shape[2], images.shape[1]

    def get_duration(self) -> float:
        components = self.get_components()
        return float(components.images.shape[0] / components.frame_rate)

    def get_frame_count(self) -> int:
        return int(self.get_components().images.shape[0])

    def get_frame_rate(self) -> Fraction:
        return self.get_components().frame_rate

    def get_container_format(self) -> str:
        with _av().open(self.get_stream_source(), mode="r") as container:
            return container.format.name


def _check_interrupted() -> None:
    """Writers stop at ComfyUI's interruption flag between frames (the caller drops the partial file)."""
    from . import model_management

    model_management.throw_exception_if_processing_interrupted()


def _rewind(source):
    if isinstance(source, io.BytesIO):
        source.seek(0)
    return source


def _decode(container) -> VideoComponents:
    video_stream = next(s for s in container.streams if s.type == "video")
    audio_stream = next((s for s in reversed(container.streams.audio) if s.codec_context is not None), None)
    streams = [video_stream] + ([audio_stream] if audio_stream is not None else [])
    resampler = _av().audio.resampler.AudioResampler(format="fltp") if audio_stream is not None else None
    frames, audio_frames = [], []
    image_format, scale = None, False
    for packet in container.demux(*streams):
        if packet.stream.type == "video":
            try:
                decoded = packet.decode()
            except _av().error.InvalidDataError:
                continue
            for frame in decoded:
                if image_format is None:
                    # ComfyUI keeps full precision for YUV sources and reads full-range/RGB ones as bytes.
                    scale = frame.format.name in ("yuvj420p", "yuvj422p", "yuvj444p", "rgb24", "rgba", "pal8")
                    image_format = "rgb24" if scale else "gbrpf32le"
                img = frame.to_ndarray(format=image_format)
                frames.append(torch.from_numpy(np.ascontiguousarray(img)))
        elif packet.stream.type == "audio":
            for frame in packet.decode():
                for out in resampler.resample(frame):
                    audio_frames.append(out.to_ndarray())
    if frames:
        images = torch.stack(frames)
        images = images.float() / 255.0 if scale else images
    else:
        images = torch.zeros(0, 0, 0, 3)
    audio = None
    if audio_frames:
        data = np.concatenate(audio_frames, axis=1)
        audio = {"waveform": torch.from_numpy(data).unsqueeze(0),
                 "sample_rate": int(audio_stream.sample_rate) if audio_stream.sample_rate else 1}
    frame_rate = Fraction(video_stream.average_rate) if video_stream.average_rate else Fraction(1)
    return VideoComponents(images=images, audio=audio, frame_rate=frame_rate, metadata=dict(container.metadata))


class VideoFromFile(VideoInput):
    """A video backed by a file path or an in-memory ``BytesIO``, decoded with PyAV on demand."""

    def __init__(self, file: str | io.BytesIO):
        self.__file = file

    def get_stream_source(self) -> str | io.BytesIO:
        return _rewind(self.__file)

    def get_dimensions(self) -> tuple[int, int]:
        with _av().open(_rewind(self.__file), mode="r") as container:
            for stream in container.streams:
                if stream.type == "video":
                    return stream.width, stream.height
        raise ValueError(f"No video stream found in file '{self.__file}'")

    def get_duration(self) -> float:
        with _av().open(_rewind(self.__file), mode="r") as container:
            if container.duration is not None:
                return float(container.duration / _av().time_base)
            stream = next((s for s in container.streams if s.type == "video"), None)
            if stream is not None and stream.frames and stream.average_rate:
                return float(stream.frames / stream.average_rate)
        return super().get_duration()

    def get_frame_count(self) -> int:
        with _av().open(_rewind(self.__file), mode="r") as container:
            stream = next((s for s in container.streams if s.type == "video"), None)
            if stream is None:
                raise ValueError(f"No video stream found in file '{self.__file}'")
            if stream.frames and stream.frames > 0:
                return int(stream.frames)
            return sum(1 for _ in container.decode(stream))

    def get_frame_rate(self) -> Fraction:
        with _av().open(_rewind(self.__file), mode="r") as container:
            stream = next((s for s in container.streams if s.type == "video"), None)
            if stream is None:
                raise ValueError(f"No video stream found in file '{self.__file}'")
            if stream.average_rate:
                return Fraction(stream.average_rate)
            return Fraction(1)

    def get_container_format(self) -> str:
        with _av().open(_rewind(self.__file), mode="r") as container:
            return container.format.name

    def get_components(self) -> VideoComponents:
        with _av().open(_rewind(self.__file), mode="r") as container:
            if not any(s.type == "video" for s in container.streams):
                raise ValueError(f"No video stream found in file '{self.__file}'")
            return _decode(container)

    def save_to(self, path: str | io.BytesIO, format: VideoContainer = VideoContainer.AUTO,
                codec: VideoCodec = VideoCodec.AUTO, metadata: Optional[dict] = None):
        with _av().open(_rewind(self.__file), mode="r") as container:
            container_format = container.format.name
            video_encoding = container.streams.video[0].codec.name if len(container.streams.video) else None
            reuse_streams = True
            if format != VideoContainer.AUTO and format not in container_format.split(","):
                reuse_streams = False
            if codec != VideoCodec.AUTO and codec != video_encoding and video_encoding is not None:
                reuse_streams = False
            if not reuse_streams:
                components = _decode(container)
                return VideoFromComponents(components).save_to(path, format=format, codec=codec, metadata=metadata)
            # ComfyUI remuxes packets untouched when container and codec already match.
            open_kwargs = {"mode": "w", "options": {"movflags": "use_metadata_tags"}}
            if isinstance(path, io.BytesIO):
                open_kwargs["format"] = container_format.split(",")[0] if format == VideoContainer.AUTO else str(
                    VideoContainer(format).value)
            with _av().open(path, **open_kwargs) as output:
                for key, value in container.metadata.items():
                    if metadata is None or key not in metadata:
                        output.metadata[key] = value
                for key, value in (metadata or {}).items():
                    output.metadata[key] = value if isinstance(value, str) else json.dumps(value)
                stream_map = {}
                for stream in container.streams:
                    if stream.type in ("video", "audio") and stream.codec_context is not None:
                        stream_map[stream] = output.add_stream_from_template(template=stream, opaque=True)
                for packet in container.demux():
                    _check_interrupted()
                    if packet.stream in stream_map and packet.dts is not None:
                        packet.stream = stream_map[packet.stream]
                        output.mux(packet)


class VideoFromComponents(VideoInput):
    """A video held as tensors (images ``[T,H,W,3]`` 0..1, optional AUDIO dict, frame rate)."""

    def __init__(self, components: VideoComponents):
        self.__components = components

    def get_components(self) -> VideoComponents:
        return VideoComponents(images=self.__components.images, audio=self.__components.audio,
                               frame_rate=self.__components.frame_rate, metadata=self.__components.metadata)

    def save_to(self, path: str | io.BytesIO, format: VideoContainer = VideoContainer.AUTO,
                codec: VideoCodec = VideoCodec.AUTO, metadata: Optional[dict] = None):
        if format != VideoContainer.AUTO and format != VideoContainer.MP4:
            raise ValueError("Only MP4 format is supported for now")
        if codec != VideoCodec.AUTO and codec != VideoCodec.H264:
            raise ValueError("Only H264 codec is supported for now")
        extra_kwargs = {}
        if isinstance(path, io.BytesIO) or (isinstance(format, VideoContainer) and format != VideoContainer.AUTO):
            extra_kwargs["format"] = "mp4"
        images = self.__components.images
        with _av().open(path, mode="w", options={"movflags": "use_metadata_tags"}, **extra_kwargs) as output:
            for key, value in (metadata or {}).items():
                output.metadata[key] = json.dumps(value)
            # ComfyUI rounds the rate to 1/1000 so float-derived fractions stay encodable.
            frame_rate = Fraction(round(self.__components.frame_rate * 1000), 1000)
            video_stream = output.add_stream("h264", rate=frame_rate)
            video_stream.width = images.shape[2]
            video_stream.height = images.shape[1]
            video_stream.pix_fmt = "yuv420p"
            audio = self.__components.audio
            audio_stream = None
            audio_sample_rate = 1
            if audio:
                audio_sample_rate = int(audio["sample_rate"])
                audio_stream = output.add_stream("aac", rate=audio_sample_rate)
            for frame in images:
                _check_interrupted()
                img = (frame * 255).clamp(0, 255).byte().cpu().numpy()
                vframe = _av().VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
                output.mux(video_stream.encode(vframe))
            output.mux(video_stream.encode(None))
            if audio_stream is not None:
                waveform = audio["waveform"]
                waveform = waveform[:, :, :math.ceil((audio_sample_rate / frame_rate) * images.shape[0])]
                layout = "mono" if waveform.shape[1] == 1 else "stereo"
                aframe = _av().AudioFrame.from_ndarray(
                    waveform.movedim(2, 1).reshape(1, -1).float().cpu().numpy(), format="flt", layout=layout)
                aframe.sample_rate = audio_sample_rate
                aframe.pts = 0
                output.mux(audio_stream.encode(aframe))
                output.mux(audio_stream.encode(None))


ImageInput = torch.Tensor
AudioInput = dict
MaskInput = torch.Tensor
LatentInput = dict
