"""Links and traversal order of API prompts, shared by validation, execution, caching and export.

Traversals are iterative: a chain of thousands of nodes is an ordinary graph, not a recursion limit.
"""
from __future__ import annotations

from typing import Iterable, Mapping


def is_link(value, prompt: Mapping | None = None) -> bool:
    """``[source_id, slot]`` with a string id (and, given ``prompt``, an id that exists in it)."""
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], int) and not isinstance(value[1], bool)
            and (prompt is None or value[0] in prompt))


def sources(prompt: Mapping[str, Mapping], node_id: str) -> list[str]:
    """Ids of the nodes ``node_id`` takes links from, in input order."""
    inputs = prompt[node_id].get("inputs") if isinstance(prompt[node_id], Mapping) else None
    if not isinstance(inputs, Mapping):
        return []
    return [value[0] for value in inputs.values() if is_link(value, prompt)]


def upstream_order(prompt: Mapping[str, Mapping], starts: Iterable[str]) -> tuple[list[str], bool]:
    """(every node ``starts`` depend on, dependencies first; whether a cycle was met on the way)."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    cyclic = False
    for start in starts:
        if start in state or start not in prompt:
            continue
        stack = [(start, iter(sources(prompt, start)))]
        state[start] = 1
        while stack:
            node_id, pending = stack[-1]
            advanced = False
            for source in pending:
                mark = state.get(source)
                if mark == 1:
                    cyclic = True
                elif mark is None:
                    state[source] = 1
                    stack.append((source, iter(sources(prompt, source))))
                    advanced = True
                    break
            if not advanced:
                stack.pop()
                state[node_id] = 2
                order.append(node_id)
    return order, cyclic
