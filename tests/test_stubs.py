"""The headless comfy-api stubs: the surface the pack uses exists, and behaves as ComfyUI's does."""
from __future__ import annotations

import io as io_module
import re
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from soundstage.headless import stubs
from soundstage.headless.stubs import (
    ComfyExtension, Input, InputImpl, Types, comfy_utils, folder_paths, io, model_management, ui,
)

REPO = Path(__file__).resolve().parents[1]
NAMESPACES = {
    "io": stubs.io, "ui": stubs.ui, "Types": Types, "InputImpl": InputImpl, "Input": Input,
    "folder_paths": folder_paths, "comfy_utils": comfy_utils, "model_management": model_management,
}
USE = re.compile(r"(?<![\w.])(io|ui|Types|InputImpl|Input|folder_paths|comfy_utils|model_management)"
                 r"\.([A-Za-z_]\w*)(?:\.([A-Za-z_]\w*))?")


def _uses() -> set[tuple[str, str, str | None]]:
    found = set()
    for path in [REPO / "compat.py", *sorted((REPO / "nodes").glob("*.py"))]:
        for match in USE.finditer(path.read_text(encoding="utf-8")):
            found.add(match.groups())
    return found


def test_scanner_sees_the_pack_surface():
    uses = _uses()
    # compat.py alone guarantees these; the scan must find real attribute uses, not nothing.
    assert uses, "no uses of the ComfyUI API found in nodes/ or compat.py"


@pytest.mark.parametrize("namespace,name,attr", sorted(_uses(), key=str))
def test_stub_covers_every_use(namespace, name, attr):
    owner = NAMESPACES[namespace]
    assert hasattr(owner, name), f"stub {namespace} lacks {name}"
    value = getattr(owner, name)
    if attr is not None and isinstance(value, type):
        assert hasattr(value, attr), f"stub {namespace}.{name} lacks {attr}"


def test_compat_exports_the_stubs():
    from soundstage import compat

    assert compat.IN_COMFYUI is False
    for name in ("io", "ui", "ComfyExtension", "Input", "InputImpl", "Types", "folder_paths", "comfy_utils",
                 "model_management"):
        assert getattr(compat, name) is getattr(stubs, name)


class _Example(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExampleNode", display_name="Example", category="Tests", description="d",
            inputs=[
                io.Int.Input("seed", default=3, min=0, max=9, step=1, control_after_generate=True, tooltip="s"),
                io.Float.Input("scale", default=0.5, min=0.0, max=1.0, step=0.1, tooltip="f"),
                io.String.Input("text", multiline=True, default="hi"),
                io.Combo.Input("mode", options=["a", "b"], default="b"),
                io.Custom("SOUNDSTAGE_THING").Input("thing", optional=True, lazy=True),
                io.MultiType.Input("media", types=[io.Image, io.Mask]),
            ],
            outputs=[io.Image.Output(), io.Custom("SOUNDSTAGE_THING").Output("out", display_name="thing",
                                                                               is_output_list=True)],
            hidden=[io.Hidden.unique_id],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, seed, scale, text, mode, media, thing=None):
        return io.NodeOutput(seed, [scale], ui=ui.PreviewText(f"{cls.hidden.unique_id}"))


def test_v1_view_matches_comfyui_derivation():
    types = _Example.INPUT_TYPES()
    assert list(types["required"]) == ["seed", "scale", "text", "mode", "media"]
    assert types["required"]["seed"] == ("INT", {"tooltip": "s", "default": 3, "min": 0, "max": 9, "step": 1,
                                                  "control_after_generate": True})
    assert types["required"]["mode"] == ("COMBO", {"default": "b", "multiselect": False, "options": ["a", "b"]})
    assert types["required"]["text"][1]["multiline"] is True
    assert types["required"]["media"][0] == "IMAGE,MASK"
    assert types["optional"]["thing"] == ("SOUNDSTAGE_THING", {"lazy": True})
    # Output nodes get prompt/extra_pnginfo hidden inputs added on finalize, as in ComfyUI.
    assert set(types["hidden"]) == {"unique_id", "prompt", "extra_pnginfo"}
    assert _Example.RETURN_TYPES == ["IMAGE", "SOUNDSTAGE_THING"]
    assert _Example.RETURN_NAMES == ["IMAGE", "thing"]
    assert _Example.OUTPUT_IS_LIST == [False, True]
    assert _Example.OUTPUT_NODE is True and _Example.CATEGORY == "Tests" and _Example.DESCRIPTION == "d"
    assert _Example.FUNCTION == "EXECUTE_NORMALIZED"


def test_execute_normalized_and_hidden_clone():
    clone = _Example.PREPARE_CLASS_CLONE({io.Hidden.unique_id: "17"})
    out = clone.EXECUTE_NORMALIZED(seed=1, scale=0.2, text="", mode="a", media=None)
    assert out.args == (1, [0.2]) and out.ui.as_dict() == {"text": ("17",)}
    assert _Example.hidden is None  # the clone carries hidden values, the class stays clean


def test_schema_rejects_duplicate_ids():
    class Dup(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="Dup", inputs=[io.Int.Input("x"), io.Float.Input("x")])

        @classmethod
        def execute(cls, x):
            return io.NodeOutput()

    with pytest.raises(ValueError, match="unique"):
        Dup.GET_SCHEMA()


def test_node_output_from_tuple_and_dict():
    class T(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="T", outputs=[io.Int.Output()])

        @classmethod
        def execute(cls):
            return (5,)

    assert T.EXECUTE_NORMALIZED().args == (5,)
    assert io.NodeOutput.from_dict({"result": (1, 2), "ui": {"text": ["x"]}}).ui == {"text": ["x"]}


def test_interrupt_exception_is_an_exception_as_in_comfyui():
    # comfy/model_management.py: `class InterruptProcessingException(Exception)`; a stub that made it a
    # BaseException would hide a node's `except Exception` that swallows cancellation in real ComfyUI.
    assert issubclass(model_management.InterruptProcessingException, Exception)
    model_management.interrupt_current_processing(True)
    assert model_management.processing_interrupted()
    with pytest.raises(model_management.InterruptProcessingException):
        model_management.throw_exception_if_processing_interrupted()
    assert not model_management.processing_interrupted()  # raising clears the flag, as in ComfyUI
    model_management.throw_exception_if_processing_interrupted()


def test_progress_bar_forwards_to_hook_and_clamps():
    seen = []
    previous = comfy_utils.PROGRESS_BAR_HOOK
    comfy_utils.set_progress_bar_global_hook(lambda v, t, p, node_id=None: seen.append((v, t)))
    try:
        bar = comfy_utils.ProgressBar(3)
        bar.update(1)
        bar.update(5)
        bar.update_absolute(2, total=4)
    finally:
        comfy_utils.set_progress_bar_global_hook(previous)
    assert seen == [(1, 3), (3, 3), (2, 4)]


def test_common_upscale_center_crop():
    x = torch.arange(2 * 3 * 4 * 8, dtype=torch.float32).reshape(2, 3, 4, 8)
    y = comfy_utils.common_upscale(x, 4, 4, "nearest-exact", "center")
    assert y.shape == (2, 3, 4, 4)
    assert torch.equal(y, x[..., 2:6])


def test_save_image_path_counts_like_comfyui(tmp_path):
    folder, name, counter, sub, _ = folder_paths.get_save_image_path("clips/run", str(tmp_path))
    assert (name, counter, sub) == ("run", 1, "clips") and Path(folder).is_dir()
    (Path(folder) / "run_00001_.mp4").write_bytes(b"")
    (Path(folder) / "run_00007_.flac").write_bytes(b"")
    (Path(folder) / "runner_00009_.flac").write_bytes(b"")
    assert folder_paths.get_save_image_path("clips/run", str(tmp_path))[2] == 8
    with pytest.raises(Exception, match="outside the output folder"):
        folder_paths.get_save_image_path("../escape", str(tmp_path))


def test_model_folders_and_annotated_paths(tmp_path, monkeypatch):
    monkeypatch.setattr(folder_paths, "folder_names_and_paths", {})
    models = tmp_path / "models"
    (models / "vae" / "sub").mkdir(parents=True)
    (models / "vae" / "sub" / "a.safetensors").write_bytes(b"")
    (models / "vae" / "notes.txt").write_bytes(b"")
    folder_paths.add_model_folder_path("vae", str(models / "vae"))
    folder_paths.folder_names_and_paths["vae"] = (folder_paths.get_folder_paths("vae"),
                                                  folder_paths.supported_pt_extensions)
    assert folder_paths.get_filename_list("vae") == ["sub/a.safetensors"]
    assert folder_paths.get_full_path("vae", "sub/a.safetensors") == str(models / "vae" / "sub" / "a.safetensors")
    with pytest.raises(FileNotFoundError, match="vae"):
        folder_paths.get_full_path_or_raise("vae", "missing.pt")
    old_input = folder_paths.get_input_directory()
    folder_paths.set_input_directory(str(tmp_path))
    try:
        (tmp_path / "x.wav").write_bytes(b"")
        assert folder_paths.exists_annotated_filepath("x.wav")
        assert folder_paths.get_annotated_filepath("y.wav [output]").startswith(folder_paths.get_output_directory())
    finally:
        folder_paths.set_input_directory(old_input)


def test_video_round_trip_with_audio(tmp_path):
    frames = torch.zeros(6, 32, 48, 3)
    for i in range(6):
        frames[i, ..., 0] = i / 8
    t = torch.arange(16000) / 16000
    audio = {"waveform": (0.3 * torch.sin(2 * torch.pi * 440 * t)).repeat(1, 2, 1), "sample_rate": 16000}
    video = InputImpl.VideoFromComponents(Types.VideoComponents(images=frames, audio=audio, frame_rate=Fraction(12)))
    path = tmp_path / "v.mp4"
    video.save_to(str(path), metadata={"prompt": {"1": 2}})
    loaded = InputImpl.VideoFromFile(str(path))
    assert isinstance(loaded, Input.Video)
    assert loaded.get_dimensions() == (48, 32)
    assert loaded.get_frame_count() == 6 and loaded.get_frame_rate() == 12
    parts = loaded.get_components()
    assert parts.images.shape == (6, 32, 48, 3) and parts.images.dtype == torch.float32
    assert torch.allclose(parts.images[:, 8:24, 8:40, 0].mean(dim=(1, 2)), frames[:, 0, 0, 0], atol=0.02)
    assert parts.audio["sample_rate"] == 16000 and parts.audio["waveform"].shape[:2] == (1, 2)
    # Audio is cut to the video's 0.5 s; AAC pads a little.
    assert 8000 <= parts.audio["waveform"].shape[-1] <= 8000 + 2048
    assert parts.metadata["prompt"] == '{"1": 2}'
    copy_path = tmp_path / "copy.mp4"
    loaded.save_to(str(copy_path))
    assert InputImpl.VideoFromFile(str(copy_path)).get_frame_count() == 6
    buffer = io_module.BytesIO()
    video.save_to(buffer)
    in_memory = InputImpl.VideoFromFile(io_module.BytesIO(buffer.getvalue()))
    assert in_memory.get_frame_count() == 6 and in_memory.get_components().images.shape == (6, 32, 48, 3)


def test_preview_audio_writes_flac_to_temp(tmp_path):
    old = folder_paths.get_temp_directory()
    folder_paths.set_temp_directory(str(tmp_path))
    try:
        audio = {"waveform": torch.zeros(2, 1, 800), "sample_rate": 8000}
        payload = ui.PreviewAudio(audio).as_dict()
    finally:
        folder_paths.set_temp_directory(old)
    files = payload["audio"]
    assert len(files) == 2 and all(f["type"] == "temp" and f["filename"].endswith(".flac") for f in files)
    assert all((tmp_path / f["filename"]).stat().st_size > 0 for f in files)
    assert ui.PreviewVideo([ui.SavedResult("a.mp4", "", io.FolderType.output)]).as_dict() == {
        "images": [{"filename": "a.mp4", "subfolder": "", "type": "output"}], "animated": (True,)}


def test_extension_is_abstract():
    with pytest.raises(TypeError):
        ComfyExtension()
