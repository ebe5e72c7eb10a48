"""Result plots: bar charts of R@K per language, built as matplotlib Figures and written as PNG files.

The drawing functions take the plain result structures the rest of c2kd writes (``c2kd evaluate`` / ``aggregate``
results, the report of ``c2kd reproduce``) and return a :class:`matplotlib.figure.Figure`, so callers and tests
can read the legend, bar heights and error bars back. Nothing here uses pyplot or a display: figures are drawn
by the Agg renderer, which works on headless machines and in threads.

matplotlib is optional (``pip install 'c2kd[plots]'``); it is imported where a plot is drawn.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from c2kd.errors import ConfigError, DataError, MissingDependencyError, require

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: how the two retrieval directions are titled
DIRECTION_TITLES = {"t2v": "text → video", "v2t": "video → text"}
#: values are printed on the bars when a panel has at most this many bars per language and in all
_LABELLED_SERIES, _LABELLED_BARS = 3, 30
#: up to this many bars in a panel carry their value written upwards (too narrow for it across)
_UPRIGHT_LABELLED_BARS = 64


def _matplotlib() -> Any:
    return require("matplotlib", "plots", "drawing plots (--plot, results.png)")


def plotting_available() -> bool:
    """Whether matplotlib is installed (plots can be drawn)."""
    try:
        _matplotlib()
    except MissingDependencyError:
        return False
    return True


def check_plot_path(path: str | os.PathLike) -> Path:
    """Check before any long work that a plot can be written to ``path``: a ``.png`` file, matplotlib installed."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ConfigError(f"--plot {path}: plots are written as PNG; give a file name ending in .png")
    if path.is_dir():
        raise ConfigError(f"--plot {path} is a folder; give a file name ending in .png")
    _matplotlib()
    return path


def mean_and_std(value: float | Mapping[str, float] | None) -> tuple[float, float]:
    """A result leaf as ``(mean, std)``: a plain number has no spread (``nan``), as has a mean over one run.

    Leaves are numbers (``c2kd evaluate``) or ``{"mean", "std", "n"}`` (``c2kd aggregate``); a missing one is
    ``(nan, nan)`` and draws no bar.
    """
    if value is None:
        return math.nan, math.nan
    if isinstance(value, Mapping):
        spread = float(value["std"]) if value.get("n", 1) > 1 else math.nan
        return float(value["mean"]), spread
    return float(value), math.nan


def _ordered_languages(per_language: Sequence[Mapping[str, Any]]) -> list[str]:
    """Languages in first-seen order over every series, ``average`` last."""
    seen: list[str] = []
    for table in per_language:
        seen += [lang for lang in table if lang != "average" and lang not in seen]
    if any("average" in table for table in per_language):
        seen.append("average")
    return seen


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _new_figure(panels: int, bars_per_panel: int, legend_entries: int) -> Figure:
    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width = min(20.0, max(6.5, 1.5 + 0.16 * bars_per_panel))
    legend_rows = math.ceil(legend_entries / 4)
    fig = Figure(figsize=(width, 3.2 * panels + 0.6 + 0.25 * legend_rows), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _bar_panel(ax: Axes, groups: Sequence[str], series: Sequence[dict[str, Any]], ylabel: str, title: str) -> None:
    """Grouped bars: one group per language, one bar per series (label, means, stds, color, hatch)."""
    n = max(len(series), 1)
    width = 0.8 / n
    total = len(groups) * len(series)
    for i, s in enumerate(series):
        xs = [g + (i - (n - 1) / 2) * width for g in range(len(groups))]
        yerr = s["stds"] if any(not math.isnan(v) for v in s["stds"]) else None
        bars = ax.bar(xs, s["means"], width, yerr=yerr, capsize=2 if yerr is not None else 0, label=s["label"],
                      color=s["color"], alpha=s.get("alpha", 1.0), hatch=s.get("hatch"),
                      edgecolor=s["color"] if s.get("hatch") else None, error_kw={"elinewidth": 1})
        labels = ["" if math.isnan(v) else f"{v:.1f}" for v in s["means"]]
        if len(series) <= _LABELLED_SERIES and total <= _LABELLED_BARS:  # wide enough for their numbers
            ax.bar_label(bars, labels=labels, fontsize=7, padding=2)
        elif total <= _UPRIGHT_LABELLED_BARS:
            ax.bar_label(bars, labels=labels, fontsize=6.5, padding=2, rotation=90)
    ax.set_xticks(range(len(groups)), ["Avg" if g == "average" else g for g in groups])
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.set_ylim(bottom=0)
    ax.margins(y=0.12 if total <= _LABELLED_BARS and len(series) <= _LABELLED_SERIES else 0.2)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def _legend(fig: Figure, axes: Sequence[Axes] | np.ndarray, ncols: int = 4) -> None:
    """One legend for the figure, below the panels (legends fill column by column)."""
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=max(1, min(len(labels), ncols)), fontsize=8,
                   frameon=False)


def recall_figure(results: Mapping[str, Mapping[str, Any]], metric: str = "R@1",
                  directions: Sequence[str] = ("t2v", "v2t"), title: str = "",
                  guarded: Mapping[str, str] | None = None) -> Figure:
    """``metric`` per language for one or more models: one panel per direction, one bar colour per model.

    ``guarded`` maps a row to the run it is the guarded choice of (``best/`` beside the run as trained): that row
    is drawn hatched and paler in its run's colour, right after it.

    ``results`` maps a model's name to its results as ``c2kd evaluate`` writes them (``{"t2v": {lang: {"R@1":
    ...}}, "v2t": ...}``) or as ``c2kd aggregate`` writes them (leaves ``{"mean", "std", "n"}``, drawn with error
    bars of one standard deviation). The legend names the models.
    """
    shown = [d for d in directions if any(isinstance(res.get(d), Mapping) and res[d] for res in results.values())]
    if not shown:
        raise DataError(f"nothing to plot: the results hold no {' or '.join(directions)} table per language "
                        "(as `c2kd evaluate --json` writes)")
    guarded = {name: run for name, run in (guarded or {}).items() if name in results and run in results}
    own = [name for name in results if name not in guarded]
    colors = dict(zip(own, _colors(len(own))))
    colors.update({name: colors[run] for name, run in guarded.items()})
    panels = []
    for direction in shown:
        tables = [res.get(direction) or {} for res in results.values()]
        langs = _ordered_languages(tables)
        series = []
        for name, table in zip(results, tables):
            pairs = [mean_and_std(table.get(lang, {}).get(metric)) for lang in langs]
            style = {"hatch": "///", "alpha": 0.45} if name in guarded else {}
            series.append({"label": name, "means": [m for m, _ in pairs], "stds": [s for _, s in pairs],
                           "color": colors[name], **style})
        panels.append((direction, langs, series))
    ncols = 2 if max(len(name) for name in results) > 30 else 4  # long labels: two columns, none cut off
    fig = _new_figure(len(panels), max(len(langs) * len(series) for _, langs, series in panels),
                      len(results) * 4 // ncols)
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (direction, langs, series) in zip(axes, panels):
        _bar_panel(ax, langs, series, f"{metric} (%)", DIRECTION_TITLES.get(direction, direction))
    if title:
        fig.suptitle(title)
    _legend(fig, axes, ncols)
    return fig


def recipe_figure(report: Mapping[str, Any]) -> Figure:
    """Text-to-video results of ``c2kd reproduce``: ours (mean ± std over seeds) with the paper's bar beside it.

    ``report`` is what :func:`c2kd.reproduce.runner.collect` returns: ``rows`` with ``label``, ``setting``,
    ``ours`` (``{lang: {metric: {"mean", "std", "n"}}}`` or ``None``) and ``paper`` (``{lang: {metric: x}}`` or
    ``None``), and the recipe's ``languages``, ``metrics`` and ``average``. One panel per metric; the paper's bars
    are hatched in the colour of the run; a run or language without numbers draws no bar.
    """
    rows = [row for row in report["rows"] if row.get("ours") or row.get("paper")]
    if not rows:
        raise DataError(f"nothing to plot: {report.get('recipe', 'the recipe')} has no finished run and no paper "
                        "numbers")
    langs = list(report["languages"]) + (["average"] if report.get("average", True) else [])
    settings = {row["setting"] for row in rows}
    colors = _colors(len(rows))
    panels = []
    for metric in report["metrics"]:
        series = []
        for row, color in zip(rows, colors):
            name = f"{row['label']} ({row['setting']})" if len(settings) > 1 else row["label"]
            for source, table, style in (("ours", row.get("ours"), {}),
                                         ("paper", row.get("paper"), {"hatch": "///", "alpha": 0.45})):
                if not table:
                    continue
                pairs = [mean_and_std(table.get(lang, {}).get(metric)) for lang in langs]
                series.append({"label": f"{name}, {source}", "means": [m for m, _ in pairs],
                               "stds": [s for _, s in pairs], "color": color, **style})
        panels.append((metric, series))
    fig = _new_figure(len(panels), len(langs) * len(panels[0][1]), len(panels[0][1]))
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    seeds = report.get("seeds") or []
    for ax, (metric, series) in zip(axes, panels):
        what = f"text → video {metric}; ours: mean ± std over {len(seeds)} seed{'s' if len(seeds) != 1 else ''}"
        _bar_panel(ax, langs, series, f"{metric} (%)", what)
    has_paper = any(row.get("paper") for row in rows)
    fig.suptitle(f"{report.get('source', '')}: {report.get('title', '')}"
                 + ("" if has_paper else "\n(the paper gives this figure as a plot: ours only)"), fontsize=11)
    paired = all(row.get("ours") and row.get("paper") for row in rows)
    _legend(fig, axes, ncols=len(rows) if paired else 4)  # paired: each column holds a run's ours above its paper
    return fig


def save_png(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` as a PNG file atomically (Agg renderer; a reader never sees half a file)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from c2kd.io import write_atomic

    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    return write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))


def png_or_reason(path: str | os.PathLike, draw: Callable[[], Figure]) -> str:
    """Draw and write a PNG when matplotlib is installed; return the line to print either way.

    For outputs written beside a table (``c2kd reproduce``, the quickstart), where a missing optional plotting
    package should not stop a finished run.
    """
    if not plotting_available():
        return f"no {Path(path).name}: drawing it needs matplotlib (pip install 'c2kd[plots]')"
    try:
        return f"wrote {save_png(draw(), path)}"
    except DataError as exc:
        return f"no {Path(path).name}: {exc}"
