"""Subgraphs (UI workflow version 1 ``definitions.subgraphs``) flattened into one graph.

Each instance's inner nodes join the outer graph under ids ``<instance>:<inner>`` (the ids
ComfyUI's frontend gives them in API prompts). The instance's input and output slots become
pass-through Reroute nodes, so the ordinary link resolution (reroutes, bypass, mute) applies
across the boundary. A subgraph input that is not linked outside but whose widget was promoted
onto the instance becomes a PrimitiveNode holding the instance's value; promoted widgets of inner
nodes (``properties.proxyWidgets``) override those nodes' own values.
"""
from __future__ import annotations

import itertools
from typing import Any, Mapping

INPUT_NODE_ID = -10  # the subgraph's input pseudo-node (frontend constant)
OUTPUT_NODE_ID = -20  # the subgraph's output pseudo-node
MODE_MUTED = 2
MODE_BYPASS = 4


class SubgraphError(ValueError):
    """A subgraph the flattener cannot expand (recursion, malformed definition)."""


def link_tuple(link) -> tuple:
    if isinstance(link, Mapping):
        return (link["id"], link["origin_id"], link["origin_slot"], link["target_id"], link["target_slot"],
                link.get("type"))
    return tuple(link[:6]) if len(link) >= 6 else tuple(link[:5]) + (None,)


def flatten_subgraphs(workflow: Mapping) -> dict:
    definitions = (workflow.get("definitions") or {}).get("subgraphs") or []
    subgraphs = {sg["id"]: sg for sg in definitions if isinstance(sg, Mapping) and "id" in sg}
    if not subgraphs or not any(n.get("type") in subgraphs for n in workflow.get("nodes") or []):
        return dict(workflow)
    flattener = _Flattener(subgraphs)
    nodes, links = flattener.expand(workflow.get("nodes") or [], workflow.get("links") or [], "", None, (), None)
    flat = dict(workflow)
    flat["nodes"], flat["links"] = nodes, links
    flat["definitions"] = {k: v for k, v in (workflow.get("definitions") or {}).items() if k != "subgraphs"}
    return flat


def _check_slot(slots, index, link_id, side: str) -> None:
    """A link into or out of a subgraph boundary must name one of its slots."""
    if slots is not None and not (isinstance(index, int) and 0 <= index < len(slots)):
        raise SubgraphError(f"link {link_id} uses {side} slot {index} of a subgraph that has {len(slots)}")


class _Flattener:
    def __init__(self, subgraphs: dict[str, Mapping]):
        self.subgraphs = subgraphs
        self.link_ids = itertools.count(1)
        self.links: list[list] = []

    def _add_link(self, origin: str, origin_slot: int, target: str, target_slot: int, kind) -> int:
        link_id = next(self.link_ids)
        self.links.append([link_id, origin, origin_slot, target, target_slot, kind])
        return link_id

    def expand(self, nodes, links, prefix: str, boundary, stack: tuple, forced_mode):
        """Flatten one graph level. ``boundary`` maps the -10/-20 pseudo-nodes of a subgraph level to
        the instance's virtual slot nodes: ``(input_ids, output_ids, skipped_inputs)``."""
        out_nodes: list[dict] = []
        instances: dict[str, tuple[Mapping, Mapping]] = {}
        copies: dict[str, dict] = {}
        for node in nodes:
            node_id = f"{prefix}{node['id']}"
            if node.get("type") in self.subgraphs:
                instances[str(node["id"])] = (node, self.subgraphs[node["type"]])
                continue
            copy = dict(node)
            copy["id"] = node_id
            copy["inputs"] = [dict(i) for i in node.get("inputs") or []]
            if forced_mode is not None:
                copy["mode"] = forced_mode
            copies[str(node["id"])] = copy
            out_nodes.append(copy)

        virtual: dict[str, dict[str, list[dict]]] = {}
        for local_id, (instance, subgraph) in instances.items():
            virtual[local_id] = self._slot_nodes(f"{prefix}{local_id}", instance, subgraph, forced_mode)
            out_nodes.extend(virtual[local_id]["in"] + virtual[local_id]["out"])

        remap: dict[Any, int | None] = {}
        for link in links:
            if link is None:
                continue
            old_id, origin, origin_slot, target, target_slot, kind = link_tuple(link)
            _check_slot(boundary[0] if boundary is not None and origin == INPUT_NODE_ID else
                        virtual[str(origin)]["out"] if str(origin) in virtual else None, origin_slot, old_id, "input"
                        if boundary is not None and origin == INPUT_NODE_ID else "output")
            _check_slot(boundary[1] if boundary is not None and target == OUTPUT_NODE_ID else
                        virtual[str(target)]["in"] if str(target) in virtual else None, target_slot, old_id,
                        "output" if boundary is not None and target == OUTPUT_NODE_ID else "input")
            if boundary is not None and origin == INPUT_NODE_ID:
                if origin_slot in boundary[2]:  # no outer link and no promoted value: inner widget keeps its own
                    remap[old_id] = None
                    continue
                origin_ref, origin_slot = boundary[0][origin_slot], 0
            elif str(origin) in virtual:
                origin_ref, origin_slot = virtual[str(origin)]["out"][origin_slot]["id"], 0
            else:
                origin_ref = f"{prefix}{origin}"
            if boundary is not None and target == OUTPUT_NODE_ID:
                out_node = boundary[1][target_slot]
                out_node["inputs"][0]["link"] = self._add_link(origin_ref, origin_slot, out_node["id"], 0, kind)
                continue
            if str(target) in virtual:
                in_node = virtual[str(target)]["in"][target_slot]
                if in_node["type"] == "Reroute":
                    in_node["inputs"][0]["link"] = self._add_link(origin_ref, origin_slot, in_node["id"], 0, kind)
                continue
            remap[old_id] = self._add_link(origin_ref, origin_slot, f"{prefix}{target}", target_slot, kind)
        for copy in copies.values():
            for slot in copy["inputs"]:
                if slot.get("link") is not None:
                    slot["link"] = remap.get(slot["link"])

        for local_id, (instance, subgraph) in instances.items():
            if subgraph["id"] in stack:
                raise SubgraphError(f"subgraph {subgraph.get('name') or subgraph['id']} contains itself")
            slots = virtual[local_id]
            mode = instance.get("mode", 0)
            inner_mode = forced_mode if forced_mode is not None else (MODE_MUTED if mode in (MODE_MUTED, MODE_BYPASS)
                                                                      else None)
            inner_prefix = f"{prefix}{local_id}:"
            skipped = {k for k, n in enumerate(slots["in"]) if n["type"] == "Reroute" and n["inputs"][0]["link"] is None}
            inner_nodes, _ = self.expand(subgraph.get("nodes") or [], subgraph.get("links") or [], inner_prefix,
                                         (slots["in_ids"], slots["out"], skipped), stack + (subgraph["id"],),
                                         inner_mode)
            for node in inner_nodes:
                overrides = slots["overrides"].get(node["id"][len(inner_prefix):])
                if overrides:
                    node["_widget_overrides"] = overrides
            out_nodes.extend(inner_nodes)
            if mode == MODE_BYPASS and forced_mode is None:
                self._bypass(slots)
        return out_nodes, self.links

    def _slot_nodes(self, instance_id: str, instance: Mapping, subgraph: Mapping, forced_mode) -> dict:
        by_input, overrides = _promoted_values(instance, subgraph)
        instance_inputs = instance.get("inputs") or []
        ins, outs = [], []
        for k, spec in enumerate(subgraph.get("inputs") or []):
            linked = k < len(instance_inputs) and instance_inputs[k].get("link") is not None
            node_id = f"{instance_id}:in:{k}"
            if not linked and k in by_input:
                ins.append({"id": node_id, "type": "PrimitiveNode", "mode": 0, "inputs": [],
                            "widgets_values": [by_input[k]], "_slot_type": spec.get("type")})
            else:
                ins.append({"id": node_id, "type": "Reroute", "mode": 0, "_slot_type": spec.get("type"),
                            "inputs": [{"name": "", "type": spec.get("type"), "link": None}]})
        for k, spec in enumerate(subgraph.get("outputs") or []):
            outs.append({"id": f"{instance_id}:out:{k}", "type": "Reroute", "mode": 0, "_slot_type": spec.get("type"),
                         "inputs": [{"name": "", "type": spec.get("type"), "link": None}]})
        return {"in": ins, "out": outs, "in_ids": [n["id"] for n in ins], "overrides": overrides}

    def _bypass(self, slots: dict) -> None:
        """A bypassed instance hands each output the first of its inputs with the same type."""
        for out_node in slots["out"]:
            out_node["inputs"][0]["link"] = None
            source = next((n for n in slots["in"] if n["_slot_type"] == out_node["_slot_type"]), None)
            if source is not None:
                out_node["inputs"][0]["link"] = self._add_link(source["id"], 0, out_node["id"], 0,
                                                               out_node["_slot_type"])


def _promoted_values(instance: Mapping, subgraph: Mapping) -> tuple[dict[int, Any], dict[str, dict[str, Any]]]:
    """Values the instance carries for promoted widgets: by subgraph input index, and per inner node."""
    values = instance.get("widgets_values") or []
    if isinstance(values, Mapping):
        values = list(values.values())
    names = [spec.get("name") for spec in subgraph.get("inputs") or []]
    by_input: dict[int, Any] = {}
    overrides: dict[str, dict[str, Any]] = {}
    proxy = (instance.get("properties") or {}).get("proxyWidgets")
    if proxy:
        for value, (node_id, widget) in zip(values, proxy):
            if not isinstance(widget, str):
                continue
            if str(node_id) == "-1":
                if widget in names:
                    by_input[names.index(widget)] = value
            else:
                overrides.setdefault(str(node_id), {})[widget] = value
        return by_input, overrides
    widget_slots = [k for k, slot in enumerate(instance.get("inputs") or []) if slot.get("widget")]
    for value, k in zip(values, widget_slots):
        by_input[k] = value
    return by_input, overrides
