"""The suite's own hygiene: every random draw in tests/ comes from a seeded source.

Global generators are seeded per test by conftest; what that cannot reach are the
generators a gymnasium space owns and ``np.random.default_rng()`` without a seed. A
test that samples a space must seed that same space in the same function.
"""

from __future__ import annotations

import ast
from pathlib import Path

SPACES = {"action_space", "observation_space", "single_action_space", "single_observation_space"}


def unseeded_draws(source: str) -> list[tuple[int, str]]:
    """(line, expression) of each unseeded draw: ``<x>.<space>.sample()`` in a function
    that never calls ``<x>.<space>.seed(...)``, and ``default_rng()`` with no seed."""
    found: list[tuple[int, str]] = []
    for func in ast.walk(ast.parse(source)):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        seeded, sampled = set(), []
        for node in ast.walk(func):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            owner, method = node.func.value, node.func.attr
            if isinstance(owner, ast.Attribute) and owner.attr in SPACES:
                if method == "seed" and node.args:
                    seeded.add(ast.unparse(owner))
                elif method == "sample":
                    sampled.append((node.lineno, ast.unparse(owner)))
            elif method == "default_rng" and not node.args and not node.keywords:
                found.append((node.lineno, ast.unparse(node)))
        found += [(line, f"{space}.sample()") for line, space in sampled if space not in seeded]
    return sorted(set(found))


def test_the_check_flags_unseeded_spaces_and_rngs() -> None:
    bad = (
        "def t(env):\n"
        "    env.reset(seed=0)\n"
        "    env.step(env.action_space.sample())\n"
        "    other.action_space.seed(0)\n"
        "    rng = np.random.default_rng()\n"
    )
    assert unseeded_draws(bad) == [
        (3, "env.action_space.sample()"),
        (5, "np.random.default_rng()"),
    ]
    good = "def t(env):\n    env.action_space.seed(3)\n    env.step(env.action_space.sample())\n"
    assert unseeded_draws(good) == []


def test_every_draw_in_the_suite_is_seeded() -> None:
    problems = [
        f"{path.name}:{line}: {expr}"
        for path in sorted(Path(__file__).parent.glob("*.py"))
        if path.name != Path(__file__).name
        for line, expr in unseeded_draws(path.read_text())
    ]
    assert not problems, "seed these draws (space.seed(n) / default_rng(n)):\n" + "\n".join(
        problems
    )
