"""Soundstage: audio/video generation systems as typed ComfyUI nodes.

ComfyUI imports this file under a path-derived module name, so everything here is relative
and cheap: no model is built and no heavy library is imported until a node runs.
"""
WEB_DIRECTORY = "./js"

__all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]


async def comfy_entrypoint():
    from .nodes.extension import SoundstageExtension

    return SoundstageExtension()
