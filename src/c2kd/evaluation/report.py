"""Results as tables (terminal and markdown) and aggregation over seeds (mean and standard deviation)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from c2kd.evaluation.evaluator import METRIC_NAMES


def aggregate_runs(runs: Sequence[dict]) -> dict:
    """Mean and sample standard deviation over runs of the same nested result shape.

    Returns the same nesting with ``{"mean": x, "std": s, "n": k}`` at every numeric leaf.
    """
    if not runs:
        raise ValueError("no runs to aggregate")

    def combine(values: list):
        first = values[0]
        if isinstance(first, dict):
            keys = [k for k in first if all(isinstance(v, dict) and k in v for v in values)]
            return {k: combine([v[k] for v in values]) for k in keys}
        if isinstance(first, (int, float)) and not isinstance(first, bool):
            mean = sum(values) / len(values)
            var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
            return {"mean": mean, "std": math.sqrt(var), "n": len(values)}
        return first

    return combine(list(runs))


def format_result(value: float | dict, precision: int = 1) -> str:
    """One result leaf for a table: a number, or ``mean ± std`` of an aggregate (``mean`` alone over one run)."""
    if isinstance(value, dict) and "mean" in value:
        if value.get("n", 1) > 1:
            return f"{value['mean']:.{precision}f} ± {value['std']:.{precision}f}"
        return f"{value['mean']:.{precision}f}"
    return f"{value:.{precision}f}"


def table_rows(results: dict, direction: str = "t2v", metrics: Sequence[str] = METRIC_NAMES) -> tuple[list[str], list[list[str]]]:
    """Header and rows (one per language, then the average) for one direction."""
    per_lang = results[direction]
    langs = [k for k in per_lang if k != "average"] + (["average"] if "average" in per_lang else [])
    header = ["lang", *metrics]
    rows = [[lang, *(format_result(per_lang[lang][m]) for m in metrics)] for lang in langs]
    return header, rows


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def print_results(results: dict, title: str = "", directions: Sequence[str] = ("t2v", "v2t")) -> None:
    """Print one rich table per direction."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for direction in directions:
        if direction not in results or not results[direction]:
            continue
        header, rows = table_rows(results, direction)
        label = {"t2v": "text -> video", "v2t": "video -> text"}.get(direction, direction)
        table = Table(title=f"{title} {label}".strip())
        for h in header:
            table.add_column(h, justify="left" if h == "lang" else "right")
        for row in rows:
            table.add_row(*row, style="bold" if row[0] == "average" else None)
        console.print(table)
