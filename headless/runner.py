"""Execute ComfyUI workflows without ComfyUI, with the executor's semantics.

Only ancestors of output nodes run, in dependency order; lazy inputs are evaluated when
``check_lazy_status`` asks for them; list inputs/outputs are mapped and merged as ComfyUI does;
outputs are cached under ComfyUI-style keys so an unchanged subgraph is not run twice by the
same ``Runner``. Progress reaches ``progress(event, data)`` with the event names of ComfyUI's
websocket (execution_start, execution_cached, executing, progress, executed, execution_error,
execution_interrupted, execution_success).

Unlike ComfyUI's server, which runs the outputs that did validate and reports the others, a run
is refused (``ValidationFailed``) when any output fails validation: headless, nobody is watching
for the partial report.

    runner = Runner(input_dir="in", output_dir="out", models_dir="models")
    result = runner.run("workflows/dub.json", overrides={"12.seed": 7})
    result.outputs["9"]  # {"images": [{"filename": ..., "subfolder": ..., "type": "output"}], ...}
"""
from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch

from .cache import CacheEntry, OutputCache, Signatures
from .document import MalformedWorkflow, check_document
from .graph import is_link
from .registry import build_registry, run_coroutine
from .schema import InputSpec, hidden_specs, input_specs, nest_dynamic
from .stubs import _run, comfy_utils, model_management
from .stubs._io import ComfyNode, ExecutionBlocker, first_real_override
from .validation import full_type_name, hidden_values, sort_ids, validate_prompt
from .workflow import WorkflowConversionError, load_json, to_prompt

log = logging.getLogger("soundstage.headless")

ProgressCallback = Callable[[str, dict], None]


class RunnerError(Exception):
    """Base of the errors a run raises."""


class ValidationFailed(RunnerError):
    """The prompt did not validate; ``response`` is ComfyUI's ``/prompt`` error body."""

    def __init__(self, response: dict):
        self.response = response
        error = response.get("error") or {}
        lines = [f"{error.get('message', 'validation failed')}"]
        for node_id, entry in (response.get("node_errors") or {}).items():
            for err in entry["errors"]:
                lines.append(f"  node {node_id} ({entry['class_type']}): {err['message']}: {err['details']}")
        if error.get("details") and len(lines) == 1:
            lines.append(f"  {error['details']}")
        super().__init__("\n".join(lines))


class NodeExecutionError(RunnerError):
    """A node raised while running; the run stopped after it."""

    def __init__(self, node_id: str, class_type: str, exception: BaseException, traceback_text: str,
                 executed: list[str] | None = None):
        self.node_id = node_id
        self.class_type = class_type
        self.exception = exception
        self.traceback_text = traceback_text
        self.executed = executed or []
        super().__init__(f"node {node_id} ({class_type}) failed: {type(exception).__name__}: {exception}")


class ExecutionInterrupted(NodeExecutionError):
    """The run was interrupted (``InterruptProcessingException``) while node ``node_id`` was due."""

    def __init__(self, node_id: str, class_type: str, exception: BaseException, executed: list[str] | None = None):
        super().__init__(node_id, class_type, exception, "", executed)
        self.args = (f"interrupted at node {node_id} ({class_type})",)


@dataclass
class RunResult:
    outputs: dict[str, dict] = field(default_factory=dict)  # node id -> merged ui payload
    values: dict[str, tuple] = field(default_factory=dict)  # node id -> one value per output slot
    executed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    prompt: dict = field(default_factory=dict)


class Runner:
    """Runs workflows headless. ``nodes`` (classes or ``{node_id: class}``) replaces the pack's nodes
    unless ``include_pack=True``; ComfyUI core stand-ins are always available. ``cache_lru=N`` keeps
    outputs of earlier prompts too (default: only the latest prompt's, like ComfyUI).

    Each runner owns its folders, device and interrupt flag (nothing a run needs is module-level), so
    several runners may work at once in several threads. Folders not given fall back to ComfyUI's
    process-wide settings (``folder_paths.set_*`` or the SOUNDSTAGE_*_DIR variables)."""

    def __init__(self, input_dir=None, output_dir=None, models_dir=None, device=None, nodes=None,
                 include_pack: bool | None = None, progress: ProgressCallback | None = None, cache_lru: int = 0):
        self.input_dir = os.fspath(input_dir) if input_dir is not None else None
        self.output_dir = os.fspath(output_dir) if output_dir is not None else None
        self.models_dir = os.fspath(models_dir) if models_dir is not None else None
        self.device = device if device is not None else os.environ.get("SOUNDSTAGE_DEVICE") or None
        self.progress = progress
        self.load_errors: list[str] = []
        self._state = _run.RunState(
            input_dir=self.input_dir, output_dir=self.output_dir,
            temp_dir=os.path.join(self.output_dir, "temp") if self.output_dir is not None else None,
            models_dir=self.models_dir, device=self.device)
        self.node_classes = build_registry(nodes, include_pack, self.load_errors)
        self.cache = OutputCache(lru=cache_lru)

    # -- public API -------------------------------------------------------------------------------
    def prompt_for(self, workflow, overrides: Mapping[str, Any] | None = None) -> tuple[dict, dict | None]:
        """The API prompt (and extra_pnginfo) a workflow, prompt or path turns into, overrides applied.

        A document of the wrong shape raises ValidationFailed in ComfyUI's ``invalid_prompt`` shape, with
        the path of the bad element (``nodes[3].inputs``)."""
        try:
            data = load_json(workflow)
            check_document(data)
            prompt, extra_pnginfo = to_prompt(data, self.node_classes)
        except MalformedWorkflow as exc:
            raise ValidationFailed(exc.response()) from None
        except WorkflowConversionError as exc:
            raise ValidationFailed(MalformedWorkflow("", str(exc)).response()) from None
        _normalize_links(prompt)
        for key, value in (overrides or {}).items():
            node_id, sep, input_name = str(key).partition(".")
            if not sep or not input_name:
                raise ValueError(f"override {key!r}: expected 'NODE_ID.INPUT'")
            if node_id not in prompt:
                raise ValueError(f"override {key!r}: the workflow has no node {node_id}")
            prompt[node_id].setdefault("inputs", {})[input_name] = value
        return prompt, extra_pnginfo

    def validate(self, workflow, overrides: Mapping[str, Any] | None = None):
        """Validate without running; raises ValidationFailed. Returns (prompt, good output ids)."""
        with _run.installed(self._state):
            prompt, extra_pnginfo = self.prompt_for(workflow, overrides)
            return prompt, self._validate(prompt, extra_pnginfo)

    def run(self, workflow, overrides: Mapping[str, Any] | None = None,
            progress: ProgressCallback | None = None, output_dir=None) -> RunResult:
        """Run a workflow; ``output_dir`` sends this run's saves to another folder (a batch stages each
        item apart) while models, cache and interrupt flag stay the runner's own."""
        progress = progress or self.progress
        self._state.interrupted.clear()  # as ComfyUI: a new prompt starts uninterrupted
        state = self._state if output_dir is None else dataclasses.replace(self._state, output_dir=os.fspath(output_dir))
        with _run.installed(state):
            prompt, extra_pnginfo = self.prompt_for(workflow, overrides)
            outputs = self._validate(prompt, extra_pnginfo)
            return _Execution(self, prompt, extra_pnginfo, progress).run(outputs)

    def interrupt(self) -> None:
        """Ask this runner's workflow to stop at the next node or step boundary (safe from any thread)."""
        self._state.interrupted.set()

    def clear_cache(self) -> None:
        self.cache.clear()

    # -- internals --------------------------------------------------------------------------------
    def _validate(self, prompt: dict, extra_pnginfo) -> list[str]:
        def call(node_id, node_class, func, data, specs, allow_interrupt):
            return map_node_over_list(node_class, func, data, specs,
                                      hidden_values(node_class, node_id, prompt, extra_pnginfo), allow_interrupt)

        result = validate_prompt(prompt, self.node_classes, call)
        if result.error is not None:
            raise ValidationFailed(result.response())
        return result.good_outputs


def _normalize_links(prompt: dict) -> None:
    """Hand-written API prompts may use integer node ids in links; ComfyUI's are strings."""
    for node in prompt.values():
        inputs = node.get("inputs") or {}
        for name, value in inputs.items():
            if (isinstance(value, list) and len(value) == 2 and isinstance(value[0], int)
                    and not isinstance(value[0], bool) and isinstance(value[1], int) and str(value[0]) in prompt):
                inputs[name] = [str(value[0]), value[1]]


def _is_v3(node_class) -> bool:
    return isinstance(node_class, type) and issubclass(node_class, ComfyNode)


def map_node_over_list(node_class, func: str, input_data: dict[str, list], specs: list[InputSpec],
                       hidden: dict[str, Any], allow_interrupt: bool, obj=None) -> list:
    """Call ``func`` once per list index (or once with whole lists for INPUT_IS_LIST nodes), as ComfyUI does."""
    input_is_list = bool(getattr(node_class, "INPUT_IS_LIST", False))
    max_len = max((len(v) for v in input_data.values()), default=0)
    if _is_v3(node_class):
        target = node_class.PREPARE_CLASS_CLONE({_hidden_kind(node_class, k): v for k, v in hidden.items()})
        extra = {}
    else:
        target = obj if obj is not None else node_class()
        extra = _accepted(getattr(target, func), hidden)

    def call(kwargs):
        if allow_interrupt:
            model_management.throw_exception_if_processing_interrupted()
        blocker = _find_blocker(kwargs, input_is_list)
        if blocker is not None:
            return blocker
        kwargs = nest_dynamic(dict(kwargs), specs) | extra
        value = getattr(target, func)(**kwargs)
        if inspect.isawaitable(value):
            value = run_coroutine(value)
        return value

    if input_is_list:
        return [call(input_data)]
    if max_len == 0:
        return [call({})]
    return [call({k: v[i if len(v) > i else -1] for k, v in input_data.items()}) for i in range(max_len)]


def _accepted(function, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The V1 hidden inputs a function can take (ComfyUI passes them to V1 nodes as keyword arguments)."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return dict(kwargs)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return dict(kwargs)
    return {k: v for k, v in kwargs.items() if k in parameters}


def _hidden_kind(node_class, name: str) -> str:
    return hidden_specs(node_class).get(name, name)


def _find_blocker(kwargs: dict, input_is_list: bool):
    for value in kwargs.values():
        if input_is_list and isinstance(value, (list, tuple)):
            value = next((e for e in value if isinstance(e, ExecutionBlocker)), value)
        if isinstance(value, ExecutionBlocker):
            return value
    return None


class _Execution:
    """One run of one prompt."""

    def __init__(self, runner: Runner, prompt: dict, extra_pnginfo, progress: ProgressCallback | None):
        self.runner = runner
        self.prompt = prompt
        self.extra_pnginfo = extra_pnginfo
        self.progress = progress
        self.classes = runner.node_classes
        self.results: dict[str, CacheEntry] = {}
        self.executed: list[str] = []
        self.cached: list[str] = []
        self.current_node: str | None = None
        self.objects: dict[str, Any] = {}
        self.signatures = Signatures(prompt, self.classes, self._fingerprint, _keeps_identity)

    def emit(self, event: str, data: dict) -> None:
        if self.progress is not None:
            self.progress(event, data)

    def run(self, outputs: list[str]) -> RunResult:
        previous_hook = comfy_utils.PROGRESS_BAR_HOOK
        comfy_utils.set_progress_bar_global_hook(self._progress_hook)
        try:
            with torch.inference_mode():
                self.emit("execution_start", {})
                needed = self._ancestors(outputs)
                for node_id in sort_ids(needed):
                    entry = self.runner.cache.get(self.signatures.key(node_id))
                    if entry is not None:
                        self.results[node_id] = entry
                        self.cached.append(node_id)
                self.emit("execution_cached", {"nodes": list(self.cached)})
                self._execute_outputs(outputs)
                self.emit("execution_success", {})
        finally:
            comfy_utils.set_progress_bar_global_hook(previous_hook)
            self.runner.cache.retain(self.signatures.key(n) for n in self.prompt if n in self.signatures._keys)
        return self._result()

    def _result(self) -> RunResult:
        result = RunResult(executed=list(self.executed), cached=list(self.cached), prompt=self.prompt)
        for node_id in sort_ids(self.results):
            entry = self.results[node_id]
            if entry.ui:
                result.outputs[node_id] = entry.ui
            is_list = list(getattr(self.classes[self.prompt[node_id]["class_type"]], "OUTPUT_IS_LIST", []) or [])
            values = []
            for slot, items in enumerate(entry.outputs):
                as_list = slot < len(is_list) and is_list[slot]
                values.append(items[0] if (len(items) == 1 and not as_list) else items)
            result.values[node_id] = tuple(values)
        return result

    def _progress_hook(self, value, total, preview, node_id=None, **kwargs):
        # ComfyUI's server hook checks for interruption first, so every ProgressBar update is a stop point.
        model_management.throw_exception_if_processing_interrupted()
        if self.progress is None:
            if comfy_utils.PROGRESS_BAR_ENABLED:
                comfy_utils.print_progress_bar(value, total)
            return
        self.emit("progress", {"value": value, "max": total, "node": node_id or self.current_node})

    # -- graph ------------------------------------------------------------------------------------
    def _links(self, node_id: str, include_lazy: bool = True) -> list[tuple[str, str, int]]:
        node = self.prompt[node_id]
        specs = {s.name: s for s in input_specs(self.classes[node["class_type"]], node.get("inputs", {}))}
        links = []
        for name, value in node.get("inputs", {}).items():
            if is_link(value, self.prompt):
                spec = specs.get(name)
                if spec is not None and spec.raw_link:
                    continue
                if include_lazy or spec is None or not spec.lazy:
                    links.append((name, value[0], value[1]))
        return links

    def _ancestors(self, outputs: list[str]) -> set[str]:
        seen: set[str] = set()
        stack = list(outputs)
        while stack:
            node_id = stack.pop()
            if node_id in seen:
                continue
            seen.add(node_id)
            stack.extend(src for _, src, _ in self._links(node_id))
        return seen

    def _execute_outputs(self, outputs: list[str]) -> None:
        blockers: dict[str, set[str]] = {}
        order: list[str] = []

        def add_node(first: str) -> None:
            pending = [first]  # iterative: a chain of thousands of nodes is no recursion limit
            while pending:
                node_id = pending.pop()
                if node_id in self.results or node_id in blockers:
                    continue
                blockers[node_id] = set()
                order.append(node_id)
                sources = [src for _, src, _ in self._links(node_id, include_lazy=False) if src not in self.results]
                blockers[node_id].update(sources)
                pending.extend(reversed(sources))  # first source explored first, as a recursive walk would

        for output_id in outputs:
            add_node(output_id)
        while blockers:
            ready = next((n for n in order if n in blockers and not blockers[n]), None)
            if ready is None:
                stuck = next(n for n in order if n in blockers)
                raise NodeExecutionError(stuck, self.prompt[stuck]["class_type"],
                                         RuntimeError("Dependency cycle detected"), "", list(self.executed))
            entry = self.runner.cache.get(self.signatures.key(ready))
            if entry is not None:  # an identical node ran earlier in this prompt
                self.results[ready] = entry
                self.cached.append(ready)
                requested = []
            else:
                requested = self._execute_node(ready)
            if requested:
                for src in requested:
                    if src not in self.results:
                        blockers[ready].add(src)
                        add_node(src)
                continue
            del blockers[ready]
            for waiting in blockers.values():
                waiting.discard(ready)

    # -- one node ---------------------------------------------------------------------------------
    def _input_data(self, node_id: str, specs: list[InputSpec]) -> tuple[dict[str, list], set[str]]:
        inputs = self.prompt[node_id].get("inputs", {})
        by_name = {s.name: s for s in specs}
        data: dict[str, list] = {}
        missing: set[str] = set()
        for name, value in inputs.items():
            spec = by_name.get(name)
            if is_link(value, self.prompt) and not (spec and spec.raw_link):
                entry = self.results.get(value[0])
                if entry is None or value[1] >= len(entry.outputs):
                    missing.add(name)
                    data[name] = [None]
                    continue
                data[name] = entry.outputs[value[1]]
            elif spec is not None:
                data[name] = [value]
        return data, missing

    def _execute_node(self, node_id: str) -> list[str]:
        """Run a node; returns source ids it still needs (lazy inputs), else [] once it has run."""
        class_type = self.prompt[node_id]["class_type"]
        node_class = self.classes[class_type]
        self.current_node = node_id
        specs = input_specs(node_class, self.prompt[node_id].get("inputs", {}))
        hidden = hidden_values(node_class, node_id, self.prompt, self.extra_pnginfo)
        obj = self.objects.get(node_id) if not _is_v3(node_class) else None
        try:
            data, missing = self._input_data(node_id, specs)
            self.emit("executing", {"node": node_id})
            if obj is None and not _is_v3(node_class):
                obj = self.objects.setdefault(node_id, node_class())
            if hasattr(node_class, "check_lazy_status"):
                asked = map_node_over_list(node_class, "check_lazy_status", data, specs, hidden, True, obj)
                names = {n for r in asked if isinstance(r, list) for n in r if isinstance(n, str)}
                names = [n for n in sorted(names) if n not in data or n in missing]
                if names:
                    return self._strong_links(node_id, names)
            func = node_class.FUNCTION
            returned = map_node_over_list(node_class, func, data, specs, hidden, True, obj)
            entry = self._merge(node_class, returned)
        except model_management.InterruptProcessingException as exc:
            self.emit("execution_interrupted", {"node_id": node_id, "node_type": class_type,
                                                "executed": list(self.executed)})
            raise ExecutionInterrupted(node_id, class_type, exc, list(self.executed)) from None
        except Exception as exc:
            typ, _, tb = sys.exc_info()
            text = traceback.format_exc()
            self.emit("execution_error", {
                "node_id": node_id, "node_type": class_type, "executed": list(self.executed),
                "exception_message": str(exc), "exception_type": full_type_name(typ),
                "traceback": traceback.format_tb(tb),
            })
            raise NodeExecutionError(node_id, class_type, exc, text, list(self.executed)) from exc
        finally:
            self.current_node = None
        self.results[node_id] = entry
        self.runner.cache.set(self.signatures.key(node_id), entry)
        self.executed.append(node_id)
        if entry.ui:
            self.emit("executed", {"node": node_id, "output": entry.ui})
        return []

    def _strong_links(self, node_id: str, names: list[str]) -> list[str]:
        inputs = self.prompt[node_id].get("inputs", {})
        sources = []
        for name in names:
            value = inputs.get(name)
            if not is_link(value, self.prompt):
                raise RuntimeError(f"Node {node_id} says it needs input {name}, but there is no input to that node at all")
            sources.append(value[0])
        return sources

    def _merge(self, node_class, returned: list) -> CacheEntry:
        """ComfyUI's ``get_output_data``: per-call results into one list per output slot, ui lists joined."""
        n_outputs = len(list(getattr(node_class, "RETURN_TYPES", []) or []))
        results, uis = [], []
        for r in returned:
            if isinstance(r, ExecutionBlocker):
                if r.message:
                    log.warning("execution blocked: %s", r.message)
                r = tuple([r] * n_outputs)
            elif hasattr(r, "args") and hasattr(r, "block_execution"):  # NodeOutput
                if r.ui is not None:
                    uis.append(r.ui if isinstance(r.ui, dict) else r.ui.as_dict())
                if r.expand is not None:
                    raise NotImplementedError("node expansion (NodeOutput.expand) is not supported headless")
                if r.block_execution is not None:
                    r = tuple([ExecutionBlocker(r.block_execution)] * n_outputs)
                else:
                    r = r.result if r.result is not None else ()
            elif isinstance(r, dict):
                if "ui" in r:
                    uis.append(r["ui"])
                r = r.get("result", ())
            results.append(tuple(r))
        outputs = []
        if results:
            is_list = list(getattr(node_class, "OUTPUT_IS_LIST", None) or [False] * len(results[0]))
            for i in range(len(results[0])):
                if i < len(is_list) and is_list[i]:
                    merged = []
                    for r in results:
                        merged.extend([r[i]] if isinstance(r[i], ExecutionBlocker) else r[i])
                    outputs.append(merged)
                else:
                    outputs.append([r[i] for r in results])
        ui = {k: [y for x in uis for y in x[k]] for k in uis[0].keys()} if uis else None
        return CacheEntry(outputs, ui)

    def _fingerprint(self, node_id: str):
        node = self.prompt[node_id]
        node_class = self.classes[node["class_type"]]
        if _is_v3(node_class):
            name = "fingerprint_inputs" if first_real_override(node_class, "fingerprint_inputs") else None
        else:
            name = "IS_CHANGED" if hasattr(node_class, "IS_CHANGED") else None
        if name is None:
            return False
        specs = input_specs(node_class, node.get("inputs", {}))
        data = {}
        for spec in specs:
            if spec.name in node.get("inputs", {}):
                value = node["inputs"][spec.name]
                # As ComfyUI: linked inputs are unknown when fingerprints are taken.
                data[spec.name] = [None] if is_link(value, self.prompt) else [value]
        hidden = hidden_values(node_class, node_id, self.prompt, self.extra_pnginfo)
        return map_node_over_list(node_class, name, data, specs, hidden, False)


def _keeps_identity(node_class) -> bool:
    return bool(getattr(node_class, "NOT_IDEMPOTENT", False)) or "UNIQUE_ID" in hidden_specs(node_class).values()
