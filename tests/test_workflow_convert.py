"""UI-format workflows -> API prompts, as the ComfyUI frontend's graphToPrompt builds them."""
from __future__ import annotations

import pytest

from soundstage.headless.core_nodes import CORE_NODES
from soundstage.headless.registry import by_id
from soundstage.headless.stubs import io
from soundstage.headless.workflow import WorkflowConversionError, to_prompt, ui_to_api


class Gen(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="TGen",
            inputs=[
                io.Int.Input("seed", default=0, min=0, max=2**31, control_after_generate=True),
                io.Float.Input("strength", default=1.0),
                io.Image.Input("image", optional=True),
                io.Combo.Input("mode", options=["a", "b"], optional=True),
            ],
            outputs=[io.Image.Output(), io.Int.Output()],
        )

    @classmethod
    def execute(cls, seed, strength, image=None, mode="a"):
        return io.NodeOutput(image, seed)


class Sink(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="TSink", inputs=[io.Image.Input("image"), io.String.Input("name", default="x")],
                         is_output_node=True)

    @classmethod
    def execute(cls, image, name):
        return io.NodeOutput()


class Filter(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="TFilter", inputs=[io.Int.Input("amount", default=1), io.Image.Input("image")],
                         outputs=[io.Image.Output()])

    @classmethod
    def execute(cls, amount, image):
        return io.NodeOutput(image)


CLASSES = by_id([Gen, Sink, Filter, *CORE_NODES])


def _node(node_id, node_type, widgets=None, inputs=(), outputs=(), mode=0, title=None):
    node = {"id": node_id, "type": node_type, "pos": [0, 0], "size": [100, 60], "flags": {}, "order": node_id,
            "mode": mode, "inputs": [dict(i) for i in inputs], "outputs": [dict(o) for o in outputs],
            "properties": {}}
    if widgets is not None:
        node["widgets_values"] = widgets
    if title:
        node["title"] = title
    return node


def _workflow(nodes, links, version=0.4):
    return {"last_node_id": max(n["id"] for n in nodes), "last_link_id": len(links), "nodes": nodes,
            "links": links, "groups": [], "config": {}, "extra": {}, "version": version}


def test_positional_widgets_and_control_after_generate():
    wf = _workflow([
        _node(1, "TGen", [42, "randomize", 0.25, "b"], outputs=[{"name": "IMAGE", "type": "IMAGE", "links": [1]}]),
        _node(2, "TSink", ["clip"], inputs=[{"name": "image", "type": "IMAGE", "link": 1}], title="Out"),
    ], [[1, 1, 0, 2, 0, "IMAGE"]])
    prompt = ui_to_api(wf, CLASSES)
    # The control value after the seed is skipped, so strength and mode land on their own inputs.
    assert prompt["1"]["inputs"] == {"seed": 42, "strength": 0.25, "mode": "b"}
    assert prompt["2"] == {"inputs": {"image": ["1", 0], "name": "clip"}, "class_type": "TSink",
                           "_meta": {"title": "Out"}}


def test_linked_widget_keeps_its_slot():
    # Widget converted to an input: its stale value stays in widgets_values and the link wins.
    wf = _workflow([
        _node(1, "TGen", [5, "fixed", 2.0], outputs=[{"name": "IMAGE", "type": "IMAGE", "links": []},
                                                     {"name": "INT", "type": "INT", "links": [1]}]),
        _node(2, "TGen", [7, "fixed", 3.0], inputs=[{"name": "seed", "type": "INT", "link": 1,
                                                     "widget": {"name": "seed"}}],
              outputs=[{"name": "IMAGE", "type": "IMAGE", "links": [2]}]),
        _node(3, "TSink", ["n"], inputs=[{"name": "image", "type": "IMAGE", "link": 2}]),
    ], [[1, 1, 1, 2, 0, "INT"], [2, 2, 0, 3, 0, "IMAGE"]])
    prompt = ui_to_api(wf, CLASSES)
    assert prompt["2"]["inputs"] == {"seed": ["1", 1], "strength": 3.0}


def test_version_1_object_links_mute_and_bypass():
    nodes = [
        _node(1, "TGen", [1, "fixed", 1.0], outputs=[{"name": "IMAGE", "type": "IMAGE", "links": [1]}]),
        _node(2, "TFilter", [3], inputs=[{"name": "image", "type": "IMAGE", "link": 1}],
              outputs=[{"name": "IMAGE", "type": "IMAGE", "links": [2, 3]}], mode=4),
        _node(3, "TSink", ["bypassed"], inputs=[{"name": "image", "type": "IMAGE", "link": 2}]),
        _node(4, "TSink", ["muted"], inputs=[{"name": "image", "type": "IMAGE", "link": 3}], mode=2),
    ]
    links = [{"id": 1, "origin_id": 1, "origin_slot": 0, "target_id": 2, "target_slot": 1, "type": "IMAGE"},
             {"id": 2, "origin_id": 2, "origin_slot": 0, "target_id": 3, "target_slot": 0, "type": "IMAGE"},
             {"id": 3, "origin_id": 2, "origin_slot": 0, "target_id": 4, "target_slot": 0, "type": "IMAGE"}]
    prompt = ui_to_api(_workflow(nodes, links, version=1), CLASSES)
    assert set(prompt) == {"1", "3"}  # bypassed and muted nodes are gone
    assert prompt["3"]["inputs"]["image"] == ["1", 0]  # bypass handed over its IMAGE input


def test_bypass_without_matching_input_leaves_input_unconnected():
    nodes = [
        _node(1, "TGen", [1, "fixed", 1.0], outputs=[{"name": "INT", "type": "INT", "links": [1]}]),
        _node(2, "TFilter", [3], inputs=[{"name": "amount", "type": "INT", "link": 1, "widget": {"name": "amount"}},
                                         {"name": "image", "type": "IMAGE", "link": None}],
              outputs=[{"name": "IMAGE", "type": "IMAGE", "links": [2]}], mode=4),
        _node(3, "TSink", ["x"], inputs=[{"name": "image", "type": "IMAGE", "link": 2}]),
    ]
    prompt = ui_to_api(_workflow(nodes, [[1, 1, 1, 2, 0, "INT"], [2, 2, 0, 3, 0, "IMAGE"]]), CLASSES)
    assert "image" not in prompt["3"]["inputs"]


def test_reroute_and_primitive_resolve():
    nodes = [
        _node(1, "TGen", [1, "fixed", 1.0], inputs=[{"name": "seed", "type": "INT", "link": 3,
                                                     "widget": {"name": "seed"}}],
              outputs=[{"name": "IMAGE", "type": "IMAGE", "links": [1]}]),
        _node(2, "Reroute", None, inputs=[{"name": "", "type": "*", "link": 1}],
              outputs=[{"name": "", "type": "IMAGE", "links": [2]}]),
        _node(3, "TSink", ["r"], inputs=[{"name": "image", "type": "IMAGE", "link": 2}]),
        _node(4, "PrimitiveNode", [1234, "increment"], outputs=[{"name": "INT", "type": "INT", "links": [3],
                                                                 "widget": {"name": "seed"}}]),
    ]
    links = [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"], [3, 4, 0, 1, 0, "INT"]]
    prompt = ui_to_api(_workflow(nodes, links), CLASSES)
    assert set(prompt) == {"1", "3"}
    assert prompt["3"]["inputs"]["image"] == ["1", 0]
    assert prompt["1"]["inputs"]["seed"] == 1234


def test_upload_combo_extra_widget_and_dynamic_combo():
    nodes = [
        _node(1, "LoadAudio", ["voice.wav", None, None], outputs=[{"name": "AUDIO", "type": "AUDIO", "links": [1]}]),
        _node(2, "SaveAudioAdvanced", ["audio/take", "mp3", "320k"],
              inputs=[{"name": "audio", "type": "AUDIO", "link": 1}]),
        _node(3, "LoadVideo", ["clip.mp4", "image"], outputs=[{"name": "VIDEO", "type": "VIDEO", "links": []}]),
    ]
    prompt = ui_to_api(_workflow(nodes, [[1, 1, 0, 2, 0, "AUDIO"]]), CLASSES)
    assert prompt["1"]["inputs"] == {"audio": "voice.wav"}
    assert prompt["2"]["inputs"] == {"audio": ["1", 0], "filename_prefix": "audio/take", "format": "mp3",
                                     "format.quality": "320k"}
    assert prompt["3"]["inputs"] == {"file": "clip.mp4"}


def test_unknown_node_keeps_links_for_validation_to_report():
    nodes = [_node(1, "NotInstalled", [1, 2], outputs=[{"name": "IMAGE", "type": "IMAGE", "links": [1]}]),
             _node(2, "TSink", ["x"], inputs=[{"name": "image", "type": "IMAGE", "link": 1}])]
    prompt = ui_to_api(_workflow(nodes, [[1, 1, 0, 2, 0, "IMAGE"]]), CLASSES)
    assert prompt["1"]["class_type"] == "NotInstalled" and prompt["1"]["inputs"] == {}


SUB_ID = "f2fdebf6-dfaf-43b6-9eb2-7f70613cfdc1"


def _subgraph_workflow(instance_mode=0, instance_widgets=(99,), proxy=None, outer_image=False):
    """Outer: [TGen 1] -image-> [instance 10] -image-> [TSink 3]. Inner: -10 -> TFilter 2 -> -20,
    and -10 (seed) -> TGen 1 whose image feeds TFilter when the outer image is absent."""
    inner_nodes = [
        _node(1, "TGen", [5, "fixed", 0.5], inputs=[{"name": "seed", "type": "INT", "link": 11,
                                                      "widget": {"name": "seed"}}],
              outputs=[{"name": "IMAGE", "type": "IMAGE", "links": []}]),
        _node(2, "TFilter", [4], inputs=[{"name": "image", "type": "IMAGE", "link": 12}],
              outputs=[{"name": "IMAGE", "type": "IMAGE", "links": [13]}]),
    ]
    inner_links = [
        {"id": 11, "origin_id": -10, "origin_slot": 1, "target_id": 1, "target_slot": 0, "type": "INT"},
        {"id": 12, "origin_id": -10, "origin_slot": 0, "target_id": 2, "target_slot": 1, "type": "IMAGE"},
        {"id": 13, "origin_id": 2, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "IMAGE"},
    ]
    instance = _node(10, SUB_ID, list(instance_widgets), mode=instance_mode,
                     inputs=[{"name": "image", "type": "IMAGE", "link": 1 if outer_image else None},
                             {"name": "seed", "type": "INT", "link": None, "widget": {"name": "seed"}}],
                     outputs=[{"name": "IMAGE", "type": "IMAGE", "links": [2]}])
    if proxy is not None:
        instance["properties"]["proxyWidgets"] = proxy
    outer = [
        _node(1, "TGen", [7, "fixed", 1.0], outputs=[{"name": "IMAGE", "type": "IMAGE", "links": [1]}]),
        instance,
        _node(3, "TSink", ["out"], inputs=[{"name": "image", "type": "IMAGE", "link": 2}]),
    ]
    links = [{"id": 2, "origin_id": 10, "origin_slot": 0, "target_id": 3, "target_slot": 0, "type": "IMAGE"}]
    if outer_image:
        links.append({"id": 1, "origin_id": 1, "origin_slot": 0, "target_id": 10, "target_slot": 0, "type": "IMAGE"})
    wf = _workflow(outer, links, version=1)
    wf["definitions"] = {"subgraphs": [{
        "id": SUB_ID, "name": "Block", "nodes": inner_nodes, "links": inner_links,
        "inputs": [{"name": "image", "type": "IMAGE", "linkIds": [12]}, {"name": "seed", "type": "INT", "linkIds": [11]}],
        "outputs": [{"name": "IMAGE", "type": "IMAGE", "linkIds": [13]}]}]}
    return wf


def test_subgraph_is_flattened_with_promoted_widget():
    prompt = ui_to_api(_subgraph_workflow(outer_image=True), CLASSES)
    assert set(prompt) == {"1", "10:1", "10:2", "3"}
    assert prompt["3"]["inputs"]["image"] == ["10:2", 0]
    assert prompt["10:2"]["inputs"] == {"amount": 4, "image": ["1", 0]}  # outer link crosses the boundary
    assert prompt["10:1"]["inputs"]["seed"] == 99  # the instance's promoted value wins over the inner 5


def test_subgraph_input_without_value_keeps_inner_widget_and_proxy_overrides():
    prompt = ui_to_api(_subgraph_workflow(instance_widgets=(), outer_image=False), CLASSES)
    assert prompt["10:1"]["inputs"]["seed"] == 5
    assert "image" not in prompt["10:2"]["inputs"]
    proxied = ui_to_api(_subgraph_workflow(instance_widgets=(11, 0.75), proxy=[["-1", "seed"], ["1", "strength"]]),
                        CLASSES)
    assert proxied["10:1"]["inputs"]["seed"] == 11 and proxied["10:1"]["inputs"]["strength"] == 0.75


def test_muted_and_bypassed_subgraph_instances():
    muted = ui_to_api(_subgraph_workflow(instance_mode=2, outer_image=True), CLASSES)
    assert set(muted) == {"1", "3"} and "image" not in muted["3"]["inputs"]
    bypassed = ui_to_api(_subgraph_workflow(instance_mode=4, outer_image=True), CLASSES)
    assert set(bypassed) == {"1", "3"} and bypassed["3"]["inputs"]["image"] == ["1", 0]


def test_recursive_subgraph_and_group_nodes_are_refused_by_name():
    wf = _subgraph_workflow()
    wf["definitions"]["subgraphs"][0]["nodes"].append(_node(5, SUB_ID, []))
    with pytest.raises(WorkflowConversionError, match="contains itself"):
        ui_to_api(wf, CLASSES)
    with pytest.raises(WorkflowConversionError, match=r"node #3 .*group node"):
        ui_to_api(_workflow([_node(3, "workflow>MyGroup", [])], []), CLASSES)


def test_api_prompt_and_wrapped_prompt_pass_through():
    api = {"5": {"class_type": "TSink", "inputs": {"image": ["4", 0], "name": "x"}}}
    assert to_prompt(api, CLASSES) == (api, None)
    assert to_prompt({"prompt": api, "extra_data": {"extra_pnginfo": {"workflow": {}}}}, CLASSES)[1] == {
        "workflow": {}}
    wf = _workflow([_node(2, "TSink", ["n"])], [])
    prompt, extra = to_prompt(wf, CLASSES)
    assert extra == {"workflow": wf} and prompt["2"]["inputs"] == {"name": "n"}
    with pytest.raises(WorkflowConversionError):
        to_prompt({"nodes": "nope"}, CLASSES)


def test_api_to_ui_round_trip_keeps_dynamic_combo_choices():
    from soundstage.headless.ui_export import api_to_ui

    prompt = {"1": {"class_type": "LoadAudio", "inputs": {"audio": "a.wav"}},
              "2": {"class_type": "SaveAudioAdvanced", "inputs": {"audio": ["1", 0], "filename_prefix": "x",
                                                                  "format": "opus", "format.quality": "64k"}},
              "3": {"class_type": "TGen", "inputs": {"seed": 3, "strength": 0.5, "mode": "b"}}}
    again = ui_to_api(api_to_ui(prompt, CLASSES), CLASSES)
    assert {k: v["inputs"] for k, v in again.items()} == {k: v["inputs"] for k, v in prompt.items()}
