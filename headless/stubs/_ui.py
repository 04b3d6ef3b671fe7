"""Headless stand-in for ``comfy_api.latest.ui``: saved-file results and the UI payloads nodes return.

Payload shapes and file naming follow ComfyUI's ``comfy_api/latest/_ui.py`` so a workflow's
outputs look the same whether it ran in ComfyUI or headless.
"""
from __future__ import annotations

import json
import random
from io import BytesIO

import numpy as np
import torch

from ...media.output_files import counted_name, publish, staged
from . import folder_paths, model_management
from ._io import FolderType, _UIOutput

_OPUS_RATES = [8000, 12000, 16000, 24000, 48000]


class SavedResult(dict):
    def __init__(self, filename: str, subfolder: str, type: FolderType):
        super().__init__(filename=filename, subfolder=subfolder, type=FolderType(type).value)

    @property
    def filename(self) -> str:
        return self["filename"]

    @property
    def subfolder(self) -> str:
        return self["subfolder"]

    @property
    def type(self) -> FolderType:
        return FolderType(self["type"])


class SavedImages(_UIOutput):
    def __init__(self, results: list[SavedResult], is_animated: bool = False):
        self.results = results
        self.is_animated = is_animated

    def as_dict(self) -> dict:
        data = {"images": self.results}
        if self.is_animated:
            data["animated"] = (True,)
        return data


class SavedAudios(_UIOutput):
    def __init__(self, results: list[SavedResult]):
        self.results = results

    def as_dict(self) -> dict:
        return {"audio": self.results}


def _directory_of(folder_type: FolderType) -> str:
    if folder_type == FolderType.input:
        return folder_paths.get_input_directory()
    if folder_type == FolderType.output:
        return folder_paths.get_output_directory()
    return folder_paths.get_temp_directory()


def _metadata(cls) -> dict[str, str]:
    hidden = getattr(cls, "hidden", None) if cls is not None else None
    if hidden is None:
        return {}
    metadata = {}
    if hidden.prompt is not None:
        metadata["prompt"] = json.dumps(hidden.prompt)
    if hidden.extra_pnginfo is not None:
        for key in hidden.extra_pnginfo:
            metadata[key] = json.dumps(hidden.extra_pnginfo[key])
    return metadata


class ImageSaveHelper:
    @staticmethod
    def save_images(images, filename_prefix: str, folder_type: FolderType, cls=None,
                    compress_level=4) -> list[SavedResult]:
        from PIL import Image as PILImage
        from PIL.PngImagePlugin import PngInfo

        full_output_folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, _directory_of(folder_type), images[0].shape[1], images[0].shape[0])
        info = None
        metadata = _metadata(cls)
        if metadata:
            info = PngInfo()
            for key, value in metadata.items():
                info.add_text(key, value)
        results = []
        for batch_number, image in enumerate(images):
            img = PILImage.fromarray(np.clip(255.0 * image.cpu().numpy(), 0, 255).astype(np.uint8))
            name = filename.replace('%batch_num%', str(batch_number))
            file, counter = write_counted(full_output_folder, name, counter, "png",
                                          lambda temp: img.save(temp, format="PNG", pnginfo=info,
                                                                compress_level=compress_level))
            results.append(SavedResult(file, subfolder, folder_type))
            counter += 1
        return results

    @staticmethod
    def get_save_images_ui(images, filename_prefix: str, cls=None, compress_level=4) -> SavedImages:
        return SavedImages(ImageSaveHelper.save_images(images, filename_prefix, FolderType.output, cls, compress_level))


class AudioSaveHelper:
    """Writes each batch item of an AUDIO dict as one file, as ComfyUI's AudioSaveHelper does."""

    @staticmethod
    def save_audio(audio: dict, filename_prefix: str, folder_type: FolderType, cls=None, format: str = "flac",
                   quality: str = "128k") -> list[SavedResult]:
        full_output_folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, _directory_of(folder_type))
        metadata = _metadata(cls)
        results = []
        for batch_number, waveform in enumerate(audio["waveform"].cpu()):
            sample_rate = audio["sample_rate"]
            if format == "opus":
                if sample_rate > 48000:
                    sample_rate = 48000
                elif sample_rate not in _OPUS_RATES:
                    sample_rate = next((r for r in _OPUS_RATES if r > sample_rate), 48000)
                if sample_rate != audio["sample_rate"]:
                    import torchaudio

                    waveform = torchaudio.functional.resample(waveform, audio["sample_rate"], sample_rate)
            import av  # only for writing audio: the stubs import without PyAV

            buffer = BytesIO()
            container = av.open(buffer, mode="w", format=format)
            for key, value in metadata.items():
                container.metadata[key] = value
            layout = {1: "mono", 2: "stereo"}.get(waveform.shape[0])
            if layout is None and format == "flac" and waveform.shape[0] <= 8:
                layout = f"{waveform.shape[0]}c"
            if layout is None:
                raise ValueError(f"{waveform.shape[0]} channels; {format} here is saved as mono or "
                                 "stereo (flac: up to 8 channels)")
            if format == "opus":
                stream = container.add_stream("libopus", rate=sample_rate, layout=layout)
                stream.bit_rate = {"64k": 64000, "96k": 96000, "128k": 128000, "192k": 192000,
                                   "320k": 320000}.get(quality, stream.bit_rate)
            elif format == "mp3":
                stream = container.add_stream("libmp3lame", rate=sample_rate, layout=layout)
                if quality == "V0":
                    stream.codec_context.qscale = 1
                elif quality in ("128k", "320k"):
                    stream.bit_rate = int(quality[:-1]) * 1000
            else:
                stream = container.add_stream("flac", rate=sample_rate, layout=layout)
            frame = av.AudioFrame.from_ndarray(
                waveform.movedim(0, 1).reshape(1, -1).float().numpy(), format="flt", layout=layout)
            frame.sample_rate = sample_rate
            frame.pts = 0
            container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
            container.close()
            model_management.throw_exception_if_processing_interrupted()

            def write(temp: str) -> None:
                with open(temp, "wb") as f:
                    f.write(buffer.getbuffer())

            file, counter = write_counted(full_output_folder, filename.replace('%batch_num%', str(batch_number)),
                                          counter, format, write)
            results.append(SavedResult(file, subfolder, folder_type))
            counter += 1
        return results

    @staticmethod
    def get_save_audio_ui(audio, filename_prefix: str, cls=None, format: str = "flac",
                          quality: str = "128k") -> SavedAudios:
        return SavedAudios(AudioSaveHelper.save_audio(audio, filename_prefix, FolderType.output, cls, format, quality))


def write_counted(folder: str, filename: str, counter: int, ext: str, writer) -> tuple[str, int]:
    """``writer(temp)`` writes the file, which then takes the first free ``<filename>_<counter>_.<ext>``
    (never replacing a file, never leaving a partial one); returns (file name, counter used)."""
    with staged(folder, ext) as temp:
        writer(temp)
        model_management.throw_exception_if_processing_interrupted()
        file = publish(temp, folder, counted_name(filename, ext), counter)
    return file, int(file[len(filename) + 1:].split("_")[0])


def _temp_prefix() -> str:
    return "ComfyUI_temp_" + "".join(random.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(5))


class PreviewImage(_UIOutput):
    def __init__(self, image: torch.Tensor, animated: bool = False, cls=None, **kwargs):
        self.values = ImageSaveHelper.save_images(image, _temp_prefix(), FolderType.temp, cls, compress_level=1)
        self.animated = animated

    def as_dict(self):
        return {"images": self.values, "animated": (self.animated,)}


class PreviewMask(PreviewImage):
    def __init__(self, mask: torch.Tensor, animated: bool = False, cls=None, **kwargs):
        preview = mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1])).movedim(1, -1).expand(-1, -1, -1, 3)
        super().__init__(preview, animated, cls, **kwargs)


class PreviewAudio(_UIOutput):
    def __init__(self, audio: dict, cls=None, **kwargs):
        self.values = AudioSaveHelper.save_audio(audio, _temp_prefix(), FolderType.temp, cls, format="flac")

    def as_dict(self) -> dict:
        return {"audio": self.values}


class PreviewVideo(_UIOutput):
    def __init__(self, values: list[SavedResult | dict], **kwargs):
        self.values = values

    def as_dict(self):
        return {"images": self.values, "animated": (True,)}


class PreviewText(_UIOutput):
    def __init__(self, value: str, **kwargs):
        self.value = value

    def as_dict(self):
        return {"text": (self.value,)}


__all__ = [
    "SavedResult", "SavedImages", "SavedAudios", "ImageSaveHelper", "AudioSaveHelper", "PreviewImage",
    "PreviewMask", "PreviewAudio", "PreviewVideo", "PreviewText",
]
