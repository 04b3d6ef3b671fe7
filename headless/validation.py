"""Prompt validation with ComfyUI's semantics and error shape (execution.py ``validate_prompt``).

The response of a failed validation is what ComfyUI's ``/prompt`` answers with:
``{"error": {type, message, details, extra_info}, "node_errors": {id: {errors, dependent_outputs, class_type}}}``.
Cycles are reported as ``dependency_cycle`` on the nodes that close them (ComfyUI only finds them
at execution time); every other error type, message and detail string follows ComfyUI.
"""
from __future__ import annotations

import inspect
import math
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any, Mapping

from .graph import upstream_order
from .schema import InputSpec, hidden_specs, input_specs
from .stubs._io import ComfyNode, ExecutionBlocker, first_real_override


@dataclass
class ValidationResult:
    valid: bool
    error: dict | None
    good_outputs: list[str]
    node_errors: dict[str, dict] = field(default_factory=dict)

    def response(self) -> dict:
        return {"error": self.error, "node_errors": self.node_errors}


def full_type_name(klass) -> str:
    module = klass.__module__
    return klass.__qualname__ if module == "builtins" else f"{module}.{klass.__qualname__}"


def types_compatible(received_type, input_type, strict: bool = False) -> bool:
    """ComfyUI's ``validate_node_input``: comma unions overlap, ``*`` matches anything."""
    if not received_type != input_type:
        return True
    if received_type == "*" or input_type == "*":
        return True
    if not isinstance(received_type, str) or not isinstance(input_type, str):
        return False
    received = {t.strip() for t in received_type.split(",")}
    wanted = {t.strip() for t in input_type.split(",")}
    return received.issubset(wanted) if strict else bool(received & wanted)


def sort_ids(ids) -> list[str]:
    return sorted(ids, key=lambda x: (0, int(x), "") if str(x).isdigit() else (1, 0, str(x)))


def custom_validator(node_class):
    """The node's own ``validate_inputs`` (V3) or ``VALIDATE_INPUTS`` (V1), if it defines one."""
    if isinstance(node_class, type) and issubclass(node_class, ComfyNode):
        return first_real_override(node_class, "validate_inputs") and "validate_inputs"
    return "VALIDATE_INPUTS" if hasattr(node_class, "VALIDATE_INPUTS") else None


def hidden_values(node_class, node_id: str, prompt: Mapping | None, extra_pnginfo) -> dict[str, Any]:
    """Only the hidden inputs the node declares, as ComfyUI's ``get_input_data`` fills them."""
    out = {}
    for name, kind in hidden_specs(node_class).items():
        if kind == "UNIQUE_ID":
            out[name] = node_id
        elif kind == "PROMPT":
            out[name] = prompt if prompt is not None else {}
        elif kind == "EXTRA_PNGINFO":
            out[name] = extra_pnginfo
        elif kind == "DYNPROMPT":
            out[name] = None
    return out


class _Validator:
    def __init__(self, prompt: dict, node_classes: Mapping[str, type], call_node):
        self.prompt = prompt
        self.node_classes = node_classes
        self.call_node = call_node
        self.validated: dict[str, tuple[bool, list, str]] = {}
        self.visiting: list[str] = []

    def validate_output(self, output_id: str) -> tuple[bool, list, str]:
        """``validate_node`` of an output, its ancestors first so that a long chain never recurses deeply."""
        order, cyclic = upstream_order(self.prompt, [output_id])
        if not cyclic:  # with a cycle the recursive walk below reports it exactly as it meets it
            for node_id in order[:-1]:
                try:
                    self.validate_node(node_id)
                except Exception:  # reported again, in its consumer's context, by the walk below
                    pass
        return self.validate_node(output_id)

    def validate_node(self, node_id: str) -> tuple[bool, list, str]:
        if node_id in self.validated:
            return self.validated[node_id]
        self.visiting.append(node_id)
        try:
            result = self._validate_node(node_id)
        finally:
            self.visiting.pop()
        self.validated[node_id] = result
        return result

    def _validate_node(self, node_id: str) -> tuple[bool, list, str]:
        node = self.prompt[node_id]
        inputs = node.setdefault("inputs", {})
        node_class = self.node_classes[node["class_type"]]
        specs = input_specs(node_class, inputs)
        validator_name = custom_validator(node_class)
        validate_args: list[str] = []
        validate_kwargs = False
        if validator_name is not None:
            spec = inspect.getfullargspec(getattr(node_class, validator_name))
            validate_args = spec.args
            validate_kwargs = spec.varkw is not None
        errors: list[dict] = []
        valid = True
        received_types: dict[str, Any] = {}
        for spec in specs:
            name = spec.name
            if name not in inputs:
                if spec.category == "required":
                    errors.append(_error("required_input_missing", "Required input is missing", name,
                                         {"input_name": name}))
                continue
            value = inputs[name]
            info = (spec.io_type, spec.options)
            if isinstance(value, list):
                problem = self._link_problem(value)
                if problem is not None:
                    errors.append(_error("bad_linked_input", problem, name,
                                         {"input_name": name, "input_config": info, "received_value": value}))
                    continue
                source_id, slot = value
                return_types = list(self.node_classes[self.prompt[source_id]["class_type"]].RETURN_TYPES)
                received = return_types[slot]
                received_types[name] = received
                any_enum = received == [] and isinstance(spec.io_type, (list, tuple))
                if ("input_types" not in validate_args and not types_compatible(received, spec.validation_type)
                        and not any_enum):
                    errors.append(_error(
                        "return_type_mismatch", "Return type mismatch between linked nodes",
                        f"{name}, {received} != {spec.validation_type}",
                        {"input_name": name, "input_config": info, "received_type": received, "linked_node": value}))
                    continue
                if source_id in self.visiting:
                    cycle = self.visiting[self.visiting.index(source_id):]
                    errors.append(_error(
                        "dependency_cycle", "Dependency cycle detected",
                        f"{name}: " + " -> ".join(cycle + [source_id]),
                        {"input_name": name, "linked_node": value, "cycle": cycle}))
                    continue
                try:
                    if self.validate_node(source_id)[0] is False:
                        valid = False
                except Exception as ex:
                    valid = False
                    typ, _, tb = sys.exc_info()
                    self.validated[source_id] = (False, [_error(
                        "exception_during_inner_validation", "Exception when validating inner node", str(ex),
                        {"input_name": name, "input_config": info, "exception_message": str(ex),
                         "exception_type": full_type_name(typ), "traceback": traceback.format_tb(tb),
                         "linked_node": value})], source_id)
                continue
            error = self._check_constant(spec, inputs, name in validate_args)
            if error is not None:
                errors.append(error)
        if validator_name is not None and (validate_args or validate_kwargs):
            errors.extend(self._custom_validation(node_id, node_class, validator_name, specs, validate_args,
                                                  validate_kwargs, received_types))
        if errors or valid is not True:
            return (False, errors, node_id)
        return (True, [], node_id)

    def _link_problem(self, value: list) -> str | None:
        if len(value) != 2:
            return "Bad linked input, must be a length-2 list of [node_id, slot_index]"
        source_id, slot = value
        if not isinstance(source_id, str) or source_id not in self.prompt:
            return f"Bad linked input, node {source_id} does not exist in the prompt"
        source_class = self.node_classes.get(self.prompt[source_id].get("class_type"))
        if source_class is None:
            return f"Bad linked input, node {source_id} has an unknown class"
        if not isinstance(slot, int) or isinstance(slot, bool) or not 0 <= slot < len(list(source_class.RETURN_TYPES)):
            return f"Bad linked input, node {source_id} has no output slot {slot}"
        return None

    def _check_constant(self, spec: InputSpec, inputs: dict, self_validated: bool) -> dict | None:
        name = spec.name
        value = inputs[name]
        info = (spec.io_type, spec.options)
        input_type = spec.validation_type
        try:
            # A dict {"__value__": v} carries a list-valued widget, since bare lists mean links.
            if isinstance(value, dict) and "__value__" in value:
                value = value["__value__"]
                inputs[name] = value
            if input_type == "INT":
                value = int(value)
            elif input_type == "FLOAT":
                value = float(value)
            elif input_type == "STRING":
                value = str(value)
            elif input_type == "BOOLEAN":
                value = bool(value)
            if input_type == "FLOAT" and not math.isfinite(value):
                raise ValueError("NaN and infinite values are not allowed")
            inputs[name] = value
        except Exception as ex:
            return _error("invalid_input_type", f"Failed to convert an input value to a {input_type} value",
                          f"{name}, {value}, {ex}",
                          {"input_name": name, "input_config": info, "received_value": value,
                           "exception_message": str(ex)})
        if self_validated:
            return None
        if "min" in spec.options and value < spec.options["min"]:
            return _error("value_smaller_than_min", f"Value {value} smaller than min of {spec.options['min']}", name,
                          {"input_name": name, "input_config": info, "received_value": value})
        if "max" in spec.options and value > spec.options["max"]:
            return _error("value_bigger_than_max", f"Value {value} bigger than max of {spec.options['max']}", name,
                          {"input_name": name, "input_config": info, "received_value": value})
        options = spec.combo_options
        if options is not None and value not in options:
            big = len(options) > 20
            list_info = f"(list of length {len(options)})" if big else str(options)
            return _error("value_not_in_list", "Value not in list", f"{name}: '{value}' not in {list_info}",
                          {"input_name": name, "input_config": None if big else info, "received_value": value})
        return None

    def _custom_validation(self, node_id, node_class, validator_name, specs, validate_args, validate_kwargs,
                           received_types) -> list[dict]:
        inputs = self.prompt[node_id]["inputs"]
        input_data = {}
        for spec in specs:
            if spec.name in inputs:
                value = inputs[spec.name]
                # Linked inputs are not known at validation time; ComfyUI passes them as None.
                input_data[spec.name] = (None,) if isinstance(value, list) else [value]
        filtered = {k: v for k, v in input_data.items() if k in validate_args or validate_kwargs}
        if "input_types" in validate_args:
            filtered["input_types"] = [received_types]
        results = self.call_node(node_id, node_class, validator_name, filtered, specs, allow_interrupt=False)
        errors = []
        for name in filtered:
            for result in results:
                if result is not True and not isinstance(result, ExecutionBlocker):
                    details = name if result is False else f"{name} - {result}"
                    errors.append(_error("custom_validation_failed", "Custom validation failed for node", details,
                                         {"input_name": name}))
        return errors


def _error(kind: str, message: str, details: str, extra_info: dict) -> dict:
    return {"type": kind, "message": message, "details": details, "extra_info": extra_info}


def validate_prompt(prompt: dict, node_classes: Mapping[str, type], call_node,
                    partial_execution_list: list[str] | None = None) -> ValidationResult:
    """Validate (and coerce widget values in) ``prompt`` in place.

    ``call_node(node_id, node_class, function_name, input_data, specs, allow_interrupt)`` maps a node
    function over list inputs the way execution does; the runner supplies it.
    """
    outputs = []
    for node_id, node in prompt.items():
        title = (node.get("_meta") or {}).get("title")
        if "class_type" not in node:
            return ValidationResult(False, _error(
                "missing_node_type",
                f"Node '{title or f'ID #{node_id}'}' has no class_type. The workflow may be corrupted or a custom "
                "node is missing.", f"Node ID '#{node_id}'",
                {"node_id": node_id, "class_type": None, "node_title": title}), [], {})
        node_class = node_classes.get(node["class_type"])
        if node_class is None:
            return ValidationResult(False, _error(
                "missing_node_type",
                f"Node '{title or node['class_type']}' not found. The custom node may not be installed.",
                f"Node ID '#{node_id}'",
                {"node_id": node_id, "class_type": node["class_type"], "node_title": title}), [], {})
        if getattr(node_class, "OUTPUT_NODE", False) is True:
            if partial_execution_list is None or node_id in partial_execution_list:
                outputs.append(node_id)
    if not outputs:
        return ValidationResult(False, _error("prompt_no_outputs", "Prompt has no outputs", "", {}), [], {})

    validator = _Validator(prompt, node_classes, call_node)
    good_outputs: list[str] = []
    failures: list[tuple[str, list]] = []
    node_errors: dict[str, dict] = {}
    for output_id in sort_ids(outputs):
        try:
            valid, reasons, _ = validator.validate_output(output_id)
        except Exception as ex:
            typ, _, tb = sys.exc_info()
            valid = False
            reasons = [_error("exception_during_validation", "Exception when validating node", str(ex),
                              {"exception_type": full_type_name(typ), "traceback": traceback.format_tb(tb)})]
            validator.validated[output_id] = (False, reasons, output_id)
        if valid is True:
            good_outputs.append(output_id)
            continue
        failures.append((output_id, reasons))
        for node_id, (node_valid, node_reasons, _) in validator.validated.items():
            # Downstream nodes of a broken one are invalid without errors of their own; ComfyUI hides them.
            if node_valid is not True and node_reasons:
                if node_id not in node_errors:
                    node_errors[node_id] = {"errors": node_reasons, "dependent_outputs": [],
                                            "class_type": prompt[node_id]["class_type"]}
                node_errors[node_id]["dependent_outputs"].append(output_id)
    if not failures:
        return ValidationResult(True, None, good_outputs, node_errors)
    return ValidationResult(bool(good_outputs), outputs_failed_error(failures, node_errors), good_outputs, node_errors)


def outputs_failed_error(failures: list[tuple[str, list]], node_errors: dict) -> dict:
    lines = []
    extra_info: dict[str, Any] = {}
    for _, errors in failures:
        for error in errors:
            lines.append(f"{error['message']}: {error['details']}")
            info = error.get("extra_info") or {}
            for key in ("exception_type", "traceback"):
                if key in info and key not in extra_info:
                    extra_info[key] = info[key]
    extra_info.setdefault("exception_type", "ValidationError")
    extra_info.setdefault("traceback", [])
    if node_errors:
        extra_info["node_errors"] = node_errors
    return _error("prompt_outputs_failed_validation", "Prompt outputs failed validation", "\n".join(lines), extra_info)
