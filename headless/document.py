"""The shape of a workflow document, checked before it is converted or validated.

A file that is not a ComfyUI workflow (a string, a list, a node whose ``inputs`` is a number, a link
with three fields ...) gets one error in ComfyUI's ``invalid_prompt`` shape naming the bad element by
its path, e.g. ``nodes[3].inputs``, instead of an exception from deep inside the converter. The
rules are those the frontend's serialisation always satisfies (LiteGraph's ``serialize`` for UI
workflows, ``graphToPrompt`` for API prompts); anything looser would only move the crash later.
"""
from __future__ import annotations

from typing import Any, Mapping

MAX_DEPTH = 200  # nesting deeper than this is no workflow the editor writes


class MalformedWorkflow(ValueError):
    """``path``: where in the document the problem is (``nodes[3].inputs``); ``problem``: what is wrong."""

    def __init__(self, path: str, problem: str):
        self.path, self.problem = path or "(document)", problem
        super().__init__(f"{self.path}: {problem}")

    def response(self) -> dict:
        message = f"Invalid workflow: {self}"
        return {"error": {"type": "invalid_prompt", "message": message, "details": str(self),
                          "extra_info": {"path": self.path}}, "node_errors": {}}


def _kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _expect(value, types: tuple, path: str, what: str, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) and bool not in types:
        raise MalformedWorkflow(path, f"expected {what}, got a boolean")
    if not isinstance(value, types):
        raise MalformedWorkflow(path, f"expected {what}, got {_kind(value)}")


def _join(path: str, key) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))


def _check_depth(value, path: str = "") -> None:
    stack = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise MalformedWorkflow(where, f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, Mapping):
            stack.extend((v, _join(where, k), depth + 1) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, _join(where, i), depth + 1) for i, v in enumerate(item))


def is_ui_document(data: Mapping) -> bool:
    return "nodes" in data and ("links" in data or "version" in data or isinstance(data.get("nodes"), list))


def check_document(data: Any) -> None:
    """Raise MalformedWorkflow unless ``data`` has the shape of a UI workflow or an API prompt."""
    _expect(data, (dict,), "", "a JSON object (a UI workflow or an API prompt)")
    _check_depth(data)
    if isinstance(data.get("prompt"), Mapping) and "nodes" not in data:
        check_api(data["prompt"], "prompt")
        extra = data.get("extra_data")
        _expect(extra, (dict,), "extra_data", "an object", optional=True)
        return
    if is_ui_document(data):
        check_ui(data, "")
        return
    check_api(data, "")


def check_api(prompt: Mapping, path: str) -> None:
    _expect(prompt, (dict,), path, "an object mapping node ids to nodes")
    for node_id, node in prompt.items():
        where = _join(path, node_id)
        _expect(node, (dict,), where, "a node object with 'class_type' and 'inputs'")
        if "class_type" in node:
            _expect(node["class_type"], (str,), _join(where, "class_type"), "a node type name")
        _expect(node.get("inputs"), (dict,), _join(where, "inputs"), "an object of input values", optional=True)
        _expect(node.get("_meta"), (dict,), _join(where, "_meta"), "an object", optional=True)
        if isinstance(node.get("_meta"), Mapping):
            _expect(node["_meta"].get("title"), (str,), _join(where, "_meta.title"), "a string", optional=True)


def _check_id(value, path: str) -> None:
    _expect(value, (int, str), path, "a node id (number or string)")


def _check_link(link, path: str) -> None:
    if isinstance(link, Mapping):
        for key in ("id", "origin_id", "origin_slot", "target_id", "target_slot"):
            if key not in link:
                raise MalformedWorkflow(path, f"link object without '{key}'")
        link_id, origin, origin_slot, target, target_slot = (link[k] for k in ("id", "origin_id", "origin_slot",
                                                                                "target_id", "target_slot"))
    else:
        _expect(link, (list,), path, "a link [id, origin, origin_slot, target, target_slot, type]")
        if len(link) < 5:
            raise MalformedWorkflow(path, f"a link has 6 fields [id, origin, origin_slot, target, target_slot, type], "
                                          f"got {len(link)}")
        link_id, origin, origin_slot, target, target_slot = link[:5]
    _expect(link_id, (int, str), _join(path, 0 if isinstance(link, list) else "id"), "a link id")
    _check_id(origin, _join(path, 1 if isinstance(link, list) else "origin_id"))
    _check_id(target, _join(path, 3 if isinstance(link, list) else "target_id"))
    _expect(origin_slot, (int,), _join(path, 2 if isinstance(link, list) else "origin_slot"), "a slot number")
    _expect(target_slot, (int,), _join(path, 4 if isinstance(link, list) else "target_slot"), "a slot number")


def _check_slots(slots, path: str, linked: str) -> None:
    _expect(slots, (list,), path, "a list of slots", optional=True)
    for k, slot in enumerate(slots or []):
        where = _join(path, k)
        _expect(slot, (dict,), where, "a slot object")
        _expect(slot.get("name"), (str,), _join(where, "name"), "a slot name", optional=True)
        if linked == "link":
            _expect(slot.get("link"), (int, str), _join(where, "link"), "a link id or null", optional=True)
        else:
            _expect(slot.get("links"), (list,), _join(where, "links"), "a list of link ids", optional=True)
        _expect(slot.get("widget"), (dict,), _join(where, "widget"), "an object", optional=True)


def _check_node(node, path: str) -> None:
    _expect(node, (dict,), path, "a node object")
    if "id" not in node:
        raise MalformedWorkflow(path, "node without an 'id'")
    _check_id(node["id"], _join(path, "id"))
    _expect(node.get("type"), (str,), _join(path, "type"), "a node type name")
    _expect(node.get("mode", 0), (int,), _join(path, "mode"), "a mode number", optional=True)
    _expect(node.get("title"), (str,), _join(path, "title"), "a string", optional=True)
    _check_slots(node.get("inputs"), _join(path, "inputs"), "link")
    _check_slots(node.get("outputs"), _join(path, "outputs"), "links")
    _expect(node.get("widgets_values"), (list, dict), _join(path, "widgets_values"), "a list of widget values",
            optional=True)
    properties = node.get("properties")
    _expect(properties, (dict,), _join(path, "properties"), "an object", optional=True)
    proxy = (properties or {}).get("proxyWidgets")
    _expect(proxy, (list,), _join(path, "properties.proxyWidgets"), "a list of [node id, widget]", optional=True)
    for k, entry in enumerate(proxy or []):
        where = _join(_join(path, "properties.proxyWidgets"), k)
        _expect(entry, (list,), where, "a [node id, widget name] pair")
        if len(entry) != 2:
            raise MalformedWorkflow(where, "expected a [node id, widget name] pair")


def _check_graph(graph: Mapping, path: str) -> None:
    nodes = graph.get("nodes")
    _expect(nodes, (list,), _join(path, "nodes"), "a list of nodes")
    seen = set()
    for k, node in enumerate(nodes):
        _check_node(node, _join(_join(path, "nodes"), k))
        if str(node["id"]) in seen:
            raise MalformedWorkflow(_join(_join(_join(path, "nodes"), k), "id"), f"duplicate node id {node['id']}")
        seen.add(str(node["id"]))
    links = graph.get("links")
    _expect(links, (list,), _join(path, "links"), "a list of links", optional=True)
    for k, link in enumerate(links or []):
        if link is not None:
            _check_link(link, _join(_join(path, "links"), k))


def check_ui(workflow: Mapping, path: str) -> None:
    _check_graph(workflow, path)
    definitions = workflow.get("definitions")
    _expect(definitions, (dict,), _join(path, "definitions"), "an object", optional=True)
    subgraphs = (definitions or {}).get("subgraphs")
    where = _join(path, "definitions.subgraphs")
    _expect(subgraphs, (list,), where, "a list of subgraphs", optional=True)
    for k, subgraph in enumerate(subgraphs or []):
        at = _join(where, k)
        _expect(subgraph, (dict,), at, "a subgraph object")
        _expect(subgraph.get("id"), (str,), _join(at, "id"), "a subgraph id")
        _check_graph({"nodes": subgraph.get("nodes") or [], "links": subgraph.get("links")}, at)
        for side in ("inputs", "outputs"):
            slots = subgraph.get(side)
            _expect(slots, (list,), _join(at, side), "a list of slots", optional=True)
            for i, slot in enumerate(slots or []):
                _expect(slot, (dict,), _join(_join(at, side), i), "a slot object")
