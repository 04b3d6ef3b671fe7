"""A node class's inputs as ComfyUI's executor and frontend see them (the V1 ``INPUT_TYPES`` view).

Dynamic combos are flattened for the chosen option: the combo itself plus that option's inputs
named ``<combo>.<input>``, as ComfyUI does when it finalises inputs against the live values.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO", DYNAMIC_COMBO}
# The frontend gives these INT inputs a control widget even when the schema does not ask for one.
SEED_NAMES = {"seed", "noise_seed"}
CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize", "increment-wrap"}
# Extra frontend widgets an upload combo brings (upload button; audio also gets its player).
UPLOAD_EXTRA_WIDGETS = {"image_upload": 1, "video_upload": 1, "audio_upload": 2}


@dataclass
class InputSpec:
    name: str
    io_type: Any
    options: dict = field(default_factory=dict)
    category: str = "required"
    parent: str | None = None  # the dynamic combo that brought this input in

    @property
    def is_widget(self) -> bool:
        if self.options.get("forceInput"):
            return False
        if self.options.get("widgetType") in WIDGET_TYPES:  # e.g. a MultiType input built around a widget
            return True
        return isinstance(self.io_type, (list, tuple)) or self.io_type in WIDGET_TYPES

    @property
    def has_control_widget(self) -> bool:
        flag = self.options.get("control_after_generate")
        if flag is not None:
            return bool(flag)
        return self.io_type == "INT" and self.name in SEED_NAMES

    @property
    def upload_extra(self) -> int:
        return sum(n for key, n in UPLOAD_EXTRA_WIDGETS.items() if self.options.get(key))

    @property
    def combo_options(self) -> list | None:
        if isinstance(self.io_type, (list, tuple)):
            return list(self.io_type)
        if self.io_type == "COMBO":
            return list(self.options.get("options", []))
        if self.io_type == DYNAMIC_COMBO:
            return [o["key"] for o in self.options.get("options", [])]
        return None

    @property
    def validation_type(self):
        """The type compared against linked outputs and used for value coercion."""
        return "COMBO" if self.io_type == DYNAMIC_COMBO else self.io_type

    @property
    def lazy(self) -> bool:
        return bool(self.options.get("lazy"))

    @property
    def raw_link(self) -> bool:
        return bool(self.options.get("rawLink"))


def _entry(value) -> tuple[Any, dict]:
    io_type = value[0]
    options = value[1] if len(value) > 1 and isinstance(value[1], dict) else {}
    return io_type, options


def input_specs(node_class, live_inputs: Mapping[str, Any] | None = None) -> list[InputSpec]:
    """Required then optional inputs in schema order, dynamic combos expanded by ``live_inputs``."""
    return expand_specs(node_class.INPUT_TYPES(), live_inputs or {})


def expand_specs(input_types: dict, live_inputs: Mapping[str, Any], prefix: str | None = None) -> list[InputSpec]:
    specs: list[InputSpec] = []
    for category in ("required", "optional"):
        for name, value in (input_types.get(category) or {}).items():
            io_type, options = _entry(value)
            full = f"{prefix}.{name}" if prefix else name
            spec = InputSpec(full, io_type, options, category, parent=prefix)
            specs.append(spec)
            if io_type == DYNAMIC_COMBO:
                specs.extend(dynamic_children(spec, live_inputs.get(full)))
    return specs


def dynamic_children(spec: InputSpec, chosen: Any) -> list[InputSpec]:
    options = spec.options.get("options", [])
    if not options:
        return []
    selected = next((o for o in options if o["key"] == chosen), None)
    if selected is None:
        return []
    children = expand_specs(selected["inputs"], {}, prefix=spec.name)
    if spec.category == "optional":
        for child in children:
            child.category = "optional"
    return children


def hidden_specs(node_class) -> dict[str, str]:
    """Hidden input name -> kind (``UNIQUE_ID``, ``PROMPT``, ``EXTRA_PNGINFO``...)."""
    hidden = node_class.INPUT_TYPES().get("hidden") or {}
    return {name: (value[0] if isinstance(value, (tuple, list)) else value) for name, value in hidden.items()}


def nest_dynamic(values: dict[str, Any], specs: list[InputSpec]) -> dict[str, Any]:
    """Turn ``{"format": "mp3", "format.quality": "V0"}`` into ``{"format": {"format": "mp3", "quality": "V0"}}``."""
    dynamic = {s.name for s in specs if s.io_type == DYNAMIC_COMBO}
    if not dynamic:
        return values
    out: dict[str, Any] = {}
    for key, value in values.items():
        parts = key.split(".")
        if len(parts) == 1 and key not in dynamic:
            out[key] = value
            continue
        if len(parts) == 1:
            parts = [key, key]
        node = out
        for part in parts[:-1]:
            existing = node.get(part)
            if not isinstance(existing, dict):
                existing = {}
                node[part] = existing
            node = existing
        node[parts[-1]] = value
    return out
