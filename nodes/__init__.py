"""ComfyUI V3 nodes: thin wrappers over functions in ``models/`` and the media helpers."""
