"""One pipeline per system: the pack's plain-Python API (tensors, dicts and paths in and out; no ComfyUI).

``nodes/`` and ``training/`` stand on these modules; they stand on ``models/``, ``media/`` and ``metrics/``.
Every function takes modules already on their compute device: the caller places them (ComfyUI's model
manager in the nodes, ``.to(device)`` in a script).
"""
