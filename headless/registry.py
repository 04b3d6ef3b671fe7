"""The node classes a headless run can use: the pack's extension plus stand-ins for ComfyUI core nodes."""
from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import traceback
from typing import Iterable, Mapping

log = logging.getLogger("soundstage.headless")


def run_coroutine(coro):
    """Run a coroutine to completion, also from code that already runs inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict = {}

    def target():
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    # The run's folders and interrupt flag live in context variables: the helper thread keeps them.
    thread = threading.Thread(target=contextvars.copy_context().run, args=(target,))
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def node_id_of(node_class) -> str:
    if hasattr(node_class, "GET_SCHEMA"):
        return node_class.GET_SCHEMA().node_id
    return node_class.__name__


def by_id(classes: Iterable[type] | Mapping[str, type]) -> dict[str, type]:
    if isinstance(classes, Mapping):
        return dict(classes)
    return {node_id_of(c): c for c in classes}


def pack_nodes(errors: list[str]) -> dict[str, type]:
    """The pack's own nodes through its ComfyUI entry point; failures are recorded, not fatal."""
    try:
        from .. import comfy_entrypoint
    except ImportError as exc:
        errors.append(f"the pack has no comfy_entrypoint: {exc}")
        return {}

    async def gather():
        extension = await comfy_entrypoint()
        await extension.on_load()
        return await extension.get_node_list()

    try:
        return by_id(run_coroutine(gather()))
    except Exception:
        message = traceback.format_exc()
        errors.append(message)
        log.warning("Soundstage nodes could not be loaded:\n%s", message)
        return {}


def core_nodes() -> dict[str, type]:
    """Headless stand-ins for ComfyUI's core nodes; empty inside ComfyUI, which has the real ones."""
    from ..compat import IN_COMFYUI

    if IN_COMFYUI:
        return {}
    from .core_nodes import CORE_NODES

    return by_id(CORE_NODES)


def build_registry(nodes=None, include_pack: bool | None = None, errors: list[str] | None = None) -> dict[str, type]:
    errors = errors if errors is not None else []
    registry = core_nodes()
    if include_pack is None:
        include_pack = nodes is None
    if include_pack:
        registry.update(pack_nodes(errors))
    if nodes is not None:
        registry.update(by_id(nodes))
    return registry
