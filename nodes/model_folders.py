"""Model folders Soundstage reads, registered with ComfyUI's ``folder_paths``.

``models/soundstage/<family>/`` holds each system's own checkpoints; the standard folders
(``clip_vision``, ``text_encoders``, ``vae``, ``loras`` ...) hold the shared parts.
"""
from __future__ import annotations

import os
import re

from .. import defaults as pack_defaults
from ..compat import folder_paths

WEIGHT_EXTENSIONS = {".safetensors", ".pt", ".pth", ".ckpt", ".bin", ".sft"}

# folder name -> subfolder of models/ (families live under models/soundstage/)
FAMILIES = {
    "soundstage_dualdub": "soundstage/dualdub",
    "soundstage_mmaudio": "soundstage/mmaudio",
    "soundstage_ovi": "soundstage/ovi",
    "soundstage_ltx2": "soundstage/ltx2",
    "soundstage_mtv": "soundstage/mtv",
}
EXTRA_EXTENSIONS = {"soundstage_mtv": {".th"}}  # demucs packages: MTV's separator (MVSEP-CDX23)
STANDARD = ("clip_vision", "text_encoders", "vae", "loras", "audio_encoders", "upscale_models", "latent_upscale_models")


def register_model_folders() -> None:
    """Idempotent: safe to call from the entry point and from every loader."""
    table = folder_paths.folder_names_and_paths
    for name, sub in FAMILIES.items():
        path = os.path.join(folder_paths.models_dir, *sub.split("/"))
        if name not in table:
            table[name] = ([path], WEIGHT_EXTENSIONS | EXTRA_EXTENSIONS.get(name, set()))
        elif path not in table[name][0]:
            folder_paths.add_model_folder_path(name, path)
    for name in STANDARD:
        path = os.path.join(folder_paths.models_dir, name)
        if name not in table:
            table[name] = ([path], set(WEIGHT_EXTENSIONS))
        else:
            paths, exts = table[name]
            exts = set(exts) | WEIGHT_EXTENSIONS
            table[name] = (paths, exts)
    # The pack's tiny defaults: extra search paths after the user's folders (listed first by model_choices).
    for name, path in pack_defaults.search_paths().items():
        if name not in table:
            table[name] = ([], set(WEIGHT_EXTENSIONS))
        if path not in table[name][0]:
            folder_paths.add_model_folder_path(name, path)


def model_choices(folder: str) -> list[str]:
    """Files a loader's combo offers (folder layouts with config.json count as their folder name)."""
    register_model_folders()
    return pack_defaults.defaults_first(folder_paths.get_filename_list(folder))


def resolve_model(folder: str, name: str, node: str, input_name: str) -> str:
    """Full path of a chosen model file, or an error naming the node, input and where to put it."""
    register_model_folders()
    path = folder_paths.get_full_path(folder, name)
    if path is None or not os.path.exists(path):
        places = ", ".join(folder_paths.get_folder_paths(folder)) or folder
        raise FileNotFoundError(f"{node}: input '{input_name}': model file '{name}' not found in {places}")
    from .errors import note_model_input

    note_model_input(node, input_name, path)  # a later failure to read it names this input
    return path


# What a file is, from the names its official source gives it; a loader lists the files of its own kind
# and any file whose name says nothing (a renamed one is still offered).
KINDS = {
    "mel_vae": r"^v1-(16|44)\.pth$|mel_vae",  # MMAudio ext_weights: mel VAEs; the tiny default's mel_vae_16k
    "vocoder": r"best_netg|bigvgan",  # MMAudio's 16 kHz BigVGAN, NVIDIA's BigVGAN-v2 44 kHz
    "synchformer": r"synchformer",
    "mmdit": r"^mmaudio_|audiogen|omni|mmdit",
    "wan_vae": r"wan2\.\d_vae",
    "cogvideox": r"cogvideo",
    "tokenizer": r"\.json$",
}


def kind_of(name: str) -> str | None:
    base = os.path.basename(name).lower()
    return next((kind for kind, pattern in KINDS.items() if re.search(pattern, base)), None)


def fitting(names: list[str], kind: str) -> list[str]:
    """The names a loader of ``kind`` should offer: its own kind and names of no known kind."""
    if kind == "tokenizer":
        return [n for n in names if kind_of(n) == "tokenizer"]
    return [n for n in names if kind_of(n) in (kind, None)]


def files_with_suffix(folder: str, suffix: str) -> list[str]:
    """Files under a model folder ending in ``suffix`` (for non-weight files such as tokenizer.json)."""
    register_model_folders()
    found = []
    for root in folder_paths.get_folder_paths(folder):
        if os.path.isdir(root):
            for dirpath, _, files in os.walk(root, followlinks=True):
                found += [os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/")
                          for f in files if f.lower().endswith(suffix)]
    return sorted(set(found))
