"""Headless stand-in for ``comfy_api.latest.io``: node schemas, socket types and ``NodeOutput``.

Mirrors the subset of ComfyUI's ``comfy_api/latest/_io.py`` a node pack uses, including the V1
view (``INPUT_TYPES``, ``RETURN_TYPES``...) that ComfyUI derives from a V3 schema, because the
runner validates and executes through that view exactly as ComfyUI's executor does.
"""
from __future__ import annotations

import copy
import inspect
from collections import Counter
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class FolderType(str, Enum):
    input = "input"
    output = "output"
    temp = "temp"


class UploadType(str, Enum):
    image = "image_upload"
    audio = "audio_upload"
    video = "video_upload"
    model = "file_upload"


class NumberDisplay(str, Enum):
    number = "number"
    slider = "slider"


class RemoteOptions:
    def __init__(self, route: str, refresh_button: bool, control_after_refresh: str = "first",
                 timeout: int = None, max_retries: int = None, refresh: int = None):
        self.route = route
        self.refresh_button = refresh_button
        self.control_after_refresh = control_after_refresh
        self.timeout = timeout
        self.max_retries = max_retries
        self.refresh = refresh

    def as_dict(self):
        return prune_dict({
            "route": self.route, "refresh_button": self.refresh_button,
            "control_after_refresh": self.control_after_refresh, "timeout": self.timeout,
            "max_retries": self.max_retries, "refresh": self.refresh,
        })


def prune_dict(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


class classproperty:
    def __init__(self, fget):
        self.fget = fget

    def __get__(self, instance, owner):
        return self.fget(owner)


def _copy_class(cls: type) -> type:
    return type(cls.__name__, (cls,), {"__module__": cls.__module__, "__doc__": cls.__doc__})


class _ComfyType:
    Type = Any
    io_type: str = None


def comfytype(io_type: str, **kwargs):
    """Bind ``io_type`` to a ComfyType and give it private Input/Output classes (as ComfyUI does)."""
    def decorator(cls):
        if issubclass(cls, _ComfyType):
            new_cls = cls
            if getattr(new_cls, "Input", None) is not None:
                new_cls.Input = _copy_class(new_cls.Input)
            if getattr(new_cls, "Output", None) is not None:
                new_cls.Output = _copy_class(new_cls.Output)
        else:
            cls_dict = {k: v for k, v in cls.__dict__.items()
                        if k not in ("__dict__", "__weakref__", "__module__", "__doc__")}
            new_cls = type(cls.__name__, (cls, ComfyTypeIO), cls_dict)
            new_cls.__module__ = cls.__module__
            new_cls.__doc__ = cls.__doc__
        new_cls.io_type = io_type
        if getattr(new_cls, "Input", None) is not None:
            new_cls.Input.Parent = new_cls
        if getattr(new_cls, "Output", None) is not None:
            new_cls.Output.Parent = new_cls
        return new_cls
    return decorator


class _IO_V3:
    Parent: type[_ComfyType] = None

    def validate(self):
        pass

    @property
    def io_type(self):
        return self.Parent.io_type

    @property
    def Type(self):
        return self.Parent.Type


class Input(_IO_V3):
    def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                 extra_dict=None, raw_link: bool = None):
        self.id = id
        self.display_name = display_name
        self.optional = optional
        self.tooltip = tooltip
        self.lazy = lazy
        self.extra_dict = extra_dict if extra_dict is not None else {}
        self.rawLink = raw_link

    def as_dict(self):
        return prune_dict({
            "display_name": self.display_name, "optional": self.optional, "tooltip": self.tooltip,
            "lazy": self.lazy, "rawLink": self.rawLink,
        }) | prune_dict(self.extra_dict)

    def get_io_type(self):
        return self.io_type

    def get_all(self) -> list[Input]:
        return [self]


class WidgetInput(Input):
    def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                 default: Any = None, socketless: bool = None, widget_type: str = None, force_input: bool = None,
                 extra_dict=None, raw_link: bool = None):
        super().__init__(id, display_name, optional, tooltip, lazy, extra_dict, raw_link)
        self.default = default
        self.socketless = socketless
        self.widget_type = widget_type
        self.force_input = force_input

    def as_dict(self):
        return super().as_dict() | prune_dict({
            "default": self.default, "socketless": self.socketless,
            "widgetType": self.widget_type, "forceInput": self.force_input,
        })

    def get_io_type(self):
        return self.widget_type if self.widget_type is not None else super().get_io_type()


class Output(_IO_V3):
    def __init__(self, id: str = None, display_name: str = None, tooltip: str = None, is_output_list=False):
        self.id = id
        self.display_name = display_name
        self.tooltip = tooltip
        self.is_output_list = is_output_list

    def as_dict(self):
        return prune_dict({
            "display_name": self.display_name, "tooltip": self.tooltip, "is_output_list": self.is_output_list,
        })

    def get_io_type(self):
        return self.io_type


class ComfyTypeI(_ComfyType):
    class Input(Input):
        ...


class ComfyTypeIO(ComfyTypeI):
    class Output(Output):
        ...


def Custom(io_type: str) -> type[ComfyTypeIO]:
    """A ComfyType for a pack-defined socket type such as ``SOUNDSTAGE_MODEL``."""
    @comfytype(io_type=io_type)
    class CustomComfyType(ComfyTypeIO):
        ...
    return CustomComfyType


@comfytype(io_type="BOOLEAN")
class Boolean(ComfyTypeIO):
    Type = bool

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                     default: bool = None, label_on: str = None, label_off: str = None,
                     socketless: bool = None, force_input: bool = None, extra_dict=None, raw_link: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input,
                             extra_dict, raw_link)
            self.label_on = label_on
            self.label_off = label_off

        def as_dict(self):
            return super().as_dict() | prune_dict({"label_on": self.label_on, "label_off": self.label_off})


@comfytype(io_type="INT")
class Int(ComfyTypeIO):
    Type = int

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                     default: int = None, min: int = None, max: int = None, step: int = None,
                     control_after_generate: bool = None, display_mode: NumberDisplay = None,
                     socketless: bool = None, force_input: bool = None, extra_dict=None, raw_link: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input,
                             extra_dict, raw_link)
            self.min = min
            self.max = max
            self.step = step
            self.control_after_generate = control_after_generate
            self.display_mode = display_mode

        def as_dict(self):
            return super().as_dict() | prune_dict({
                "min": self.min, "max": self.max, "step": self.step,
                "control_after_generate": self.control_after_generate,
                "display": self.display_mode.value if self.display_mode else None,
            })


@comfytype(io_type="FLOAT")
class Float(ComfyTypeIO):
    Type = float

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                     default: float = None, min: float = None, max: float = None, step: float = None,
                     round: float = None, display_mode: NumberDisplay = None, socketless: bool = None,
                     force_input: bool = None, extra_dict=None, raw_link: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input,
                             extra_dict, raw_link)
            self.min = min
            self.max = max
            self.step = step
            self.round = round
            self.display_mode = display_mode

        def as_dict(self):
            return super().as_dict() | prune_dict({
                "min": self.min, "max": self.max, "step": self.step, "round": self.round,
                "display": self.display_mode,
            })


@comfytype(io_type="STRING")
class String(ComfyTypeIO):
    Type = str

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                     multiline=False, placeholder: str = None, default: str = None, dynamic_prompts: bool = None,
                     socketless: bool = None, force_input: bool = None, extra_dict=None, raw_link: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input,
                             extra_dict, raw_link)
            self.multiline = multiline
            self.placeholder = placeholder
            self.dynamic_prompts = dynamic_prompts

        def as_dict(self):
            return super().as_dict() | prune_dict({
                "multiline": self.multiline, "placeholder": self.placeholder,
                "dynamicPrompts": self.dynamic_prompts,
            })


@comfytype(io_type="COMBO")
class Combo(ComfyTypeIO):
    Type = str

    class Input(WidgetInput):
        def __init__(self, id: str, options: list[str] | list[int] | type[Enum] = None, display_name: str = None,
                     optional=False, tooltip: str = None, lazy: bool = None, default: str | int | Enum = None,
                     control_after_generate: bool = None, upload: UploadType = None,
                     image_folder: FolderType = None, remote: RemoteOptions = None, socketless: bool = None,
                     extra_dict=None, raw_link: bool = None):
            if isinstance(options, type) and issubclass(options, Enum):
                options = [v.value for v in options]
            if isinstance(default, Enum):
                default = default.value
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, None,
                             extra_dict, raw_link)
            self.multiselect = False
            self.options = options
            self.control_after_generate = control_after_generate
            self.upload = upload
            self.image_folder = image_folder
            self.remote = remote

        def as_dict(self):
            return super().as_dict() | prune_dict({
                "multiselect": self.multiselect,
                "options": self.options,
                "control_after_generate": self.control_after_generate,
                **({self.upload.value: True} if self.upload is not None else {}),
                "image_folder": self.image_folder.value if self.image_folder else None,
                "remote": self.remote.as_dict() if self.remote else None,
            })

    class Output(Output):
        def __init__(self, id: str = None, display_name: str = None, options: list[str] = None,
                     tooltip: str = None, is_output_list=False):
            super().__init__(id, display_name, tooltip, is_output_list)
            self.options = options if options is not None else []


@comfytype(io_type="COMBO")
class MultiCombo(ComfyTypeI):
    Type = list[str]

    class Input(Combo.Input):
        def __init__(self, id: str, options: list[str], display_name: str = None, optional=False,
                     tooltip: str = None, lazy: bool = None, default: list[str] = None, placeholder: str = None,
                     chip: bool = None, control_after_generate: bool = None, socketless: bool = None,
                     extra_dict=None, raw_link: bool = None):
            super().__init__(id, options, display_name, optional, tooltip, lazy, default, control_after_generate,
                             socketless=socketless, extra_dict=extra_dict, raw_link=raw_link)
            self.multiselect = True
            self.placeholder = placeholder
            self.chip = chip

        def as_dict(self):
            return super().as_dict() | prune_dict({
                "multi_select": self.multiselect, "placeholder": self.placeholder, "chip": self.chip,
            })


def _simple(io_type: str, name: str) -> type[ComfyTypeIO]:
    return comfytype(io_type=io_type)(type(name, (ComfyTypeIO,), {}))


Image = _simple("IMAGE", "Image")
Mask = _simple("MASK", "Mask")
Latent = _simple("LATENT", "Latent")
Conditioning = _simple("CONDITIONING", "Conditioning")
Sampler = _simple("SAMPLER", "Sampler")
Sigmas = _simple("SIGMAS", "Sigmas")
Noise = _simple("NOISE", "Noise")
Guider = _simple("GUIDER", "Guider")
Clip = _simple("CLIP", "Clip")
ControlNet = _simple("CONTROL_NET", "ControlNet")
Vae = _simple("VAE", "Vae")
Model = _simple("MODEL", "Model")
ClipVision = _simple("CLIP_VISION", "ClipVision")
ClipVisionOutput = _simple("CLIP_VISION_OUTPUT", "ClipVisionOutput")
StyleModel = _simple("STYLE_MODEL", "StyleModel")
UpscaleModel = _simple("UPSCALE_MODEL", "UpscaleModel")
Audio = _simple("AUDIO", "Audio")
Video = _simple("VIDEO", "Video")
LoraModel = _simple("LORA_MODEL", "LoraModel")
AudioEncoder = _simple("AUDIO_ENCODER", "AudioEncoder")
AudioEncoderOutput = _simple("AUDIO_ENCODER_OUTPUT", "AudioEncoderOutput")
AnyType = _simple("*", "AnyType")


@comfytype(io_type="COMFY_MULTITYPED_V3")
class MultiType:
    Type = Any

    class Input(Input):
        """An input accepting several types; its V1 type is the comma union ComfyUI validates against."""
        def __init__(self, id: str | Input, types: list, display_name: str = None, optional=False,
                     tooltip: str = None, lazy: bool = None, extra_dict=None, raw_link: bool = None):
            self.input_override = None
            if isinstance(id, Input):
                self.input_override = copy.copy(id)
                optional = id.optional if id.optional is True else optional
                tooltip = id.tooltip if id.tooltip is not None else tooltip
                display_name = id.display_name if id.display_name is not None else display_name
                lazy = id.lazy if id.lazy is not None else lazy
                id = id.id
                if isinstance(self.input_override, WidgetInput):
                    self.input_override.widget_type = self.input_override.get_io_type()
            super().__init__(id, display_name, optional, tooltip, lazy, extra_dict, raw_link)
            self._io_types = types

        @property
        def io_types(self) -> list:
            return [x if isinstance(x, type) else type(x) for x in self._io_types]

        def get_io_type(self):
            str_types = [x.io_type for x in self.io_types]
            if self.input_override is not None:
                str_types.insert(0, self.input_override.get_io_type())
            return ",".join(dict.fromkeys(str_types))

        def as_dict(self):
            if self.input_override is not None:
                return self.input_override.as_dict() | super().as_dict()
            return super().as_dict()


@comfytype(io_type="COMFY_DYNAMICCOMBO_V3")
class DynamicCombo(ComfyTypeI):
    """A combo whose chosen option brings its own inputs (ids ``<combo>.<input>`` in API prompts)."""
    Type = dict[str, Any]

    class Option:
        def __init__(self, key: str, inputs: list[Input]):
            self.key = key
            self.inputs = inputs

        def as_dict(self):
            return {"key": self.key, "inputs": create_input_dict_v1(self.inputs)}

    class Input(Input):
        def __init__(self, id: str, options: list, display_name: str = None, optional=False, tooltip: str = None,
                     lazy: bool = None, extra_dict=None):
            super().__init__(id, display_name, optional, tooltip, lazy, extra_dict)
            self.options = options

        def get_all(self) -> list[Input]:
            return [self]

        def as_dict(self):
            return super().as_dict() | {"options": [o.as_dict() for o in self.options]}

        def validate(self):
            for option in self.options:
                for inp in option.inputs:
                    inp.validate()


class Hidden(str, Enum):
    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"
    dynprompt = "DYNPROMPT"
    auth_token_comfy_org = "AUTH_TOKEN_COMFY_ORG"
    api_key_comfy_org = "API_KEY_COMFY_ORG"


class HiddenHolder:
    def __init__(self, unique_id: str = None, prompt: Any = None, extra_pnginfo: Any = None, dynprompt: Any = None,
                 auth_token_comfy_org: str = None, api_key_comfy_org: str = None, **kwargs):
        self.unique_id = unique_id
        self.prompt = prompt
        self.extra_pnginfo = extra_pnginfo
        self.dynprompt = dynprompt
        self.auth_token_comfy_org = auth_token_comfy_org
        self.api_key_comfy_org = api_key_comfy_org

    def __getattr__(self, key: str):
        return None

    @classmethod
    def from_dict(cls, d: dict | None) -> HiddenHolder:
        d = d or {}
        return cls(**{h.name: d.get(h, d.get(h.value)) for h in Hidden})


@dataclass
class NodeInfoV1:
    input: dict = None
    input_order: dict = None
    output: list = None
    output_is_list: list = None
    output_name: list = None
    output_tooltips: list = None
    name: str = None
    display_name: str = None
    description: str = None
    python_module: Any = None
    category: str = None
    output_node: bool = None
    deprecated: bool = None
    experimental: bool = None
    api_node: bool = None


@dataclass
class Schema:
    """Definition of a V3 node (same fields and defaults as ComfyUI's)."""
    node_id: str
    display_name: str = None
    category: str = "sd"
    inputs: list[Input] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)
    hidden: list[Hidden] = field(default_factory=list)
    description: str = ""
    is_input_list: bool = False
    is_output_node: bool = False
    is_deprecated: bool = False
    is_experimental: bool = False
    is_api_node: bool = False
    not_idempotent: bool = False
    enable_expand: bool = False
    # Newer ComfyUI fields, accepted so schemas written against them still load headless.
    search_aliases: list[str] = None
    is_dev_only: bool = False
    price_badge: Any = None
    essentials_category: str = None

    def validate(self):
        input_ids = [i.id for inp in self.inputs for i in inp.get_all()]
        output_ids = [o.id for o in self.outputs]
        issues = []
        if len(set(input_ids)) != len(input_ids):
            issues.append(f"Input ids must be unique, but {[k for k, c in Counter(input_ids).items() if c > 1]} are not.")
        if len(set(output_ids)) != len(output_ids):
            issues.append(f"Output ids must be unique, but {[k for k, c in Counter(output_ids).items() if c > 1]} are not.")
        both = set(input_ids) & set(output_ids)
        if both:
            issues.append(f"Ids must be unique between inputs and outputs, but {both} are not.")
        if issues:
            raise ValueError("\n".join(issues))
        for item in [*self.inputs, *self.outputs]:
            item.validate()

    def finalize(self):
        self.inputs = self.inputs or []
        self.outputs = self.outputs or []
        self.hidden = self.hidden or []
        if self.is_api_node:
            for h in (Hidden.auth_token_comfy_org, Hidden.api_key_comfy_org):
                if h not in self.hidden:
                    self.hidden.append(h)
        if self.is_output_node:
            for h in (Hidden.prompt, Hidden.extra_pnginfo):
                if h not in self.hidden:
                    self.hidden.append(h)
        for i, output in enumerate(self.outputs):
            if output.id is None:
                output.id = f"_{i}_{output.io_type}_"

    def get_v1_info(self, cls) -> NodeInfoV1:
        inputs = create_input_dict_v1(self.inputs)
        for hidden in self.hidden:
            inputs.setdefault("hidden", {})[hidden.name] = (hidden.value,)
        return NodeInfoV1(
            input=inputs,
            input_order={key: list(value.keys()) for key, value in inputs.items()},
            output=[o.io_type for o in self.outputs],
            output_is_list=[o.is_output_list for o in self.outputs],
            output_name=[o.display_name if o.display_name else o.io_type for o in self.outputs],
            output_tooltips=[o.tooltip if o.tooltip else None for o in self.outputs],
            name=self.node_id,
            display_name=self.display_name,
            description=self.description,
            python_module=getattr(cls, "RELATIVE_PYTHON_MODULE", None) or "nodes",
            category=self.category,
            output_node=self.is_output_node,
            deprecated=self.is_deprecated,
            experimental=self.is_experimental,
            api_node=self.is_api_node,
        )


def create_input_dict_v1(inputs: list[Input]) -> dict:
    d = {"required": {}}
    for i in inputs:
        add_to_dict_v1(i, d)
    return d


def add_to_dict_v1(i: Input, d: dict):
    key = "optional" if i.optional else "required"
    as_dict = i.as_dict()
    as_dict.pop("optional", None)
    d.setdefault(key, {})[i.id] = (i.get_io_type(), as_dict)


class _UIOutput:
    def as_dict(self) -> dict:
        raise NotImplementedError


class ExecutionBlocker:
    """Returned in place of a value to stop downstream nodes (as ComfyUI's graph_utils.ExecutionBlocker)."""
    def __init__(self, message: str | None):
        self.message = message


class NodeOutput:
    """A node's result: positional outputs plus an optional ``ui`` payload."""
    def __init__(self, *args: Any, ui: _UIOutput | dict = None, expand: dict = None, block_execution: str = None):
        self.args = args
        self.ui = ui
        self.expand = expand
        self.block_execution = block_execution

    @property
    def result(self):
        return self.args if len(self.args) > 0 else None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeOutput:
        result = data.get("result", ())
        if isinstance(result, ExecutionBlocker):
            return cls(block_execution=result.message)
        return cls(*result, ui=data.get("ui"), expand=data.get("expand"))

    def __getitem__(self, index) -> Any:
        return self.args[index]


class ComfyNode:
    """Base class of V3 nodes: subclasses define ``define_schema`` and ``execute`` classmethods."""
    RELATIVE_PYTHON_MODULE = None
    SCHEMA = None
    hidden: HiddenHolder = None

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError

    @classmethod
    def execute(cls, **kwargs) -> NodeOutput:
        raise NotImplementedError

    @classmethod
    def validate_inputs(cls, **kwargs) -> bool | str:
        raise NotImplementedError

    @classmethod
    def fingerprint_inputs(cls, **kwargs) -> Any:
        raise NotImplementedError

    @classmethod
    def check_lazy_status(cls, **kwargs) -> list[str]:
        return [name for name in kwargs if kwargs[name] is None]

    @classmethod
    def GET_BASE_CLASS(cls):
        return ComfyNode

    @classmethod
    def VALIDATE_CLASS(cls):
        if first_real_override(cls, "define_schema") is None:
            raise Exception(f"No define_schema function was defined for node class {cls.__name__}.")
        if first_real_override(cls, "execute") is None:
            raise Exception(f"No execute function was defined for node class {cls.__name__}.")

    @classproperty
    def FUNCTION(cls):  # noqa: N802
        return "EXECUTE_NORMALIZED_ASYNC" if inspect.iscoroutinefunction(cls.execute) else "EXECUTE_NORMALIZED"

    @classmethod
    def _normalize(cls, to_return) -> NodeOutput:
        if to_return is None:
            to_return = NodeOutput()
        elif isinstance(to_return, NodeOutput):
            pass
        elif isinstance(to_return, tuple):
            to_return = NodeOutput(*to_return)
        elif isinstance(to_return, dict):
            to_return = NodeOutput.from_dict(to_return)
        elif isinstance(to_return, ExecutionBlocker):
            to_return = NodeOutput(block_execution=to_return.message)
        else:
            raise Exception(f"Invalid return type from node: {type(to_return)}")
        if to_return.expand is not None and not cls.GET_SCHEMA().enable_expand:
            raise Exception(f"Node {cls.__name__} is not expandable, but expand included in NodeOutput; "
                            "developer should set enable_expand=True on node's Schema to allow this.")
        return to_return

    @classmethod
    def EXECUTE_NORMALIZED(cls, *args, **kwargs) -> NodeOutput:  # noqa: N802
        return cls._normalize(cls.execute(*args, **kwargs))

    @classmethod
    async def EXECUTE_NORMALIZED_ASYNC(cls, *args, **kwargs) -> NodeOutput:  # noqa: N802
        return cls._normalize(await cls.execute(*args, **kwargs))

    @classmethod
    def PREPARE_CLASS_CLONE(cls, hidden_inputs: dict | None) -> type[ComfyNode]:  # noqa: N802
        """A per-execution subclass carrying ``hidden``, so one run cannot leak state into another."""
        clone = type(cls.__name__, (cls,), {"__module__": cls.__module__})
        clone.hidden = HiddenHolder.from_dict(hidden_inputs)
        return clone

    @classmethod
    def FINALIZE_SCHEMA(cls) -> Schema:  # noqa: N802
        schema = cls.define_schema()
        schema.finalize()
        return schema

    @classmethod
    def GET_SCHEMA(cls) -> Schema:  # noqa: N802
        cls.VALIDATE_CLASS()
        schema = cls.FINALIZE_SCHEMA()
        schema.validate()
        cls.SCHEMA = schema
        return schema

    @classmethod
    def GET_NODE_INFO_V1(cls) -> dict[str, Any]:  # noqa: N802
        return asdict(cls.GET_SCHEMA().get_v1_info(cls))

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, dict]:  # noqa: N802
        return cls.FINALIZE_SCHEMA().get_v1_info(cls).input

    @classmethod
    def _v1_outputs(cls) -> dict:
        """RETURN_TYPES & co, derived once per class from the schema as ComfyUI's GET_SCHEMA does."""
        cached = cls.__dict__.get("_V1_OUTPUTS")
        if cached is None:
            schema = cls.GET_SCHEMA()
            outs = schema.outputs
            cached = {
                "RETURN_TYPES": [o.io_type for o in outs],
                "RETURN_NAMES": [o.display_name if o.display_name else o.io_type for o in outs],
                "OUTPUT_IS_LIST": [o.is_output_list for o in outs],
                "OUTPUT_TOOLTIPS": [o.tooltip if o.tooltip else None for o in outs],
                "OUTPUT_NODE": schema.is_output_node, "INPUT_IS_LIST": schema.is_input_list,
                "NOT_IDEMPOTENT": schema.not_idempotent, "CATEGORY": schema.category,
                "DESCRIPTION": schema.description, "DEPRECATED": schema.is_deprecated,
                "EXPERIMENTAL": schema.is_experimental,
            }
            cls._V1_OUTPUTS = cached
        return cached

    @classproperty
    def RETURN_TYPES(cls):  # noqa: N802
        return cls._v1_outputs()["RETURN_TYPES"]

    @classproperty
    def RETURN_NAMES(cls):  # noqa: N802
        return cls._v1_outputs()["RETURN_NAMES"]

    @classproperty
    def OUTPUT_IS_LIST(cls):  # noqa: N802
        return cls._v1_outputs()["OUTPUT_IS_LIST"]

    @classproperty
    def OUTPUT_TOOLTIPS(cls):  # noqa: N802
        return cls._v1_outputs()["OUTPUT_TOOLTIPS"]

    @classproperty
    def OUTPUT_NODE(cls):  # noqa: N802
        return cls._v1_outputs()["OUTPUT_NODE"]

    @classproperty
    def INPUT_IS_LIST(cls):  # noqa: N802
        return cls._v1_outputs()["INPUT_IS_LIST"]

    @classproperty
    def NOT_IDEMPOTENT(cls):  # noqa: N802
        return cls._v1_outputs()["NOT_IDEMPOTENT"]

    @classproperty
    def CATEGORY(cls):  # noqa: N802
        return cls._v1_outputs()["CATEGORY"]

    @classproperty
    def DESCRIPTION(cls):  # noqa: N802
        return cls._v1_outputs()["DESCRIPTION"]

    @classproperty
    def DEPRECATED(cls):  # noqa: N802
        return cls._v1_outputs()["DEPRECATED"]

    @classproperty
    def EXPERIMENTAL(cls):  # noqa: N802
        return cls._v1_outputs()["EXPERIMENTAL"]


def first_real_override(cls: type, name: str):
    base_func = getattr(ComfyNode, name).__func__
    for c in cls.mro()[:-1]:
        if c is ComfyNode:
            return None
        if name in c.__dict__:
            func = getattr(c, name)
            func = getattr(func, "__func__", func)
            if func is not base_func:
                return func
    return None


__all__ = [
    "FolderType", "UploadType", "RemoteOptions", "NumberDisplay", "comfytype", "Custom", "Input", "WidgetInput",
    "Output", "ComfyTypeI", "ComfyTypeIO", "Boolean", "Int", "Float", "String", "Combo", "MultiCombo", "Image",
    "Mask", "Latent", "Conditioning", "Sampler", "Sigmas", "Noise", "Guider", "Clip", "ControlNet", "Vae", "Model",
    "ClipVision", "ClipVisionOutput", "StyleModel", "UpscaleModel", "Audio", "Video", "LoraModel", "AudioEncoder",
    "AudioEncoderOutput", "AnyType", "MultiType", "DynamicCombo", "Hidden", "HiddenHolder", "NodeInfoV1", "Schema", "ComfyNode",
    "NodeOutput", "ExecutionBlocker", "add_to_dict_v1", "create_input_dict_v1",
]
