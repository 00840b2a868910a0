"""Plain-text tables for the CLI."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


def decimals(values: Sequence[Any]) -> int:
    """One precision for a column of numbers: 1 decimal at 100 and above, 2 from 1, else 3."""
    finite = [abs(v) for v in values if isinstance(v, float) and math.isfinite(v)]
    top = max(finite, default=0.0)
    return 1 if top >= 100 else 2 if top >= 1 else 3


def _cell(value: Any, places: int) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.{places}f}"
    return str(value)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Text columns with a header rule; each float column has one precision and is
    right-aligned, so digits line up."""
    places = [decimals([r.get(c) for r in rows]) for c in columns]
    numeric = [all(isinstance(r.get(c), int | float) for r in rows) and bool(rows) for c in columns]
    cells = [[_cell(r.get(c, ""), p) for c, p in zip(columns, places, strict=True)] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    lines = [line(list(columns)), "  ".join("-" * w for w in widths)]
    lines += [line(row) for row in cells]
    return "\n".join(lines)
