"""Output cache keyed like ComfyUI's input-signature cache (comfy_execution/caching.py).

A node's key is its class, its fingerprint (``fingerprint_inputs`` / ``IS_CHANGED`` over its
constant inputs), its node id when it is not idempotent or asks for its UNIQUE_ID, its constant
inputs, and the keys of the nodes feeding it. Re-running an unchanged subgraph therefore finds
every key again and executes nothing; changing one widget invalidates that node and everything
downstream only.
"""
from __future__ import annotations

import itertools
import logging
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .graph import is_link, upstream_order

log = logging.getLogger("soundstage.headless")


class Unhashable:
    """Stands for a value that can never be matched again (tensors, NaN fingerprints, errors)."""

    def __eq__(self, other):
        return self is other

    def __hash__(self):
        return id(self)


def to_hashable(obj) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return Unhashable()
    if isinstance(obj, (int, float, str, bool, bytes, type(None))):
        return obj
    if isinstance(obj, Mapping):
        return frozenset((to_hashable(k), to_hashable(v)) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0])))
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__,) + tuple(to_hashable(x) for x in obj)
    return Unhashable()


@dataclass
class CacheEntry:
    outputs: list  # one list per output slot (ComfyUI keeps every slot as a list of batch items)
    ui: dict | None


class OutputCache:
    """Entries of the latest prompt only, as ComfyUI's classic cache keeps them; with ``lru > 0``
    (ComfyUI's ``--cache-lru N``) up to N entries of earlier prompts survive as well."""

    def __init__(self, lru: int = 0):
        self.lru = lru
        self._entries: OrderedDict[Any, CacheEntry] = OrderedDict()

    def get(self, key) -> CacheEntry | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def set(self, key, entry: CacheEntry) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)

    def retain(self, keys) -> None:
        keep = set(keys)
        others = [k for k in self._entries if k not in keep]
        drop = others if self.lru <= 0 else others[: max(0, len(self._entries) - max(self.lru, len(keep)))]
        for key in drop:
            del self._entries[key]

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class Signatures:
    """Cache keys of a prompt's nodes; ``fingerprint(node_id)`` supplies each node's is-changed value."""

    def __init__(self, prompt: Mapping[str, dict], node_classes: Mapping[str, type],
                 fingerprint: Callable[[str], Any], keeps_identity: Callable[[type], bool]):
        self.prompt = prompt
        self.node_classes = node_classes
        self.fingerprint = fingerprint
        self.keeps_identity = keeps_identity
        self._keys: dict[str, Any] = {}
        self._counter = itertools.count()

    def key(self, node_id: str) -> Any:
        if node_id not in self._keys:
            order, cyclic = upstream_order(self.prompt, [node_id])
            if not cyclic:  # ancestors first, so that a long chain never recurses deeply
                for ancestor in order[:-1]:
                    self._key(ancestor, ())
        return self._key(node_id, ())

    def _key(self, node_id: str, _stack: tuple) -> Any:
        if node_id in self._keys:
            return self._keys[node_id]
        if node_id in _stack or node_id not in self.prompt:
            return Unhashable()
        node = self.prompt[node_id]
        class_type = node["class_type"]
        node_class = self.node_classes[class_type]
        try:
            changed = to_hashable(self.fingerprint(node_id))
        except Exception as exc:  # ComfyUI treats a failing fingerprint as "always changed"
            log.warning("fingerprint of node %s (%s) failed: %s", node_id, class_type, exc)
            changed = Unhashable()
        parts: list[Any] = [class_type, changed]
        if self.keeps_identity(node_class):
            parts.append(("NODE", node_id))
        for name in sorted(node.get("inputs", {})):
            value = node["inputs"][name]
            if is_link(value, self.prompt):
                parts.append((name, ("LINK", self._key(value[0], _stack + (node_id,)), value[1])))
            else:
                parts.append((name, to_hashable(value)))
        key = tuple(parts)
        self._keys[node_id] = key
        return key

