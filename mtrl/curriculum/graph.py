"""Prerequisite graphs of curricula: validation and ordering (pure functions).

A graph is ``prereqs[j]``: the tasks that must be completed before task ``j`` unlocks.
"""

from __future__ import annotations

from collections.abc import Sequence


def chain(num_tasks: int) -> list[list[int]]:
    """Task ``j`` needs task ``j - 1``: the incremental (Dex-style) order."""
    if num_tasks < 1:
        raise ValueError(f"a curriculum needs at least one task, got {num_tasks}")
    return [[]] + [[j - 1] for j in range(1, num_tasks)]


def topological_order(prereqs: Sequence[Sequence[int]]) -> list[int]:
    """The tasks in an order where every task follows its prerequisites (Kahn's
    algorithm, smallest index first); ValueError naming a cycle or a bad index."""
    n = len(prereqs)
    for j, req in enumerate(prereqs):
        for p in req:
            if not 0 <= p < n:
                raise ValueError(f"prerequisites[{j}] names task {p}, outside [0, {n})")
            if p == j:
                raise ValueError(f"prerequisites[{j}] names task {j} itself")
    remaining = {j: set(req) for j, req in enumerate(prereqs)}
    order: list[int] = []
    while remaining:
        ready = sorted(j for j, req in remaining.items() if not req)
        if not ready:
            raise ValueError(
                f"prerequisites form a cycle among tasks {find_cycle(prereqs)}; "
                "a curriculum must be acyclic"
            )
        j = ready[0]
        order.append(j)
        del remaining[j]
        for pending in remaining.values():
            pending.discard(j)
    return order


def find_cycle(prereqs: Sequence[Sequence[int]]) -> list[int]:
    """One cycle of the graph as a list of tasks (empty if it is acyclic)."""
    state = [0] * len(prereqs)  # 0 new, 1 on the stack, 2 done
    stack: list[int] = []

    def visit(j: int) -> list[int]:
        state[j] = 1
        stack.append(j)
        for p in prereqs[j]:
            if state[p] == 1:
                return stack[stack.index(p) :]
            if state[p] == 0:
                found = visit(p)
                if found:
                    return found
        stack.pop()
        state[j] = 2
        return []

    for j in range(len(prereqs)):
        if state[j] == 0:
            found = visit(j)
            if found:
                return found
    return []


def sinks(prereqs: Sequence[Sequence[int]]) -> list[int]:
    """Tasks no other task depends on: the curriculum's targets."""
    needed = {p for req in prereqs for p in req}
    return [j for j in range(len(prereqs)) if j not in needed]
