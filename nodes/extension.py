"""The pack's ComfyExtension: gathers the ``NODES`` list of every node module."""
from __future__ import annotations

import importlib
import logging

from ..compat import ComfyExtension
from .errors import guard_model_inputs

log = logging.getLogger("soundstage")

# One module per area; each exports NODES. Order is the order of the node menu.
NODE_MODULES = (
    "media",
    "audio_codecs",
    "dualdub",
    "audiogen",
    "ovi",
    "dubbing",
    "dubit",
    "mtv",
    "synthworld",
    "metrics",
)

IMPORT_ERRORS: dict[str, str] = {}


def load_node_classes(strict: bool = False) -> list[type]:
    """Node classes of every module present; a module that fails to import is reported, not fatal,
    so one broken optional dependency never hides the rest of the pack in ComfyUI."""
    classes: list[type] = []
    for name in NODE_MODULES:
        try:
            module = importlib.import_module(f".{name}", __package__)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.endswith(f"nodes.{name}"):
                continue  # area not built yet
            if strict:
                raise
            IMPORT_ERRORS[name] = repr(exc)
            log.warning("Soundstage: node module %s not loaded: %s", name, exc)
            continue
        except Exception as exc:
            if strict:
                raise
            IMPORT_ERRORS[name] = repr(exc)
            log.warning("Soundstage: node module %s not loaded: %s", name, exc)
            continue
        for cls in getattr(module, "NODES", []):
            try:
                cls.GET_SCHEMA()  # a malformed schema must not take the rest of the pack down with it
            except Exception as exc:
                if strict:
                    raise
                IMPORT_ERRORS[f"{name}.{cls.__name__}"] = repr(exc)
                log.warning("Soundstage: node %s skipped: %s", cls.__name__, exc)
                continue
            classes.append(guard_model_inputs(cls))
    return classes


class SoundstageExtension(ComfyExtension):
    async def on_load(self) -> None:
        from .model_folders import register_model_folders

        register_model_folders()

    async def get_node_list(self) -> list[type]:
        from .model_folders import register_model_folders

        register_model_folders()
        return load_node_classes()
