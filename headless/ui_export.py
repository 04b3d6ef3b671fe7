"""API prompt -> UI workflow (the format ComfyUI's editor loads and saves).

The inverse of :mod:`.workflow`: sockets become links, widget values are laid out positionally in
schema order (with the control value after a seed), so a graph written headless opens in the editor.
"""
from __future__ import annotations

from typing import Any, Mapping

from .graph import is_link, sources, upstream_order
from .schema import input_specs

NODE_WIDTH, COLUMN_GAP, ROW_GAP = 320, 60, 40


def _depths(prompt: Mapping[str, Mapping]) -> dict[str, int]:
    order, cyclic = upstream_order(prompt, list(prompt))
    if cyclic:
        raise ValueError("the prompt has a dependency cycle")
    depth: dict[str, int] = {}
    for nid in order:  # sources before the nodes they feed
        depth[nid] = 1 + max((depth[p] for p in sources(prompt, nid)), default=-1)
    return depth


def api_to_ui(prompt: Mapping[str, Mapping], node_classes: Mapping[str, type], *, title: str | None = None) -> dict:
    depth = _depths(prompt)
    rows: dict[int, int] = {}
    nodes, links = [], []
    out_links: dict[tuple[str, int], list[int]] = {}
    order = sorted(prompt, key=lambda n: (depth[n], int(n) if n.isdigit() else n))
    # links first, so each output knows its link ids
    link_id = 0
    pending: dict[str, list[dict]] = {}
    for nid in order:
        cls = node_classes[prompt[nid]["class_type"]]
        specs = {s.name: s for s in input_specs(cls)}
        for name, value in prompt[nid].get("inputs", {}).items():
            if not is_link(value, prompt):
                continue
            src, slot = value
            src_cls = node_classes[prompt[src]["class_type"]]
            io_type = src_cls.RETURN_TYPES[slot]
            link_id += 1
            links.append([link_id, int(src), slot, int(nid), None, io_type])
            out_links.setdefault((src, slot), []).append(link_id)
            entry = {"name": name, "type": io_type, "link": link_id}
            spec = specs.get(name)
            if spec is not None and spec.is_widget:
                entry["widget"] = {"name": name}
            pending.setdefault(nid, []).append(entry)
    slot_of_link: dict[int, int] = {}
    for nid in order:
        node = prompt[nid]
        cls = node_classes[node["class_type"]]
        values = node.get("inputs", {})
        specs = input_specs(cls, values)  # dynamic combos bring their chosen option's widgets
        inputs = []
        for spec in specs:
            linked = next((e for e in pending.get(nid, []) if e["name"] == spec.name), None)
            if linked is not None:
                inputs.append(linked)
            elif not spec.is_widget:
                inputs.append({"name": spec.name, "type": spec.io_type if isinstance(spec.io_type, str) else "COMBO", "link": None})
        for i, entry in enumerate(inputs):
            if entry.get("link") is not None:
                slot_of_link[entry["link"]] = i
        widgets: list[Any] = []
        for spec in specs:
            if not spec.is_widget:
                continue
            value = values.get(spec.name, spec.options.get("default"))
            if is_link(value):
                value = spec.options.get("default")
            if value is None and spec.combo_options:
                value = spec.combo_options[0]
            widgets.append(value)
            if spec.has_control_widget:
                widgets.append("fixed")
        names = list(getattr(cls, "RETURN_NAMES", None) or cls.RETURN_TYPES)
        outputs = [{"name": names[i], "type": t, "links": out_links.get((nid, i), []), "slot_index": i}
                   for i, t in enumerate(cls.RETURN_TYPES)]
        col = depth[nid]
        row = rows.get(col, 0)
        height = 60 + 26 * (len(widgets) + len(inputs))
        rows[col] = row + height + ROW_GAP
        ui_node = {
            "id": int(nid), "type": node["class_type"], "pos": [col * (NODE_WIDTH + COLUMN_GAP), row],
            "size": [NODE_WIDTH, height], "flags": {}, "order": order.index(nid), "mode": 0,
            "inputs": inputs, "outputs": outputs, "properties": {"Node name for S&R": node["class_type"]},
            "widgets_values": widgets,
        }
        if node.get("_meta", {}).get("title"):
            ui_node["title"] = node["_meta"]["title"]
        nodes.append(ui_node)
    for link in links:
        link[4] = slot_of_link[link[0]]
    workflow = {
        "last_node_id": max(int(n) for n in prompt), "last_link_id": link_id, "nodes": nodes, "links": links,
        "groups": [], "config": {}, "extra": {"ds": {"scale": 1.0, "offset": [0, 0]}}, "version": 0.4,
    }
    if title:
        workflow["extra"]["info"] = {"name": title}
    return workflow
