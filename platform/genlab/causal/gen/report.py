"""Plain tables of result rows (console, markdown, CSV), for the causal jobs' reports."""

from __future__ import annotations

import csv
import io
from typing import Any


def _cell(value: Any) -> str:
    """A value as table text: floats with 4 significant digits, None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def console_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Return `rows` as a fixed-width text table with the given columns."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = [columns, ["-" * w for w in widths], *cells]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in lines)


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Return `rows` as a markdown table with the given columns."""
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    return head + "".join("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |\n" for row in rows)


def csv_text(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Return `rows` as CSV text (full precision) with the given columns."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    writer.writerows([[row.get(c) for c in columns] for row in rows])
    return buffer.getvalue()
