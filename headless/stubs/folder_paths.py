"""Headless stand-in for ComfyUI's ``folder_paths`` module.

Directories come from the setters (the runner and CLI call them) or from the environment
variables SOUNDSTAGE_INPUT_DIR / SOUNDSTAGE_OUTPUT_DIR / SOUNDSTAGE_TEMP_DIR / SOUNDSTAGE_MODELS_DIR,
defaulting to ``input/``, ``output/``, ``temp/`` and ``models/`` under the working directory as a
ComfyUI install would have them under its base path.
"""
from __future__ import annotations

import logging
import mimetypes
import os
import time

from . import _run
from ...media.errors import MediaError as OutputPathError
from ...media.output_files import check_prefix

supported_pt_extensions: set[str] = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}

base_path = os.getcwd()
models_dir = os.path.abspath(os.environ.get("SOUNDSTAGE_MODELS_DIR") or os.path.join(base_path, "models"))

# Same standard folder names as ComfyUI, so nodes asking for e.g. "text_encoders" resolve identically.
_STANDARD_FOLDERS = {
    "checkpoints": ["checkpoints"], "configs": ["configs"], "loras": ["loras"], "vae": ["vae"],
    "text_encoders": ["text_encoders", "clip"], "diffusion_models": ["unet", "diffusion_models"],
    "clip_vision": ["clip_vision"], "style_models": ["style_models"], "embeddings": ["embeddings"],
    "diffusers": ["diffusers"], "vae_approx": ["vae_approx"], "controlnet": ["controlnet", "t2i_adapter"],
    "gligen": ["gligen"], "upscale_models": ["upscale_models"], "latent_upscale_models": ["latent_upscale_models"],
    "hypernetworks": ["hypernetworks"], "photomaker": ["photomaker"], "classifiers": ["classifiers"],
    "model_patches": ["model_patches"], "audio_encoders": ["audio_encoders"],
}
_LEGACY_NAMES = {"unet": "diffusion_models", "clip": "text_encoders"}

folder_names_and_paths: dict[str, tuple[list[str], set[str]]] = {
    name: ([os.path.join(models_dir, sub) for sub in subs],
           set() if name == "configs" else set(supported_pt_extensions))
    for name, subs in _STANDARD_FOLDERS.items()
}
folder_names_and_paths["configs"] = (folder_names_and_paths["configs"][0], {".yaml"})
folder_names_and_paths["upscale_models"] = (folder_names_and_paths["upscale_models"][0], set(supported_pt_extensions))

_directories: dict[str, str | None] = {"input": None, "output": None, "temp": None}
_ENV = {"input": "SOUNDSTAGE_INPUT_DIR", "output": "SOUNDSTAGE_OUTPUT_DIR", "temp": "SOUNDSTAGE_TEMP_DIR"}


def _directory(kind: str) -> str:
    state = _run.current()
    own = getattr(state, f"{kind}_dir", None) if state is not None else None
    chosen = own or _directories[kind] or os.environ.get(_ENV[kind]) or os.path.join(base_path, kind)
    return os.path.abspath(chosen)


def _rerooted(paths: list[str]) -> list[str]:
    """A run with its own models folder sees every folder registered under the default one moved there."""
    state = _run.current()
    if state is None or not state.models_dir:
        return paths
    own = os.path.abspath(state.models_dir)
    return [os.path.join(own, os.path.relpath(p, models_dir)) if _is_within(p, models_dir) else p for p in paths]


def get_input_directory() -> str:
    return _directory("input")


def get_output_directory() -> str:
    return _directory("output")


def get_temp_directory() -> str:
    return _directory("temp")


def set_input_directory(input_dir: str) -> None:
    _directories["input"] = os.fspath(input_dir)


def set_output_directory(output_dir: str) -> None:
    _directories["output"] = os.fspath(output_dir)


def set_temp_directory(temp_dir: str) -> None:
    _directories["temp"] = os.fspath(temp_dir)


def get_directory_by_type(type_name: str) -> str | None:
    return {"output": get_output_directory, "temp": get_temp_directory,
            "input": get_input_directory}.get(type_name, lambda: None)()


def set_models_directory(path: str) -> None:
    """Re-root every folder registered under the current models directory (headless only)."""
    global models_dir
    new_dir = os.path.abspath(os.fspath(path))
    old_dir = models_dir
    for name, (paths, exts) in list(folder_names_and_paths.items()):
        moved = [os.path.join(new_dir, os.path.relpath(p, old_dir)) if _is_within(p, old_dir) else p for p in paths]
        folder_names_and_paths[name] = (moved, exts)
    models_dir = new_dir


def _is_within(path: str, folder: str) -> bool:
    try:
        return os.path.commonpath((os.path.abspath(path), folder)) == folder
    except ValueError:
        return False


def map_legacy(folder_name: str) -> str:
    return _LEGACY_NAMES.get(folder_name, folder_name)


def add_model_folder_path(folder_name: str, full_folder_path: str, is_default: bool = False) -> None:
    folder_name = map_legacy(folder_name)
    if folder_name in folder_names_and_paths:
        paths, exts = folder_names_and_paths[folder_name]
        if full_folder_path in paths:
            if is_default and paths[0] != full_folder_path:
                paths.remove(full_folder_path)
                paths.insert(0, full_folder_path)
        elif is_default:
            paths.insert(0, full_folder_path)
        else:
            paths.append(full_folder_path)
    else:
        folder_names_and_paths[folder_name] = ([full_folder_path], set())


def get_folder_paths(folder_name: str) -> list[str]:
    return _rerooted(folder_names_and_paths[map_legacy(folder_name)][0][:])


def filter_files_extensions(files, extensions) -> list[str]:
    return sorted(f for f in files if os.path.splitext(f)[-1].lower() in extensions or len(extensions) == 0)


def filter_files_content_types(files: list[str], content_types: list[str]) -> list[str]:
    """Keep files whose guessed MIME family ("image", "video", "audio", "model") is requested."""
    result = []
    for file in files:
        ext = os.path.splitext(file)[-1].lower()
        if ext in (".gltf", ".glb", ".obj", ".fbx", ".stl"):
            family = "model"
        else:
            mime = mimetypes.guess_type(file, strict=False)[0] or ""
            family = mime.split("/")[0]
            if ext in (".flac", ".opus", ".m4a", ".ogg"):
                family = "audio"
            if ext in (".webm", ".mkv"):
                family = "video"
        if family in content_types:
            result.append(file)
    return sorted(result)


def recursive_search(directory: str, excluded_dir_names: list[str] | None = None) -> tuple[list[str], dict]:
    if not os.path.isdir(directory):
        return [], {}
    excluded = set(excluded_dir_names or [])
    result, dirs = [], {}
    for dirpath, subdirs, filenames in os.walk(directory, followlinks=True, topdown=True):
        subdirs[:] = [d for d in subdirs if d not in excluded]
        for name in filenames:
            result.append(os.path.relpath(os.path.join(dirpath, name), directory).replace(os.sep, "/"))
        dirs[dirpath] = os.path.getmtime(dirpath)
    return result, dirs


def get_filename_list(folder_name: str) -> list[str]:
    folder_name = map_legacy(folder_name)
    if folder_name not in folder_names_and_paths:
        return []
    paths, exts = folder_names_and_paths[folder_name]
    output: set[str] = set()
    for path in _rerooted(paths):
        files, _ = recursive_search(path, excluded_dir_names=[".git"])
        output.update(filter_files_extensions(files, exts))
    return sorted(output)


def get_full_path(folder_name: str, filename: str) -> str | None:
    folder_name = map_legacy(folder_name)
    if folder_name not in folder_names_and_paths:
        return None
    filename = os.path.relpath(os.path.join("/", filename), "/")
    for path in _rerooted(folder_names_and_paths[folder_name][0]):
        full_path = os.path.join(path, filename)
        if os.path.isfile(full_path):
            return full_path
        if os.path.islink(full_path):
            logging.warning("path %s exists but doesn't link anywhere, skipping.", full_path)
    return None


def get_full_path_or_raise(folder_name: str, filename: str) -> str:
    full_path = get_full_path(folder_name, filename)
    if full_path is None:
        raise FileNotFoundError(f"Model in folder '{folder_name}' with filename '{filename}' not found.")
    return full_path


def annotated_filepath(name: str) -> tuple[str, str | None]:
    for suffix, getter in ((" [output]", get_output_directory), (" [input]", get_input_directory),
                           (" [temp]", get_temp_directory)):
        if name.endswith(suffix):
            return name[: -len(suffix)], getter()
    return name, None


def get_annotated_filepath(name: str, default_dir: str | None = None) -> str:
    name, base_dir = annotated_filepath(name)
    if base_dir is None:
        base_dir = default_dir if default_dir is not None else get_input_directory()
    return os.path.join(base_dir, name)


def exists_annotated_filepath(name: str) -> bool:
    name, base_dir = annotated_filepath(name)
    if base_dir is None:
        base_dir = get_input_directory()
    return os.path.exists(os.path.join(base_dir, name))


def get_save_image_path(filename_prefix: str, output_dir: str, image_width=0, image_height=0
                        ) -> tuple[str, str, int, str, str]:
    """(folder, filename, next counter, subfolder, prefix) with ComfyUI's ``<prefix>_<00001>_`` numbering."""
    def map_filename(filename: str) -> tuple[int, str]:
        prefix_len = len(os.path.basename(filename_prefix))
        prefix = filename[: prefix_len + 1]
        try:
            digits = int(filename[prefix_len + 1:].split("_")[0])
        except ValueError:
            digits = 0
        return digits, prefix

    def compute_vars(text: str) -> str:
        now = time.localtime()
        for key, value in (("%width%", image_width), ("%height%", image_height), ("%year%", now.tm_year),
                           ("%month%", str(now.tm_mon).zfill(2)), ("%day%", str(now.tm_mday).zfill(2)),
                           ("%hour%", str(now.tm_hour).zfill(2)), ("%minute%", str(now.tm_min).zfill(2)),
                           ("%second%", str(now.tm_sec).zfill(2))):
            text = text.replace(key, str(value))
        return text

    if "%" in filename_prefix:
        filename_prefix = compute_vars(filename_prefix)
    check_prefix(filename_prefix)
    output_dir = os.path.abspath(output_dir)
    subfolder = os.path.dirname(os.path.normpath(filename_prefix))
    filename = os.path.basename(os.path.normpath(filename_prefix))
    full_output_folder = os.path.join(output_dir, subfolder)
    # Links resolved before the containment check: a symlinked sub-folder must not lead a save outside.
    real_output = os.path.realpath(output_dir)
    if os.path.commonpath((real_output, os.path.realpath(full_output_folder))) != real_output:
        raise OutputPathError(f"saving outside the output folder is not allowed: {filename_prefix!r} leads to "
                              f"{os.path.realpath(full_output_folder)}")
    try:
        counter = max(
            d for d, prefix in map(map_filename, os.listdir(full_output_folder))
            if os.path.normcase(prefix[:-1]) == os.path.normcase(filename) and prefix[-1:] == "_"
        ) + 1
    except ValueError:
        counter = 1
    except FileNotFoundError:
        os.makedirs(full_output_folder, exist_ok=True)
        counter = 1
    return full_output_folder, filename, counter, subfolder, filename_prefix
