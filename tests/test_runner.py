"""The headless runner: ComfyUI's validation errors, execution order, cache, lazy inputs, lists,
interruption and error reporting, with small test-only V3 nodes."""
from __future__ import annotations

import pytest

from soundstage.headless.runner import (
    ExecutionInterrupted, NodeExecutionError, Runner, ValidationFailed,
)
from soundstage.headless.stubs import io, model_management, ui

CALLS: list[str] = []


class Number(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="TNumber", inputs=[io.Int.Input("value", default=1, min=-10, max=10)],
                         outputs=[io.Int.Output()])

    @classmethod
    def execute(cls, value):
        CALLS.append(f"Number{value}")
        return io.NodeOutput(value)


class Add(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="TAdd", inputs=[io.Int.Input("a"), io.Int.Input("b", default=0, optional=True)],
                         outputs=[io.Int.Output(), io.String.Output()])

    @classmethod
    def execute(cls, a, b=0):
        CALLS.append("Add")
        return io.NodeOutput(a + b, f"{a}+{b}")


class Show(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="TShow", inputs=[io.AnyType.Input("value"), io.String.Input("label", default="")],
                         hidden=[io.Hidden.unique_id], is_output_node=True)

    @classmethod
    def execute(cls, value, label):
        CALLS.append("Show")
        return io.NodeOutput(ui=ui.PreviewText(f"{label}{value}@{cls.hidden.unique_id}"))


class Pick(io.ComfyNode):
    """Lazy switch: only the chosen branch is evaluated."""

    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="TPick", inputs=[
            io.Boolean.Input("first", default=True),
            io.Int.Input("a", lazy=True, optional=True), io.Int.Input("b", lazy=True, optional=True)],
            outputs=[io.Int.Output()])

    @classmethod
    def check_lazy_status(cls, first, a=None, b=None):
        return ["a"] if first else ["b"]

    @classmethod
    def execute(cls, first, a=None, b=None):
        return io.NodeOutput(a if first else b)


class Choice(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="TChoice", inputs=[io.Combo.Input("mode", options=["fast", "slow"]),
                                                    io.Float.Input("gain", default=1.0),
                                                    io.Custom("SOUNDSTAGE_MODEL").Input("model", optional=True)],
                         outputs=[io.Float.Output()])

    @classmethod
    def validate_inputs(cls, mode, gain):
        if gain == 13.0:
            return "gain 13 is unlucky"
        return True

    @classmethod
    def execute(cls, mode, gain, model=None):
        return io.NodeOutput(gain)


class Boom(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="TBoom", inputs=[io.Int.Input("x")], outputs=[io.Int.Output()])

    @classmethod
    def execute(cls, x):
        raise RuntimeError(f"boom at {x}")


class Stop(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="TStop", inputs=[io.Int.Input("x")], outputs=[io.Int.Output()])

    @classmethod
    def execute(cls, x):
        model_management.interrupt_current_processing(True)
        model_management.throw_exception_if_processing_interrupted()
        return io.NodeOutput(x)


class Stamp(io.ComfyNode):
    """Its fingerprint changes each call, so it never comes from the cache."""

    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="TStamp", inputs=[io.Int.Input("x")], outputs=[io.Int.Output()])

    @classmethod
    def fingerprint_inputs(cls, x):
        return float("nan")

    @classmethod
    def execute(cls, x):
        CALLS.append("Stamp")
        return io.NodeOutput(x)


class Split(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="TSplit", inputs=[io.Int.Input("n", default=3)],
                         outputs=[io.Int.Output(is_output_list=True)])

    @classmethod
    def execute(cls, n):
        return io.NodeOutput(list(range(n)))


class Gather(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="TGather", inputs=[io.Int.Input("values")], outputs=[io.String.Output()],
                         is_input_list=True)

    @classmethod
    def execute(cls, values):
        return io.NodeOutput(",".join(str(v) for v in values))


class Steps(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        from soundstage.headless.stubs import comfy_utils

        cls._utils = comfy_utils
        return io.Schema(node_id="TSteps", inputs=[io.Int.Input("n", default=3)], outputs=[io.Int.Output()])

    @classmethod
    def execute(cls, n):
        from soundstage.headless.stubs import comfy_utils

        bar = comfy_utils.ProgressBar(n)
        for _ in range(n):
            model_management.throw_exception_if_processing_interrupted()
            bar.update(1)
        return io.NodeOutput(n)


NODES = [Number, Add, Show, Pick, Choice, Boom, Stop, Stamp, Split, Gather, Steps]


@pytest.fixture
def runner(tmp_path):
    CALLS.clear()
    return Runner(input_dir=tmp_path / "in", output_dir=tmp_path / "out", nodes=NODES)


def _chain(value=2, b=3):
    return {
        "1": {"class_type": "TNumber", "inputs": {"value": value}},
        "2": {"class_type": "TAdd", "inputs": {"a": ["1", 0], "b": b}},
        "3": {"class_type": "TShow", "inputs": {"value": ["2", 0], "label": "sum="}},
    }


def _errors(exc_info, node_id):
    return [e["type"] for e in exc_info.value.response["node_errors"][node_id]["errors"]]


# -- execution ----------------------------------------------------------------------------------
def test_runs_ancestors_of_outputs_in_order(runner):
    prompt = _chain() | {"9": {"class_type": "TNumber", "inputs": {"value": 9}}}  # not feeding an output
    events = []
    result = runner.run(prompt, progress=lambda e, d: events.append((e, d.get("node"))))
    assert result.outputs == {"3": {"text": ["sum=5@3"]}}
    assert result.values["2"] == (5, "2+3")
    assert result.executed == ["1", "2", "3"] and "9" not in result.values
    assert CALLS == ["Number2", "Add", "Show"]
    assert [e for e, _ in events if e == "executing"] == ["executing"] * 3
    assert events[0][0] == "execution_start" and events[-1][0] == "execution_success"
    assert ("executed", "3") in events


def test_cache_skips_unchanged_subgraph(runner):
    runner.run(_chain(value=2, b=3))
    CALLS.clear()
    again = runner.run(_chain(value=2, b=3))
    assert again.executed == [] and set(again.cached) == {"1", "2", "3"}
    assert again.outputs == {"3": {"text": ["sum=5@3"]}}
    assert CALLS == []
    changed = runner.run(_chain(value=2, b=4))  # only the Add node's constant changed
    assert changed.executed == ["2", "3"] and changed.cached == ["1"]
    assert changed.outputs["3"] == {"text": ["sum=6@3"]}


def test_cache_keeps_latest_prompt_unless_lru(tmp_path):
    classic = Runner(nodes=NODES)
    classic.run(_chain(value=1))
    classic.run(_chain(value=2))
    assert classic.run(_chain(value=1)).executed == ["1", "2", "3"]  # the first prompt's outputs were dropped
    lru = Runner(nodes=NODES, cache_lru=10)
    lru.run(_chain(value=1))
    lru.run(_chain(value=2))
    assert lru.run(_chain(value=1)).executed == []


def test_identical_nodes_run_once(runner):
    prompt = _chain() | {"4": {"class_type": "TNumber", "inputs": {"value": 2}},
                         "5": {"class_type": "TShow", "inputs": {"value": ["4", 0], "label": ""}}}
    result = runner.run(prompt)
    assert CALLS.count("Number2") == 1 and "4" in result.cached
    assert result.outputs["5"] == {"text": ["2@5"]}


def test_fingerprint_nan_always_reruns(runner):
    prompt = {"1": {"class_type": "TStamp", "inputs": {"x": 4}},
              "2": {"class_type": "TShow", "inputs": {"value": ["1", 0], "label": ""}}}
    runner.run(prompt)
    second = runner.run(prompt)
    assert second.executed == ["1", "2"] and CALLS.count("Stamp") == 2


def test_lazy_inputs_evaluate_only_the_chosen_branch(runner):
    prompt = {
        "1": {"class_type": "TNumber", "inputs": {"value": 1}},
        "2": {"class_type": "TNumber", "inputs": {"value": 2}},
        "3": {"class_type": "TPick", "inputs": {"first": False, "a": ["1", 0], "b": ["2", 0]}},
        "4": {"class_type": "TShow", "inputs": {"value": ["3", 0], "label": ""}},
    }
    result = runner.run(prompt)
    assert result.values["3"] == (2,)
    assert "1" not in result.executed and CALLS == ["Number2", "Show"]


def test_output_lists_map_and_input_lists_gather(runner):
    prompt = {
        "1": {"class_type": "TSplit", "inputs": {"n": 3}},
        "2": {"class_type": "TAdd", "inputs": {"a": ["1", 0], "b": 10}},  # runs once per list item
        "3": {"class_type": "TGather", "inputs": {"values": ["2", 0]}},
        "4": {"class_type": "TShow", "inputs": {"value": ["3", 0], "label": ""}},
        "5": {"class_type": "TShow", "inputs": {"value": ["2", 0], "label": "#"}},
    }
    result = runner.run(prompt)
    assert result.values["1"] == ([0, 1, 2],)
    assert result.values["2"][0] == [10, 11, 12] and CALLS.count("Add") == 3
    assert result.values["3"] == ("10,11,12",)
    assert result.outputs["5"] == {"text": ["#10@5", "#11@5", "#12@5"]}  # ui lists are concatenated


def test_overrides_and_progress_events(runner):
    prompt = {"1": {"class_type": "TSteps", "inputs": {"n": 2}},
              "2": {"class_type": "TShow", "inputs": {"value": ["1", 0], "label": ""}}}
    events = []
    result = runner.run(prompt, overrides={"1.n": 4}, progress=lambda e, d: events.append((e, d)))
    assert result.values["1"] == (4,)
    progress = [(d["value"], d["max"], d["node"]) for e, d in events if e == "progress"]
    assert progress == [(1, 4, "1"), (2, 4, "1"), (3, 4, "1"), (4, 4, "1")]
    with pytest.raises(ValueError, match="no node 7"):
        runner.run(prompt, overrides={"7.n": 1})


def test_runtime_error_names_node_and_keeps_finished_work(runner):
    prompt = {"1": {"class_type": "TNumber", "inputs": {"value": 3}},
              "2": {"class_type": "TBoom", "inputs": {"x": ["1", 0]}},
              "3": {"class_type": "TShow", "inputs": {"value": ["2", 0], "label": ""}}}
    events = []
    with pytest.raises(NodeExecutionError) as info:
        runner.run(prompt, progress=lambda e, d: events.append((e, d)))
    err = info.value
    assert (err.node_id, err.class_type) == ("2", "TBoom")
    assert isinstance(err.exception, RuntimeError) and "boom at 3" in str(err)
    assert "node 2 (TBoom)" in str(err) and "RuntimeError: boom at 3" in err.traceback_text
    assert err.executed == ["1"]
    failure = [d for e, d in events if e == "execution_error"][0]
    assert failure["exception_type"] == "RuntimeError" and failure["node_type"] == "TBoom"
    CALLS.clear()
    with pytest.raises(NodeExecutionError):
        runner.run(prompt)
    assert CALLS == []  # the finished upstream node came from the cache


def test_interruption_stops_cleanly(runner):
    prompt = {"1": {"class_type": "TNumber", "inputs": {"value": 1}},
              "2": {"class_type": "TStop", "inputs": {"x": ["1", 0]}},
              "3": {"class_type": "TShow", "inputs": {"value": ["2", 0], "label": ""}}}
    events = []
    with pytest.raises(ExecutionInterrupted) as info:
        runner.run(prompt, progress=lambda e, d: events.append(e))
    assert info.value.node_id == "2" and info.value.executed == ["1"]
    assert isinstance(info.value.exception, model_management.InterruptProcessingException)
    assert "execution_interrupted" in events and "Show" not in CALLS
    assert not model_management.processing_interrupted()


def test_interrupt_before_run_is_cleared_and_callback_can_interrupt(runner):
    runner.interrupt()
    assert runner.run(_chain()).executed == ["1", "2", "3"]  # a new run starts uninterrupted, as in ComfyUI

    def stop_on_progress(event, data):
        if event == "progress" and data["value"] == 2:
            raise model_management.InterruptProcessingException()

    prompt = {"1": {"class_type": "TSteps", "inputs": {"n": 5}},
              "2": {"class_type": "TShow", "inputs": {"value": ["1", 0], "label": ""}}}
    with pytest.raises(ExecutionInterrupted):
        runner.run(prompt, progress=stop_on_progress)

    def interrupt_on_progress(event, data):
        if event == "progress" and data["value"] == 1:
            runner.interrupt()  # as a UI thread would; the next ProgressBar update stops the node

    seen = []
    with pytest.raises(ExecutionInterrupted) as info:
        runner.run({"1": {"class_type": "TSteps", "inputs": {"n": 6}},
                    "2": {"class_type": "TShow", "inputs": {"value": ["1", 0], "label": ""}}},
                   progress=lambda e, d: (seen.append(d["value"]) if e == "progress" else None,
                                          interrupt_on_progress(e, d)))
    assert info.value.node_id == "1" and seen == [1]


# -- validation (every ComfyUI error type) ------------------------------------------------------
def test_missing_node_type(runner):
    with pytest.raises(ValidationFailed) as info:
        runner.run({"1": {"class_type": "Nope", "inputs": {}, "_meta": {"title": "My nope"}}})
    error = info.value.response["error"]
    assert error["type"] == "missing_node_type" and "My nope" in error["message"]
    assert error["extra_info"] == {"node_id": "1", "class_type": "Nope", "node_title": "My nope"}
    assert info.value.response["node_errors"] == {}


def test_prompt_no_outputs(runner):
    with pytest.raises(ValidationFailed) as info:
        runner.run({"1": {"class_type": "TNumber", "inputs": {"value": 1}}})
    assert info.value.response["error"]["type"] == "prompt_no_outputs"


def test_required_input_missing(runner):
    prompt = _chain()
    del prompt["2"]["inputs"]["a"]
    with pytest.raises(ValidationFailed) as info:
        runner.run(prompt)
    response = info.value.response
    assert response["error"]["type"] == "prompt_outputs_failed_validation"
    assert _errors(info, "2") == ["required_input_missing"]
    assert response["node_errors"]["2"]["dependent_outputs"] == ["3"]
    assert response["node_errors"]["2"]["class_type"] == "TAdd"
    assert "3" not in response["node_errors"]  # downstream nodes carry no errors of their own


@pytest.mark.parametrize("link", [["1"], ["8", 0], ["1", 5]])
def test_bad_linked_input(runner, link):
    prompt = _chain()
    prompt["2"]["inputs"]["a"] = link
    with pytest.raises(ValidationFailed) as info:
        runner.run(prompt)
    assert _errors(info, "2") == ["bad_linked_input"]


def test_return_type_mismatch_and_unions(runner):
    prompt = _chain()
    prompt["4"] = {"class_type": "TAdd", "inputs": {"a": 1}}
    prompt["2"]["inputs"]["a"] = ["4", 1]  # STRING into INT
    with pytest.raises(ValidationFailed) as info:
        runner.run(prompt)
    error = info.value.response["node_errors"]["2"]["errors"][0]
    assert error["type"] == "return_type_mismatch" and error["details"] == "a, STRING != INT"
    # "*" accepts anything: Show's AnyType input takes the STRING.
    ok = {"4": {"class_type": "TAdd", "inputs": {"a": 1}},
          "5": {"class_type": "TShow", "inputs": {"value": ["4", 1], "label": ""}}}
    assert runner.run(ok).outputs["5"] == {"text": ["1+0@5"]}


def test_comma_union_types():
    from soundstage.headless.validation import types_compatible

    assert types_compatible("IMAGE", "IMAGE,MASK") and types_compatible("IMAGE,MASK", "MASK")
    assert not types_compatible("LATENT", "IMAGE,MASK")
    assert not types_compatible("IMAGE,LATENT", "IMAGE", strict=True)
    assert types_compatible("*", "AUDIO") and types_compatible("VIDEO", "*")


def test_invalid_input_type(runner):
    with pytest.raises(ValidationFailed) as info:
        runner.run(_chain(value="three"))
    assert _errors(info, "1") == ["invalid_input_type"]


def test_value_bounds_and_coercion(runner):
    with pytest.raises(ValidationFailed) as info:
        runner.run(_chain(value=-11))
    assert _errors(info, "1") == ["value_smaller_than_min"]
    with pytest.raises(ValidationFailed) as info:
        runner.run(_chain(value=11))
    assert _errors(info, "1") == ["value_bigger_than_max"]
    assert runner.run(_chain(value="4")).values["2"] == (7, "4+3")  # "4" coerces to INT like ComfyUI


def _choice(mode="fast", gain=1.0):
    return {"1": {"class_type": "TChoice", "inputs": {"mode": mode, "gain": gain}},
            "2": {"class_type": "TShow", "inputs": {"value": ["1", 0], "label": ""}}}


def test_value_not_in_list_is_skipped_when_node_validates_itself(runner):
    class Strict(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="TStrict", inputs=[io.Combo.Input("mode", options=["fast", "slow"])],
                             is_output_node=True)

        @classmethod
        def execute(cls, mode):
            return io.NodeOutput()

    strict = Runner(nodes=[Strict])
    with pytest.raises(ValidationFailed) as info:
        strict.run({"1": {"class_type": "TStrict", "inputs": {"mode": "medium"}}})
    error = info.value.response["node_errors"]["1"]["errors"][0]
    assert error["type"] == "value_not_in_list" and error["details"] == "mode: 'medium' not in ['fast', 'slow']"
    # TChoice's validate_inputs names `mode`, so ComfyUI leaves the combo check to the node.
    assert runner.run(_choice(mode="medium")).values["1"] == (1.0,)


def test_custom_validation_failed(runner):
    with pytest.raises(ValidationFailed) as info:
        runner.run(_choice(gain=13.0))
    errors = info.value.response["node_errors"]["1"]["errors"]
    assert {e["type"] for e in errors} == {"custom_validation_failed"}
    assert "gain - gain 13 is unlucky" in [e["details"] for e in errors]


def test_custom_validation_false(runner):
    class No(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="TNo", inputs=[io.Int.Input("x")], is_output_node=True)

        @classmethod
        def validate_inputs(cls, x):
            return x > 0

        @classmethod
        def execute(cls, x):
            return io.NodeOutput()

    with pytest.raises(ValidationFailed) as info:
        Runner(nodes=[No]).run({"1": {"class_type": "TNo", "inputs": {"x": 0}}})
    assert info.value.response["node_errors"]["1"]["errors"][0]["details"] == "x"


def test_dependency_cycle(runner):
    prompt = {"1": {"class_type": "TAdd", "inputs": {"a": ["2", 0]}},
              "2": {"class_type": "TAdd", "inputs": {"a": ["1", 0]}},
              "3": {"class_type": "TShow", "inputs": {"value": ["2", 0], "label": ""}}}
    with pytest.raises(ValidationFailed) as info:
        runner.run(prompt)
    kinds = {t for node in info.value.response["node_errors"].values() for t in [e["type"] for e in node["errors"]]}
    assert kinds == {"dependency_cycle"}


def test_exception_during_validation(runner):
    class Broken(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="TBroken", inputs=[io.Int.Input("x")], is_output_node=True)

        @classmethod
        def validate_inputs(cls, x):
            raise KeyError("no such thing")

        @classmethod
        def execute(cls, x):
            return io.NodeOutput()

    with pytest.raises(ValidationFailed) as info:
        Runner(nodes=[Broken]).run({"1": {"class_type": "TBroken", "inputs": {"x": 1}}})
    error = info.value.response["node_errors"]["1"]["errors"][0]
    assert error["type"] == "exception_during_validation"
    assert error["extra_info"]["exception_type"] == "KeyError"


def test_validation_failed_message_names_node(runner):
    with pytest.raises(ValidationFailed, match=r"node 1 \(TNumber\): Value 11 bigger than max of 10"):
        runner.run(_chain(value=11))


def test_ui_workflow_runs_with_hidden_prompt(runner):
    workflow = {
        "last_node_id": 2, "last_link_id": 1, "version": 0.4, "groups": [], "config": {}, "extra": {},
        "nodes": [
            {"id": 1, "type": "TNumber", "mode": 0, "inputs": [], "widgets_values": [6],
             "outputs": [{"name": "INT", "type": "INT", "links": [1]}]},
            {"id": 2, "type": "TShow", "mode": 0, "inputs": [{"name": "value", "type": "*", "link": 1}],
             "outputs": [], "widgets_values": ["n="]},
        ],
        "links": [[1, 1, 0, 2, 0, "INT"]],
    }
    result = runner.run(workflow)
    assert result.outputs == {"2": {"text": ["n=6@2"]}}
    assert result.prompt["2"]["inputs"] == {"value": ["1", 0], "label": "n="}


def test_async_execute_and_v1_node(runner):
    class Later(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="TLater", inputs=[io.Int.Input("x")], outputs=[io.Int.Output()])

        @classmethod
        async def execute(cls, x):
            return io.NodeOutput(x * 2)

    class LegacyShow:
        """A V1 node: INPUT_TYPES dict, FUNCTION name, hidden inputs passed as keyword arguments."""

        @classmethod
        def INPUT_TYPES(cls):  # noqa: N802
            return {"required": {"value": ("INT", {"default": 0})}, "hidden": {"node": "UNIQUE_ID"}}

        RETURN_TYPES = ()
        FUNCTION = "show"
        OUTPUT_NODE = True

        def show(self, value, node):
            return {"ui": {"text": [f"{value}@{node}"]}}

    mixed = Runner(nodes={"TLater": Later, "TLegacyShow": LegacyShow})
    result = mixed.run({"1": {"class_type": "TLater", "inputs": {"x": 21}},
                        "2": {"class_type": "TLegacyShow", "inputs": {"value": ["1", 0]}}})
    assert result.outputs == {"2": {"text": ["42@2"]}}


def test_registry_core_stand_ins_only_without_comfyui(monkeypatch):
    from soundstage import compat
    from soundstage.headless.registry import build_registry

    assert "SaveVideo" in build_registry(nodes=[])
    monkeypatch.setattr(compat, "IN_COMFYUI", True)
    assert build_registry(nodes=[Number]) == {"TNumber": Number}


def test_pack_load_failure_is_reported_not_fatal(monkeypatch):
    import soundstage

    async def broken_entrypoint():
        raise ImportError("optional dependency missing")

    monkeypatch.setattr(soundstage, "comfy_entrypoint", broken_entrypoint)
    runner = Runner(nodes=[Number, Show], include_pack=True)
    assert "optional dependency missing" in runner.load_errors[0]
    assert {"TNumber", "TShow", "LoadVideo"} <= set(runner.node_classes)
