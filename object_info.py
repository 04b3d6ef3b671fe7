"""The JSON that ComfyUI's ``/object_info`` serves for a node, built from its V1 view."""
from __future__ import annotations



def pack_node_classes() -> dict[str, type]:
    """Soundstage's own nodes by node id, as the ComfyUI entry point lists them (the runner's one listing);
    a pack that fails to load is an error here."""
    from .headless.registry import pack_nodes

    errors: list[str] = []
    nodes = pack_nodes(errors)
    if errors:
        raise RuntimeError(errors[0])
    return nodes


def node_info(node_id: str, cls: type) -> dict:
    input_types = cls.INPUT_TYPES()
    outputs = list(cls.RETURN_TYPES)
    names = list(getattr(cls, "RETURN_NAMES", None) or outputs)
    return {
        "input": input_types,
        "input_order": {section: list(spec) for section, spec in input_types.items()},
        "output": outputs,
        "output_is_list": list(getattr(cls, "OUTPUT_IS_LIST", None) or [False] * len(outputs)),
        "output_name": names,
        "output_tooltips": list(getattr(cls, "OUTPUT_TOOLTIPS", None) or []),
        "name": node_id,
        "display_name": getattr(cls, "DISPLAY_NAME", None) or cls.GET_SCHEMA().display_name or node_id,
        "description": getattr(cls, "DESCRIPTION", "") or "",
        "python_module": "custom_nodes.soundstage",
        "category": getattr(cls, "CATEGORY", "Soundstage"),
        "output_node": bool(getattr(cls, "OUTPUT_NODE", False)),
        "deprecated": bool(getattr(cls, "DEPRECATED", False)),
        "experimental": bool(getattr(cls, "EXPERIMENTAL", False)),
    }
