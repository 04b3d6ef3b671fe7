"""Workflow files -> ComfyUI API prompts, doing what the frontend's ``graphToPrompt`` does.

UI-format workflows (version 0.4 with list links, version 1 with object links) carry widget
values positionally in ``widgets_values``; they are mapped onto the node's widget inputs in
schema order (linked widgets keep their slot, seed-like inputs carry one extra control value,
upload combos carry their button/player widgets). Muted nodes (mode 2) disappear; bypassed
nodes (mode 4) hand each output the first input of the same type; Reroute and PrimitiveNode
are resolved away; subgraphs are flattened first (see ``subgraphs``). Group nodes (the older
"workflow>" kind) are refused with an error naming the node.
"""
from __future__ import annotations

import copy
import json
import os
from typing import Any, Mapping

from .schema import CONTROL_VALUES, DYNAMIC_COMBO, InputSpec, dynamic_children, input_specs
from .subgraphs import MODE_BYPASS, MODE_MUTED, SubgraphError, link_tuple, flatten_subgraphs

VIRTUAL_TYPES = {"Reroute", "PrimitiveNode", "Note", "MarkdownNote"}


class WorkflowConversionError(ValueError):
    """A workflow uses a construct the headless runner cannot turn into a prompt."""


def load_json(source):
    """A copy of a workflow given as a mapping, or the parsed content of a file given by path.

    Whatever the file holds is returned as parsed (a JSON string stays a string, never a path to follow);
    ``document.check_document`` says whether it is a workflow."""
    if isinstance(source, Mapping):
        return copy.deepcopy(dict(source))
    if not isinstance(source, (str, bytes, os.PathLike)):
        raise WorkflowConversionError(f"expected a workflow mapping or a path to a workflow file, "
                                      f"got {type(source).__name__}")
    with open(os.fspath(source), encoding="utf-8") as f:
        return json.load(f)


def is_ui_workflow(data: Mapping) -> bool:
    return isinstance(data.get("nodes"), list) and ("links" in data or "version" in data)


def is_api_prompt(data: Mapping) -> bool:
    return bool(data) and all(isinstance(v, Mapping) and "class_type" in v for v in data.values())


def to_prompt(data: Mapping, node_classes: Mapping[str, type]) -> tuple[dict, dict | None]:
    """(API prompt, extra_pnginfo) for a UI workflow or an API prompt (``{"prompt": ...}`` wrappers too)."""
    if "prompt" in data and isinstance(data["prompt"], Mapping) and is_api_prompt(data["prompt"]):
        extra = data.get("extra_data", {}).get("extra_pnginfo") if isinstance(data.get("extra_data"), Mapping) else None
        return copy.deepcopy(dict(data["prompt"])), extra
    if is_ui_workflow(data):
        return ui_to_api(data, node_classes), {"workflow": copy.deepcopy(dict(data))}
    if is_api_prompt(data) or not data:
        return {str(k): copy.deepcopy(dict(v)) for k, v in data.items()}, None
    raise WorkflowConversionError("not a ComfyUI workflow: expected a UI workflow with 'nodes' and 'links' "
                                  "or an API prompt mapping node ids to {'class_type', 'inputs'}")


def _links_table(workflow: Mapping) -> dict[int, tuple]:
    entries = (link_tuple(link) for link in workflow.get("links") or [] if link is not None)
    return {entry[0]: entry for entry in entries}


def _describe(node: Mapping) -> str:
    title = node.get("title")
    label = f"{node.get('type')}" + (f" '{title}'" if title else "")
    return f"node #{node.get('id')} ({label})"


def _check_supported(nodes: dict[str, Mapping], workflow: Mapping) -> None:
    definitions = workflow.get("definitions") or {}
    subgraph_ids = {sg.get("id") for sg in definitions.get("subgraphs") or [] if isinstance(sg, Mapping)}
    for node in nodes.values():
        node_type = str(node.get("type"))
        if node_type in subgraph_ids:  # left over only when flattening could not place it
            raise WorkflowConversionError(
                f"{_describe(node)} is a subgraph the headless runner could not flatten. "
                "Unpack it in ComfyUI (right-click > Unpack Subgraph) and save the workflow again.")
        if node_type.startswith("workflow>") or node_type.startswith("workflow/"):
            raise WorkflowConversionError(
                f"{_describe(node)} is a group node; group nodes are not supported headless. "
                "Convert it back to nodes in ComfyUI and save the workflow again.")


class _Resolver:
    """Follows a link back through reroutes, primitives, muted and bypassed nodes."""

    def __init__(self, nodes: dict[str, Mapping], links: dict[int, tuple]):
        self.nodes = nodes
        self.links = links

    def resolve(self, link_id, wanted_type):
        """``("link", [node_id, slot])``, ``("value", v)`` or None when nothing reaches the input."""
        seen: set = set()
        while True:  # a loop, not recursion: chains of thousands of reroutes are fine
            if link_id is None or not _hashable(link_id) or link_id not in self.links or link_id in seen:
                return None
            seen.add(link_id)
            _, origin_id, origin_slot, _, _, link_type = self.links[link_id]
            origin = self.nodes.get(str(origin_id))
            if origin is None:
                return None
            wanted_type = wanted_type or link_type
            mode = origin.get("mode", 0)
            inputs = origin.get("inputs") or []
            if origin.get("type") == "Reroute":
                link_id = inputs[0].get("link") if inputs else None
                continue
            if origin.get("type") == "PrimitiveNode":
                values = origin.get("widgets_values") or []
                if isinstance(values, Mapping):
                    values = list(values.values())
                return ("value", values[0]) if values else None
            if mode == MODE_MUTED:
                return None
            if mode == MODE_BYPASS:
                # As the frontend: try the input at the output's index first, then every input in order.
                for index in [origin_slot, *range(len(inputs))]:
                    if isinstance(index, int) and 0 <= index < len(inputs) and inputs[index].get("type") == wanted_type:
                        link_id = inputs[index].get("link")
                        break
                else:
                    return None
                continue
            return ("link", [str(origin_id), origin_slot])


def _hashable(value) -> bool:
    return isinstance(value, (int, str))


def ui_to_api(workflow: Mapping, node_classes: Mapping[str, type]) -> dict:
    try:
        workflow = flatten_subgraphs(workflow)
    except SubgraphError as exc:
        raise WorkflowConversionError(str(exc)) from None
    nodes = {str(n["id"]): n for n in workflow.get("nodes") or []}
    _check_supported(nodes, workflow)
    resolver = _Resolver(nodes, _links_table(workflow))
    prompt: dict[str, dict] = {}
    for node_id, node in nodes.items():
        node_type = node.get("type")
        if node_type in VIRTUAL_TYPES or node.get("mode", 0) in (MODE_MUTED, MODE_BYPASS):
            continue
        inputs: dict[str, Any] = {}
        linked: set[str] = set()
        for slot in node.get("inputs") or []:
            if slot.get("link") is None:
                continue
            name = slot.get("name")
            linked.add(name)
            resolved = resolver.resolve(slot["link"], slot.get("type"))
            if resolved is not None:
                inputs[name] = resolved[1]
        node_class = node_classes.get(node_type)
        if node_class is not None:
            values = widget_values(node, node_class) | dict(node.get("_widget_overrides") or {})
            for name, value in values.items():
                if name not in linked:
                    inputs[name] = value
        title = node.get("title") or _display_name(node_class) or node_type
        prompt[node_id] = {"inputs": inputs, "class_type": node_type, "_meta": {"title": title}}
    return prompt


def _display_name(node_class) -> str | None:
    if node_class is None:
        return None
    try:
        schema = node_class.GET_SCHEMA()
        return schema.display_name or schema.node_id
    except Exception:
        return None


def widget_values(node: Mapping, node_class) -> dict[str, Any]:
    """Widget input name -> value, from a UI node's ``widgets_values``."""
    values = node.get("widgets_values")
    if values is None:
        return {}
    if isinstance(values, Mapping):
        # Some frontends store widgets by name; nested dynamic-combo values come back flattened.
        return {k: v for k, v in values.items()}
    specs = [s for s in input_specs(node_class) if s.is_widget]
    use_upload_extras = len(values) >= _expected_count(specs, with_uploads=True)
    out: dict[str, Any] = {}
    pos = 0
    queue = list(specs)
    while queue and pos < len(values):
        spec = queue.pop(0)
        value = values[pos]
        pos += 1
        out[spec.name] = value
        if spec.io_type == DYNAMIC_COMBO:
            queue[0:0] = [c for c in dynamic_children(spec, value) if c.is_widget]
        if spec.has_control_widget and pos < len(values) and isinstance(values[pos], str) \
                and values[pos] in CONTROL_VALUES:
            pos += 1
        if use_upload_extras:
            pos += spec.upload_extra
    return out


def _expected_count(specs: list[InputSpec], with_uploads: bool) -> int:
    count = 0
    for spec in specs:
        count += 1 + (1 if spec.has_control_widget else 0) + (spec.upload_extra if with_uploads else 0)
    return count
